"""`kbuild lab` is registered and prints lab status readably."""

from __future__ import annotations

from kbuild.cli import run
from kbuild.cli.lab import _print_status
from kbuild.lab.lab import LabStatus, MachineStatus


def test_lab_commands_are_registered(capsys):
    assert run(["lab", "--help"]) == 0
    out = capsys.readouterr().out
    for command in ("image", "up", "status", "stop", "start", "exec", "down"):
        assert f"  {command} " in out
    assert run(["lab", "up", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--masters", "--workers", "--name", "--subnet", "--inventory-out", "--mirror"):
        assert option in out


def test_status_table(capsys):
    status = LabStatus(
        name="lab", dir="/var/lib/kbuild/lab/lab", subnet="198.18.0.0/24", bridge="kb-lab", bridge_present=True,
        inventory="/var/lib/kbuild/lab/lab/inventory.yaml", key_file="/var/lib/kbuild/lab/lab/id_ed25519",
        known_hosts="/var/lib/kbuild/lab/lab/known_hosts", image="/img",
        machines=[MachineStatus("lab-master-1", "master", "198.18.0.10", True, True, 10, "/log1"),
                  MachineStatus("lab-worker-1", "worker", "198.18.0.11", False, False, None, "/log2")])
    _print_status(status)
    lines = capsys.readouterr().out.splitlines()
    assert "lab lab (198.18.0.0/24 on kb-lab)" in lines[0]
    master = next(line for line in lines if "lab-master-1" in line)
    worker = next(line for line in lines if "lab-worker-1" in line)
    assert "running" in master and "answers" in master
    assert "stopped" in worker and "no answer" in worker
    assert status.to_json()["machines"][1]["running"] is False
