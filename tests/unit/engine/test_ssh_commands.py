"""What sshd is asked to run: a command under `sh -c`, a script on stdin of `sh -s` itself (one program start
less on the host for every run's facts), both through `sudo -n` for a user that is not root; and a busy host's
slow channel open is waited for as long as the command may take, not failed as unreachable.

Real paramiko on both ends, over loopback (tests/unit/engine/sshserver.py)."""

from __future__ import annotations

import pytest

from pathlib import Path

from kbuild.engine.ssh import SSHTarget, connect
from tests.unit.engine.sshserver import LoopbackServer, loopback_server


@pytest.mark.parametrize(("user", "become", "prefix"), [("kbuild", True, "sudo -n -- "), ("root", True, ""),
                                                         ("kbuild", False, "")])
def test_a_command_runs_under_sh_c_and_a_script_under_sh_s(ssh_server: LoopbackServer, user: str, become: bool,
                                                           prefix: str) -> None:
    target = SSHTarget("node-1", "127.0.0.1", port=ssh_server.port, user=user, key_file=str(ssh_server.key_file),
                       become=become, retries=0)
    conn = connect(target, ssh_server.known_hosts, strict=True)
    try:
        assert conn.run("echo 'a b'").ok
        assert conn.run_script(b"echo facts\n").ok
    finally:
        conn.close()
    assert ssh_server.commands == [f"{prefix}sh -c 'echo '\"'\"'a b'\"'\"''", f"{prefix}sh -s"]


def test_a_channel_slow_to_open_is_waited_for_up_to_the_commands_timeout(tmp_path: Path) -> None:
    with loopback_server(tmp_path, open_delay=1.5) as server:
        target = SSHTarget("node-1", "127.0.0.1", port=server.port, key_file=str(server.key_file),
                           connect_timeout=0.5, retries=0)
        conn = connect(target, server.known_hosts, strict=True)
        try:
            assert conn.run("true", timeout=30).ok
        finally:
            conn.close()
    assert server.commands == ["sh -c true"]
