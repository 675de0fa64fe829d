"""molecule/default's converge play tells Ansible "changed" exactly when kbuild changed something.

Real parts: ansible-playbook (ansible-core from the test extra) running the scenario's own
converge.yml and verify.yml. kbuild itself is replaced by a small script that prints recorded
`kbuild bootstrap --json` events, so that a changed run and a no-op run can be told apart in a
second, without lab machines (tests/integration/test_molecule.py runs the whole scenario for real).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parents[2] / "molecule" / "default"
VENV_BIN = Path(sys.executable).parent


def _event(event: str, **fields: object) -> str:
    return json.dumps({"event": event, **fields, "time": 1.0})


NOOP = [
    _event("phase.start", phase="preflight"),
    _event("preflight", host="m1", phase="preflight", status="warning", resource="swap", message="x"),
    _event("resource", host="m1", phase="etcd", resource="file:/etc/systemd/system/etcd.service", status="ok"),
    _event("host.done", host="m1", phase="etcd", status="ok", data={"changed": 0, "ok": 1, "restarted": []}),
    _event("gate", host="m1", phase="etcd", resource="etcd cluster healthy", status="ok"),
    _event("run.end", data={"connections": 1, "round_trips": 3, "bytes_sent": 10, "exit_code": 0}),
]
CHANGED_FILE = NOOP[:2] + [
    _event("resource", host="m1", phase="nodes", resource="file:/var/lib/kubelet/config.yaml", status="changed",
           changes=["content"]),
] + NOOP[2:]
RESTART_ONLY = NOOP[:2] + [  # a restart owed from an earlier run, flushed by the handlers phase
    _event("handler", host="m1", phase="handlers", resource="service kubelet", status="restarted"),
] + NOOP[2:]


def ansible_playbook() -> str:
    path = shutil.which("ansible-playbook", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail("ansible-playbook is missing: install the test extra (pip install -e '.[test]')", pytrace=False)
    return path


def play(tmp_path: Path, playbook: str, lines: list[str], rc: int = 0) -> subprocess.CompletedProcess[str]:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    stub = tmp_path / "kbuild"
    stub.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\ncat {events}\necho 'error: boom' >&2\nexit {rc}\n")
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KBUILD", "ANSIBLE_", "MOLECULE_"))}
    env.update(KBUILD=str(stub), MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "ephemeral"),
               PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    return subprocess.run([ansible_playbook(), "-i", "localhost,", str(SCENARIO / playbook)], env=env,
                          capture_output=True, text=True, timeout=120)


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    match = re.search(r"^localhost\s*:\s*(.*)$", result.stdout, re.M)
    assert match, result.stdout + result.stderr
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.mark.parametrize(("lines", "changed"), [(NOOP, 0), (CHANGED_FILE, 1), (RESTART_ONLY, 1)],
                         ids=["no-op", "file-changed", "restart-only"])
def test_converge_reports_changed_only_when_kbuild_changed_something(tmp_path, lines, changed):
    result = play(tmp_path, "converge.yml", lines)
    assert result.returncode == 0, result.stdout + result.stderr
    assert recap(result)["changed"] == changed
    argv = (tmp_path / "argv").read_text().split()
    assert argv[:2] == ["bootstrap", "-i"] and argv[2].endswith("/kbuild/inventory.yaml") and "--json" in argv


def test_converge_fails_when_bootstrap_fails(tmp_path):
    result = play(tmp_path, "converge.yml", NOOP, rc=1)
    assert result.returncode != 0
    assert recap(result)["failed"] == 1
    assert "error: boom" in result.stdout  # kbuild's own message reaches the molecule log


def test_verify_runs_status_and_fails_when_unhealthy(tmp_path):
    ok = play(tmp_path, "verify.yml", ["healthy"])
    assert ok.returncode == 0 and recap(ok)["changed"] == 0
    assert (tmp_path / "argv").read_text().split()[:2] == ["status", "-i"]
    assert play(tmp_path, "verify.yml", ["unhealthy"], rc=1).returncode != 0


def test_scenario_uses_the_default_driver_and_kbuild_lab():
    config = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
    assert config["driver"]["name"] == "default" and config["driver"]["options"]["managed"] is True
    sequence = config["scenario"]["test_sequence"]
    assert sequence.index("converge") < sequence.index("idempotence") < sequence.index("verify")
    create = (SCENARIO / "create.yml").read_text()
    destroy = (SCENARIO / "destroy.yml").read_text()
    assert "'lab', 'up'" in create and "--artifacts-mirror" in create
    assert "lab, down" in destroy
    assert "$" not in (SCENARIO / "molecule.yml").read_text()  # molecule would try to interpolate it
