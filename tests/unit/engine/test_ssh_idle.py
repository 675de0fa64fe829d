"""An idle connection costs the controller next to nothing: paramiko's transport thread, left to its defaults,
wakes ten times a second per connection to see whether it was closed.

Real paramiko on both ends, over loopback (tests/unit/engine/sshserver.py).
"""

from __future__ import annotations

import threading
import time

import paramiko
import pytest

from kbuild.engine.ssh import SSHTarget, connect
from tests.unit.engine.sshserver import LoopbackServer

IDLE_SECONDS = 1.5


def test_an_idle_connection_wakes_the_controller_about_once_a_second(ssh_server: LoopbackServer,
                                                                     monkeypatch) -> None:
    server = ssh_server
    watched: dict[str, threading.Thread] = {}  # the client's transport thread, once connected
    wakeups: list[float] = []
    plain = paramiko.packet.Packetizer._check_keepalive

    def counted(packetizer: paramiko.packet.Packetizer) -> None:  # runs on each wake-up with nothing to read
        if threading.current_thread() is watched.get("client"):
            wakeups.append(time.monotonic())
        plain(packetizer)

    monkeypatch.setattr(paramiko.packet.Packetizer, "_check_keepalive", counted)
    conn = connect(SSHTarget("node-1", "127.0.0.1", port=server.port, key_file=str(server.key_file), retries=0),
                   server.known_hosts, strict=True)
    try:
        transport = conn._client.get_transport()
        assert transport is not None
        watched["client"] = transport
        time.sleep(IDLE_SECONDS)
    finally:
        conn.close()
    # paramiko's default (0.1 s) would wake it about 15 times here; at least one shows the count is real.
    assert 1 <= len(wakeups) <= IDLE_SECONDS + 1, wakeups
