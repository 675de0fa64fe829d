"""One machine's process on this host: the nspawn command line, starting and stopping it, running commands inside.

A machine is a `systemd-nspawn --boot` process on an overlay of the image. kbuild does not stay
running alongside it: nspawn is started detached (its parent exits at once), its pid is kept
in a file and checked against /proc before it is trusted, and the container's init ("leader")
is found as nspawn's child that is pid 1 of its own pid namespace.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from kbuild.lab import cgroups
from kbuild.lab.errors import LabError
from kbuild.lab.mounts import mount_overlay, unmount_all
from kbuild.lab.paths import MachinePaths

KMSG = Path("/dev/kmsg")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Moves itself into the machine's cgroups, then becomes nspawn. $0 holds the cgroup directories,
# one per line; "$@" is the nspawn command line.
_INNER = 'IFS="\n"\nfor dir in $0; do echo $$ > "$dir/cgroup.procs" || exit 125; done\nexec "$@"\n'
# Starts the inner shell in the background with the log as its output and prints its pid, then
# exits: nspawn is re-parented to init, so no kbuild process has to wait for it.
_OUTER = 'inner=$1 log=$2 dirs=$3\nshift 3\nsh -c "$inner" "$dirs" "$@" </dev/null >>"$log" 2>&1 &\necho $!\n'


def nspawn_command(name: str, rootfs: Path, bridge: str, *, containerd_dir: Path | None = None,
                   kmsg: bool = True) -> list[str]:
    """The systemd-nspawn command line that boots one machine."""
    command = [
        "systemd-nspawn", "--boot", f"--directory={rootfs}", f"--machine={name}",
        # The host has no systemd as PID 1: nothing to register with, no unit to get a scope from.
        "--register=no", "--keep-unit",
        f"--network-bridge={bridge}",
        # containerd and runc need every capability, the kernel keyring and bpf (device cgroups).
        "--capability=all", "--system-call-filter=@keyring bpf",
        "--console=read-only", "--link-journal=no",
        "--resolv-conf=off",  # the image's resolv.conf lists no server: nothing is reachable to ask
    ]
    if containerd_dir is not None:
        command.append(f"--bind={containerd_dir}:/var/lib/containerd")
    if kmsg:
        command.append(f"--bind-ro={KMSG}")  # kubelet reads the kernel log (OOM events)
    return command


def launcher_command(nspawn: Sequence[str], cgroup_dirs: Sequence[Path], log: Path) -> list[str]:
    """A command that starts `nspawn` detached, inside `cgroup_dirs`, logging to `log`, and prints its pid."""
    dirs = "\n".join(str(d) for d in cgroup_dirs)
    return ["/bin/sh", "-c", _OUTER, "kbuild-lab-launch", _INNER, str(log), dirs, *nspawn]


def exec_command(leader: int, command: str | Sequence[str]) -> list[str]:
    """Run `command` inside the machine whose init is `leader`, through its namespaces (no SSH)."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    return ["nsenter", f"--target={leader}", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
            "--root", "--wd", "--", "/usr/bin/env", "-i", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8",
            "TERM=dumb", *argv]


# -- processes ---------------------------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie is dead; reap it if it happens to be our child)."""
    state = _state(pid)
    if state in ("Z", "X"):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return state != ""


def is_nspawn_for(pid: int, rootfs: Path) -> bool:
    argv = _cmdline(pid)
    return bool(argv) and Path(argv[0]).name == "systemd-nspawn" and f"--directory={rootfs}" in argv


def find_nspawns(under: Path) -> dict[int, Path]:
    """Every nspawn process whose machine root lies under `under`: pid -> root (finds ones with no pid file)."""
    found: dict[int, Path] = {}
    prefix = "--directory="
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if not argv or Path(argv[0]).name != "systemd-nspawn":
            continue
        for arg in argv:
            if arg.startswith(prefix):
                root = Path(arg[len(prefix):])
                if under == root or under in root.parents:
                    found[int(entry.name)] = root
    return found


def children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def leader_of(nspawn: int) -> int | None:
    """The machine's init: nspawn's child that is pid 1 in its own pid namespace."""
    for child in children(nspawn):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                if len(ids) > 1 and ids[-1] == "1":
                    return child
    return None


