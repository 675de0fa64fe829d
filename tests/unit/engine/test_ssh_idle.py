"""An idle connection costs the controller next to nothing: paramiko's transport thread, left to its defaults,
wakes ten times a second per connection to see whether it was closed.

Real paramiko on both ends, over loopback: a minimal in-process SSH server that accepts one key.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from kbuild.engine.ssh import SSHTarget, connect

IDLE_SECONDS = 1.5


class _AcceptOneKey(paramiko.ServerInterface):
    def __init__(self, key: paramiko.PKey) -> None:
        self.key = key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self.key else paramiko.AUTH_FAILED


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    """(port, client key file, known_hosts naming the server's key)."""
    host_key = paramiko.ECDSAKey.generate()
    client_key = paramiko.ECDSAKey.generate()
    key_file = tmp_path / "id_ecdsa"
    client_key.write_private_key_file(str(key_file))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        conn, _ = listener.accept()
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        transports.append(transport)
        transport.start_server(server=_AcceptOneKey(client_key))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, key_file, tmp_path / "known_hosts"
    thread.join(5)
    for transport in transports:
        transport.close()
    listener.close()


def test_an_idle_connection_wakes_the_controller_about_once_a_second(server, monkeypatch) -> None:
    port, key_file, known_hosts = server
    watched: dict[str, threading.Thread] = {}  # the client's transport thread, once connected
    wakeups: list[float] = []
    plain = paramiko.packet.Packetizer._check_keepalive

    def counted(packetizer: paramiko.packet.Packetizer) -> None:  # runs on each wake-up with nothing to read
        if threading.current_thread() is watched.get("client"):
            wakeups.append(time.monotonic())
        plain(packetizer)

    monkeypatch.setattr(paramiko.packet.Packetizer, "_check_keepalive", counted)
    conn = connect(SSHTarget("node-1", "127.0.0.1", port=port, key_file=str(key_file), retries=0),
                   known_hosts, strict=True)
    try:
        transport = conn._client.get_transport()
        assert transport is not None
        watched["client"] = transport
        time.sleep(IDLE_SECONDS)
    finally:
        conn.close()
    # paramiko's default (0.1 s) would wake it about 15 times here; at least one shows the count is real.
    assert 1 <= len(wakeups) <= IDLE_SECONDS + 1, wakeups
