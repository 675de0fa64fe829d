"""Command lines the lab builds (nspawn, the detaching launcher, nsenter) and the process helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kbuild.lab.machine import alive, exec_command, launcher_command, nspawn_command


def test_nspawn_command_boots_a_machine_on_the_bridge():
    command = nspawn_command("lab-worker-1", Path("/l/m/rootfs"), "kb-lab", containerd_dir=Path("/l/m/containerd"))
    assert command[:2] == ["systemd-nspawn", "--boot"]
    for option in ("--directory=/l/m/rootfs", "--machine=lab-worker-1", "--register=no", "--keep-unit",
                   "--network-bridge=kb-lab", "--capability=all", "--system-call-filter=@keyring bpf",
                   "--console=read-only", "--link-journal=no", "--resolv-conf=off",
                   "--bind=/l/m/containerd:/var/lib/containerd", "--bind-ro=/dev/kmsg"):
        assert option in command
    assert "--bind-ro=/dev/kmsg" not in nspawn_command("m", Path("/r"), "br", kmsg=False)
    assert not [c for c in nspawn_command("m", Path("/r"), "br") if c.startswith("--bind=")]


def test_exec_command_enters_every_namespace_with_a_clean_environment():
    argv = exec_command(4242, "systemctl is-active ssh")
    assert argv[:2] == ["nsenter", "--target=4242"]
    for flag in ("--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd"):
        assert flag in argv
    assert argv[argv.index("--") + 1:argv.index("--") + 3] == ["/usr/bin/env", "-i"]
    assert argv[-3:] == ["/bin/sh", "-c", "systemctl is-active ssh"]
    assert exec_command(1, ["cat", "/etc/hostname"])[-2:] == ["cat", "/etc/hostname"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_launcher_detaches_joins_cgroups_and_logs(tmp_path):
    """Run the real launcher with a stand-in for nspawn: it prints the pid of a process that has
    written itself into every cgroup.procs and whose output goes to the log."""
    groups = [tmp_path / "cg-a", tmp_path / "cg b"]
    for group in groups:
        group.mkdir()
    log = tmp_path / "nspawn.log"
    stand_in = ["/bin/sh", "-c", 'echo "running as $$ with $# args: $*"; exec sleep 30', "sh", "one arg", "two"]
    launched = subprocess.run(launcher_command(stand_in, groups, log), capture_output=True, text=True,
                              start_new_session=True, timeout=10)
    pid = int(launched.stdout.strip())
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "running" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.05)
        assert alive(pid)
        assert log.read_text() == f"running as {pid} with 2 args: one arg two\n"
        for group in groups:
            assert (group / "cgroup.procs").read_text() == f"{pid}\n"
        assert os.getsid(pid) != os.getsid(0)  # not in our session: a terminal's Ctrl-C does not reach it
    finally:
        os.kill(pid, 9)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_launcher_refuses_to_start_outside_its_cgroups(tmp_path):
    log = tmp_path / "nspawn.log"
    missing = tmp_path / "no-such-cgroup"
    launched = subprocess.run(launcher_command(["/bin/sh", "-c", "echo started"], [missing], log),
                              capture_output=True, text=True, timeout=10)
    pid = int(launched.stdout.strip())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "started" not in log.read_text()


def test_alive_treats_missing_pids_as_dead():
    assert alive(os.getpid())
    assert not alive(2**22 + 12345)