class Machine:
    """A lab machine's host-side handle: paths, and the nspawn process found through its pid file."""

    def __init__(self, name: str, paths: MachinePaths, lab: str) -> None:
        self.name = name
        self.paths = paths
        self.lab = lab

    def __repr__(self) -> str:
        return f"Machine({self.name!r})"

    # -- state -------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """nspawn's pid, if it runs (the pid file is trusted only if /proc agrees)."""
        try:
            pid = int(self.paths.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if alive(pid) and is_nspawn_for(pid, self.paths.merged):
            return pid
        return None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def leader(self) -> int | None:
        pid = self.pid
        return leader_of(pid) if pid else None

    # -- start -------------------------------------------------------------------------------
    def start(self, image_rootfs: Path, bridge: str) -> int:
        """Mount the root overlay and launch nspawn detached; return its pid (no-op if it runs)."""
        pid = self.pid
        if pid:
            return pid
        self.clear_leftovers()
        mount_overlay(image_rootfs, self.paths.upper, self.paths.work, self.paths.merged)
        self.paths.containerd.mkdir(mode=0o711, exist_ok=True)
        dirs = cgroups.prepare(self.lab, self.name)
        self.paths.cgroups_file.write_text("".join(f"{d}\n" for d in dirs))
        nspawn = nspawn_command(self.name, self.paths.merged, bridge, containerd_dir=self.paths.containerd,
                                kmsg=KMSG.exists())
        with self.paths.log.open("a") as log:
            log.write(f"\n==> {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shlex.join(nspawn)}\n")
        env = {**os.environ, "TERM": "dumb"}  # plain boot messages in the log, no colour codes
        launched = subprocess.run(launcher_command(nspawn, dirs, self.paths.log), capture_output=True, text=True,
                                  env=env, start_new_session=True, timeout=30, check=False)
        try:
            pid = int(launched.stdout.strip())
        except ValueError:
            raise LabError(f"{self.name}: could not start systemd-nspawn: {launched.stderr.strip()}") from None
        self.paths.pid_file.write_text(f"{pid}\n")
        return pid

    # -- stop --------------------------------------------------------------------------------
    def request_stop(self) -> bool:
        """Ask the machine to shut down: SIGTERM to nspawn powers it off cleanly. A machine whose nspawn
        is gone but whose processes linger is killed outright. Return True if something was running."""
        signalled = False
        for pid in find_nspawns(self.paths.merged):  # also finds an nspawn whose pid file was lost
            try:
                os.kill(pid, signal.SIGTERM)
                signalled = True
            except ProcessLookupError:
                pass
        if not signalled and self.leftovers():
            self.kill()
            return True
        return signalled

    def kill(self) -> None:
        """SIGKILL the machine's init (which ends its whole pid namespace), nspawn, and anything in its cgroups."""
        victims: set[int] = set()
        for pid in find_nspawns(self.paths.merged):
            victims |= {pid, leader_of(pid) or pid}
        victims |= self.leftovers()
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cgroup_dirs(self) -> list[Path]:
        """The machine's cgroups: those recorded at start, and where this process would put them now."""
        try:
            recorded = [Path(line) for line in self.paths.cgroups_file.read_text().splitlines() if line.strip()]
        except OSError:
            recorded = []
        here = [d for _h, d in cgroups.machine_cgroups(cgroups.current_hierarchies(), self.lab, self.name)]
        return list(dict.fromkeys([*recorded, *here]))

    def leftovers(self) -> set[int]:
        """Processes still in the machine's cgroups, e.g. its init after nspawn itself was killed."""
        return {pid for pid in cgroups.pids(self.cgroup_dirs()) if pid != os.getpid() and alive(pid)}

    def clear_leftovers(self, timeout: float = 10) -> None:
        """Kill what is left of a machine whose nspawn is gone, so nothing boots twice on one root."""
        deadline = time.monotonic() + timeout
        while self.pid is None and self.leftovers() and time.monotonic() < deadline:
            self.kill()
            time.sleep(0.1)

    def release(self) -> list[Path]:
        """After the processes are gone: unmount the root and remove the cgroups; return cgroups left."""
        unmount_all(self.paths.merged)
        left = cgroups.remove(self.cgroup_dirs())
        if not left:
            self.paths.cgroups_file.unlink(missing_ok=True)
        self.paths.pid_file.unlink(missing_ok=True)
        return left

    def processes(self) -> list[int]:
        """The machine's host processes: nspawn (normally one) and anything left in its cgroups."""
        return sorted({pid for pid in find_nspawns(self.paths.merged) if alive(pid)} | self.leftovers())

    # -- inside ------------------------------------------------------------------------------
    def exec(self, command: str | Sequence[str], *, timeout: float | None = 120, input: str | None = None,
             check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command inside the machine through its namespaces (no SSH involved). Its stdin is
        `input`, or empty: a test must never hang on a command waiting for a terminal."""
        leader = self.leader
        if leader is None:
            raise LabError(f"{self.name}: the machine is not running")
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        result = subprocess.run(exec_command(leader, command), capture_output=True, text=True, errors="replace",
                                timeout=timeout, check=False, **stdin)
        if check and result.returncode != 0:
            raise LabError(f"{self.name}: `{command if isinstance(command, str) else shlex.join(command)}` "
                           f"failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()}")
        return result


def wait_gone(machines: Sequence[Machine], timeout: float) -> list[Machine]:
    """Wait until the machines' processes (nspawn, and all in their cgroups) are gone; return those still
    running at the deadline."""
    deadline = time.monotonic() + timeout
    left = list(machines)
    while left:
        left = [m for m in left if m.processes()]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return left


def ssh_answers(address: str, port: int = 22, timeout: float = 2.0) -> bool:
    """True if an SSH server greets on address:port (reads its `SSH-2.0-...` banner)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False
