"""Connecting: a bounded retry of transient failures, a connect timeout, and no retry where it cannot help.

Real paramiko against loopback listeners that misbehave the way unreachable hosts do.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from kbuild.engine import ssh
from kbuild.engine.ssh import SSHTarget, connect
from kbuild.errors import UnreachableError


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections and either closes them at once or says nothing."""

    def __init__(self, *, silent: bool) -> None:
        self.silent = silent
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            if self.silent:
                self.held.append(conn)  # no SSH banner, ever: the client's timeout must end it
            else:
                conn.close()  # like sshd dropping the connection (MaxStartups, a restart)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses between attempts, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(ssh.time, "sleep", recorded.append)
    return recorded


@pytest.fixture
def closing() -> Iterator[Listener]:
    listener = Listener(silent=False)
    yield listener
    listener.close()


@pytest.fixture
def silent() -> Iterator[Listener]:
    listener = Listener(silent=True)
    yield listener
    listener.close()


def target(port: int, **settings: object) -> SSHTarget:
    return SSHTarget(name="node-1", host="127.0.0.1", port=port, user="kbuild", **settings)  # type: ignore[arg-type]


def test_a_dropped_connection_is_retried_a_bounded_number_of_times(closing: Listener, sleeps: list[float],
                                                                   tmp_path: Path) -> None:
    with pytest.raises(UnreachableError) as caught:
        connect(target(closing.port, retries=2, connect_timeout=2), tmp_path / "known_hosts", strict=False)
    assert closing.accepted == 3  # the first attempt and two retries, no more
    assert sleeps == [2.0, 4.0]  # a growing pause between attempts
    assert f"node-1: cannot connect to 127.0.0.1:{closing.port} after 3 attempts" in caught.value.message
    assert "ssh.connect_timeout and ssh.retries" in (caught.value.hint or "")
    assert not (tmp_path / "known_hosts").exists()  # no key was offered, so nothing was recorded


def test_a_host_that_never_answers_times_out_without_a_traceback(silent: Listener, sleeps: list[float], tmp_path: Path,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    with pytest.raises(UnreachableError) as caught:
        connect(target(silent.port, retries=0, connect_timeout=0.5), tmp_path / "known_hosts", strict=False)
    assert time.monotonic() - started < 10  # the connect timeout ended it, not paramiko's defaults
    assert silent.accepted == 1 and sleeps == []
    assert caught.value.message.endswith("after 1 attempt: no SSH handshake (the connection was closed, or nothing "
                                         "answered within the connect timeout)")
    for thread in threading.enumerate():  # paramiko's transport thread reports its failure as it ends
        if isinstance(thread, paramiko.Transport):
            thread.join(5)
    assert "Traceback" not in capfd.readouterr().err  # kbuild says what happened; paramiko's log stays quiet


def test_nothing_listening_is_unreachable_not_a_crash(sleeps: list[float], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, so nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UnreachableError, match=f"127.0.0.1:{port} after 2 attempts"):
        connect(target(port, retries=1), tmp_path / "known_hosts", strict=False)
    assert sleeps == [2.0]
