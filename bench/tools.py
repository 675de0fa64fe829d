"""The tools under test: how each one is set up for a run directory and started as its own process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from bench import workload as wl
from bench.drivers.config import ENV_VAR, PERSIST_VARIABLE, DriverConfig
from kbuild.engine.mux import DIRECTORY_VARIABLE
from kbuild.engine.muxd import keeper_pid

DRIVERS = Path(__file__).parent / "drivers"
REPO = Path(__file__).parent.parent


@dataclass
class Invocation:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


class Tool:
    """One tool: `setup` once per host set, `invocation` per run, `cleanup` after each run."""

    name = "tool"
    package = ""
    executable = ""  # the program it runs as, when that is not this Python

    def available(self) -> str | None:
        """None when the tool can run here, else why not."""
        return None

    def version(self) -> str:
        """The version installed where the tool runs from: a venv of its own (KBUILD_BENCH_TOOLS) or this one."""
        if not self.executable:
            try:
                return metadata.version(self.package)
            except metadata.PackageNotFoundError:
                return "not installed"
        python = Path(_bin(self.executable)).parent / "python"
        asked = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({self.package!r}))"],
                               capture_output=True, text=True, check=False)
        return asked.stdout.strip() if asked.returncode == 0 and asked.stdout.strip() else "not installed"

    def setup(self, run_dir: Path, config: DriverConfig) -> None:
        pass

    def invocation(self, run_dir: Path, config_path: Path) -> Invocation:
        raise NotImplementedError

    def stats(self, stdout: str) -> dict[str, object]:
        """What the tool itself says about connections/round trips, when it says anything."""
        return {}

    def cleanup(self, run_dir: Path) -> None:
        pass

    def helper_usage(self) -> tuple[int | None, float, float]:
        """The pid, CPU seconds so far and peak MB of a process the tool leaves running between runs."""
        return None, 0.0, 0.0

    def finish(self) -> None:
        """After the last run at a size: stop whatever the tool left running."""


def _python_env() -> dict[str, str]:
    # The drivers import bench.* from the repository; pyinfra and ansible run from the same venv.
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


def _bin(name: str) -> str:
    """A tool's executable: from KBUILD_BENCH_TOOLS (a venv's bin/ of its own) when set, else this venv."""
    tools = os.environ.get("KBUILD_BENCH_TOOLS")
    if tools and (Path(tools) / name).exists():
        return str(Path(tools) / name)
    return str(Path(sys.executable).parent / name)


class KbuildTool(Tool):
    name = "kbuild"
    package = "kbuild"

    def invocation(self, run_dir: Path, config_path: Path) -> Invocation:
        return Invocation([sys.executable, str(DRIVERS / "kbuild_apply.py"), str(config_path)], _python_env())

    def stats(self, stdout: str) -> dict[str, object]:
        for line in reversed(stdout.splitlines()):
            if line.startswith("{"):
                data = json.loads(line)
                return {"connections": data["connections"], "round_trips": data["round_trips"],
                        "profile": data.get("profile", {})}
        return {}


class KbuildKeptTool(KbuildTool):
    """kbuild with `ssh.persist`: a run reuses the logins the keeper (kbuild.engine.muxd) kept from the last one.

    The keeper is a process of its own, so its CPU and memory are added to each run's (helper_usage)."""

    name = "kbuild-kept"
    persist = 60.0

    def __init__(self) -> None:
        self.keeper_dir: Path | None = None

    def setup(self, run_dir: Path, config: DriverConfig) -> None:
        self.finish()
        self.keeper_dir = Path(tempfile.mkdtemp(prefix="kbb-keeper-"))  # short: it holds a Unix socket

    def invocation(self, run_dir: Path, config_path: Path) -> Invocation:
        plain = super().invocation(run_dir, config_path)
        return Invocation(plain.argv, {**plain.env, PERSIST_VARIABLE: str(self.persist),
                                       DIRECTORY_VARIABLE: str(self.keeper_dir)})

    def _keeper_pid(self) -> int | None:
        return keeper_pid(self.keeper_dir) if self.keeper_dir else None

    def helper_usage(self) -> tuple[int | None, float, float]:
        pid = self._keeper_pid()
        if pid is None:
            return None, 0.0, 0.0
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None, 0.0, 0.0  # it has exited
        ticks = os.sysconf("SC_CLK_TCK")
        peak_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
        return pid, (int(fields[11]) + int(fields[12])) / ticks, peak_kb / 1024

    def finish(self) -> None:
        pid = self._keeper_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.keeper_dir is not None:
            shutil.rmtree(self.keeper_dir, ignore_errors=True)
            self.keeper_dir = None


class PyinfraTool(Tool):
    name = "pyinfra"
    package = "pyinfra"
    executable = "pyinfra"

    def available(self) -> str | None:
        if not Path(_bin(self.executable)).exists():
            return "pyinfra is not installed (pip install -e '.[bench]')"
        return None

    def invocation(self, run_dir: Path, config_path: Path) -> Invocation:
        config = DriverConfig.load(config_path)
        # -y: apply straight away (no interactive confirmation, as in automation).
        argv = [_bin(self.executable), "-y", "--parallel", str(config.forks),
                str(DRIVERS / "pyinfra_inventory.py"), str(DRIVERS / "pyinfra_deploy.py")]
        return Invocation(argv, {**_python_env(), ENV_VAR: str(config_path)})


class AnsibleTool(Tool):
    """ansible-playbook with pipelining, ControlPersist and forks >= hosts; no fact gathering.

    Every run starts with no ControlPersist master (its own control directory, and masters are
    told to exit after the run), like kbuild and pyinfra, which keep nothing between runs.
    """

    name = "ansible"
    package = "ansible-core"
    executable = "ansible-playbook"

    def available(self) -> str | None:
        if not Path(_bin(self.executable)).exists():
            return "ansible-core is not installed (pip install -e '.[bench]')"
        if shutil.which("ssh") is None:
            return "Ansible's ssh connection needs the OpenSSH client: apt-get install openssh-client"
        return None

    def setup(self, run_dir: Path, config: DriverConfig) -> None:
        inventory = {"bench": {
            "hosts": {h.name: {"ansible_host": h.address, "kb_host": h.name, "kb_address": h.address}
                      for h in config.hosts},
            "vars": {"ansible_user": config.user, "ansible_ssh_private_key_file": config.key_file,
                     "ansible_python_interpreter": "/usr/bin/python3"},
        }}
        (run_dir / "inventory.yml").write_text(yaml.safe_dump(inventory))
        ssh_args = ("-o ControlMaster=auto -o ControlPersist=60s -o IdentitiesOnly=yes -o BatchMode=yes "
                    f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={config.known_hosts}")
        (run_dir / "ansible.cfg").write_text(
            "[defaults]\n"
            f"inventory = {run_dir / 'inventory.yml'}\n"
            f"forks = {max(5, config.forks)}\n"
            "host_key_checking = True\n"
            "interpreter_python = /usr/bin/python3\n"
            "gathering = explicit\n"
            "retry_files_enabled = False\n"
            f"local_tmp = {run_dir / 'ansible-local'}\n"
            "\n[ssh_connection]\n"
            "pipelining = True\n"
            f"ssh_args = {ssh_args}\n"
            f"control_path_dir = {_control_dir(run_dir)}\n"
        )

    def invocation(self, run_dir: Path, config_path: Path) -> Invocation:
        config = DriverConfig.load(config_path)
        extra = {
            "conf_dir": wl.CONF_DIR, "conf_dir_mode": f"0{wl.CONF_DIR_MODE:o}", "conf_mode": f"0{wl.CONF_MODE:o}",
            "template": str(wl.TEMPLATE), "files": config.files, "version": config.version,
            "blob": config.blob, "blob_path": wl.BLOB_PATH, "blob_mode": f"0{wl.BLOB_MODE:o}",
            "unit_source": str(wl.UNIT_SOURCE), "unit_path": wl.UNIT_PATH, "unit_mode": f"0{wl.UNIT_MODE:o}",
            "service": wl.SERVICE, "sysctl_key": wl.SYSCTL_KEY, "sysctl_value": wl.SYSCTL_VALUE,
            "sysctl_file": wl.SYSCTL_FILE,
        }
        extra_path = run_dir / "extra-vars.json"
        extra_path.write_text(json.dumps(extra))
        env = {"ANSIBLE_CONFIG": str(run_dir / "ansible.cfg"), "ANSIBLE_HOME": str(run_dir / "ansible-home"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0"}
        _control_dir(run_dir).mkdir(mode=0o700, exist_ok=True)
        return Invocation([_bin(self.executable), "-e", f"@{extra_path}", str(DRIVERS / "playbook.yml")], env)

    def cleanup(self, run_dir: Path) -> None:
        control = _control_dir(run_dir)
        if not control.is_dir():
            return
        for socket in control.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "bench-host"],
                           capture_output=True, timeout=10, stdin=subprocess.DEVNULL, check=False)
        shutil.rmtree(control, ignore_errors=True)


def _control_dir(run_dir: Path) -> Path:
    # ControlPath is a Unix socket, whose path must stay under ~104 bytes: a run directory deep
    # in a temporary tree is too long, so the sockets live in a short directory named after it.
    digest = hashlib.sha256(str(run_dir.absolute()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"kbb-cp-{digest}"


TOOLS: dict[str, type[Tool]] = {"kbuild": KbuildTool, "kbuild-kept": KbuildKeptTool, "pyinfra": PyinfraTool,
                                 "ansible": AnsibleTool}
