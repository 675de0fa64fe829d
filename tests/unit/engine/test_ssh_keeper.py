"""`ssh.persist`: a connection kept between runs by the keeper (kbuild.engine.muxd) spares the next run its login,
and a host reached through it behaves as one reached directly: output, exit status, stdin, errors.

Real paramiko on both ends over loopback (tests/unit/engine/sshserver.py), and a real keeper process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from kbuild.engine import mux
from kbuild.engine.mux import open_connection
from kbuild.engine.muxd import SOCKET_NAME, keeper_pid
from kbuild.engine.ssh import SSHConnection, SSHTarget, Stats
from kbuild.errors import HostKeyError, KbuildError, UnreachableError, UsageError
from kbuild.lab.machine import alive
from tests.unit.engine.sshserver import LoopbackServer, executing_server


@pytest.fixture
def keeper_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private directory for this test's keeper (short: a Unix socket's path is at most 107 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="kbk-"))
    monkeypatch.setenv(mux.DIRECTORY_VARIABLE, str(directory))
    yield directory
    _kill_keeper(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[LoopbackServer]:
    with executing_server(tmp_path) as server:
        yield server


def _kill_keeper(directory: Path) -> None:
    pid = keeper_pid(directory)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _target(server: LoopbackServer, persist: float = 30.0, **kw) -> SSHTarget:
    return SSHTarget("node-1", "127.0.0.1", port=server.port, key_file=str(server.key_file), retries=0,
                     persist=persist, **kw)


def test_a_second_run_reuses_the_first_runs_login(host: LoopbackServer, keeper_dir: Path) -> None:
    first, second = Stats(), Stats()
    conn = open_connection(_target(host), host.known_hosts, strict=True, stats=first)
    assert conn.run("echo one").out == "one\n"
    conn.close()
    conn = open_connection(_target(host), host.known_hosts, strict=True, stats=second)
    assert conn.run("echo two").out == "two\n"
    conn.close()
    assert host.logins == 1
    assert (first.connections, second.connections) == (1, 0)
    assert (first.round_trips, second.round_trips) == (1, 1)
    assert (keeper_dir / SOCKET_NAME).exists()


def test_a_command_through_the_keeper_gives_what_a_direct_one_gives(host: LoopbackServer, keeper_dir: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # more than one frame of stdin and of stdout
    results = []
    for persist in (30.0, 0.0):
        conn = open_connection(_target(host, persist), host.known_hosts, strict=True, stats=Stats())
        progress: list[int] = []
        try:
            echoed = conn.run("cat; echo done >&2; exit 3", stdin=payload, progress=progress.append)
            script = conn.run_script(b"echo from-script; printf '%s' \"$0\"\n")
        finally:
            conn.close()
        results.append((echoed.rc, hashlib.sha256(echoed.stdout).hexdigest(), echoed.err, sum(progress),
                        script.out))
    kept, direct = results
    assert kept == direct
    assert kept[0] == 3 and kept[1] == hashlib.sha256(payload).hexdigest() and kept[2] == "done\n"
    assert kept[3] == len(payload)
    assert kept[4] == "from-script\nsh"


def test_a_download_reaches_the_sink_and_a_slow_command_times_out(host: LoopbackServer, keeper_dir: Path) -> None:
    class Sink:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.chunks.append(data)

    sink = Sink()
    conn = open_connection(_target(host), host.known_hosts, strict=True, stats=Stats())
    try:
        result = conn.run("head -c 2000000 /dev/zero", stdout_sink=sink)
        assert result.ok and result.stdout == b""
        assert sum(map(len, sink.chunks)) == 2_000_000
        with pytest.raises(KbuildError, match="node-1: a command did not finish within 1s"):
            conn.run("sleep 5", timeout=1)
        assert conn.run("echo still-here").out == "still-here\n"  # the connection survives a timeout
    finally:
        conn.close()


def test_a_discarded_connection_is_not_kept(host: LoopbackServer, keeper_dir: Path) -> None:
    conn = open_connection(_target(host), host.known_hosts, strict=True, stats=Stats())
    assert conn.run("true").ok
    conn.discard()  # as the pool does for a host that rebooted
    conn = open_connection(_target(host), host.known_hosts, strict=True, stats=Stats())
    assert conn.run("true").ok
    conn.close()
    assert host.logins == 2


def test_a_changed_known_hosts_file_means_a_new_verified_login(host: LoopbackServer, keeper_dir: Path) -> None:
    def logins() -> int:
        stats = Stats()
        open_connection(_target(host), host.known_hosts, strict=True, stats=stats).close()
        return stats.connections

    assert logins() == 1
    other = paramiko.ECDSAKey.generate()
    with host.known_hosts.open("a") as known:
        known.write(f"other.example {other.get_name()} {other.get_base64()}\n")
    assert logins() == 1  # the trusted keys changed: the kept login is not used, the host is verified again
    trusted = host.known_hosts.read_text()
    host.known_hosts.write_text(f"[127.0.0.1]:{host.port} {other.get_name()} {other.get_base64()}\n")
    with pytest.raises(HostKeyError, match="127.0.0.1"):
        logins()
    host.known_hosts.write_text(trusted)
    assert logins() == 0  # the same trust as the kept login was verified under


def test_an_unreachable_host_is_reported_as_such(keeper_dir: Path, tmp_path: Path) -> None:
    with executing_server(tmp_path) as server:
        pass  # closed: nothing listens on its port now
    with pytest.raises(UnreachableError, match="node-1: cannot connect to 127.0.0.1"):
        open_connection(_target(server), server.known_hosts, strict=True, stats=Stats())


def test_the_keeper_goes_once_its_connections_are_past_their_time(host: LoopbackServer, keeper_dir: Path) -> None:
    conn = open_connection(_target(host, persist=0.5), host.known_hosts, strict=True, stats=Stats())
    assert conn.run("true").ok
    pid = keeper_pid(keeper_dir)
    assert pid is not None and alive(pid)
    time.sleep(1.5)
    assert alive(pid), "a connection a run still holds is kept, however long the run takes"
    conn.close()
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)
    assert not (keeper_dir / SOCKET_NAME).exists()
    conn = open_connection(_target(host, persist=0.5), host.known_hosts, strict=True, stats=Stats())  # a new keeper
    assert conn.run("true").ok
    conn.close()
    assert host.logins == 2


def test_a_killed_keeper_fails_the_command_it_served_and_the_next_run_starts_another(host: LoopbackServer,
                                                                                     keeper_dir: Path) -> None:
    conn = open_connection(_target(host), host.known_hosts, strict=True, stats=Stats())
    _kill_keeper(keeper_dir)
    with pytest.raises(UnreachableError, match="node-1: the SSH connection keeper went away"):
        conn.run("true")
    conn.close()
    assert (keeper_dir / SOCKET_NAME).exists()  # left behind by the killed keeper
    conn = open_connection(_target(host), host.known_hosts, strict=True, stats=Stats())
    assert conn.run("echo back").out == "back\n"
    conn.close()


def test_without_persist_nothing_is_kept(host: LoopbackServer, keeper_dir: Path) -> None:
    conn = open_connection(_target(host, persist=0.0), host.known_hosts, strict=True, stats=Stats())
    assert isinstance(conn, SSHConnection)
    conn.close()
    assert list(keeper_dir.iterdir()) == []


def test_a_keeper_directory_others_may_enter_is_refused(host: LoopbackServer, keeper_dir: Path) -> None:
    keeper_dir.chmod(0o755)
    with pytest.raises(UsageError, match=f"{keeper_dir} is not private to this user .*mode 0755"):
        open_connection(_target(host), host.known_hosts, strict=True, stats=Stats())
    assert host.logins == 0


def test_a_run_that_goes_away_mid_command_lets_go_of_the_host(host: LoopbackServer, keeper_dir: Path) -> None:
    """Ctrl-C during a long command: the keeper closes the command's channel, as the run's own connection
    closing would have, instead of serving a run that is gone until the command ends."""
    conn = open_connection(_target(host, persist=0.5), host.known_hosts, strict=True, stats=Stats())
    pid = keeper_pid(keeper_dir)
    assert pid is not None
    failed: list[BaseException] = []

    def long_command() -> None:
        try:
            conn.run("sleep 60")
        except BaseException as exc:  # the socket is shut under it
            failed.append(exc)

    runner = threading.Thread(target=long_command, daemon=True)
    runner.start()
    time.sleep(1.0)
    conn._sock.shutdown(socket.SHUT_RDWR)  # what the kernel does to an interrupted run's socket
    runner.join(10)
    assert failed and not runner.is_alive()
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the keeper still served the run that went away"


def test_hosts_arriving_at_once_start_one_keeper(host: LoopbackServer, keeper_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A first run reaches all its hosts at once: each starting a keeper of its own (Python and paramiko
    loading 100 times over) cost a 100-host run 18 s before its first login."""
    started = []
    plain = mux._start_keeper

    def counted(directory: Path):
        started.append(directory)
        return plain(directory)

    monkeypatch.setattr(mux, "_start_keeper", counted)
    connections = []

    def reach() -> None:
        connections.append(open_connection(_target(host), host.known_hosts, strict=True, stats=Stats()))

    threads = [threading.Thread(target=reach) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(connections) == 12 and all(c.run("true").ok for c in connections)
    for conn in connections:
        conn.close()
    assert started == [keeper_dir]
    assert host.logins == 1  # and the keeper logged in once for all of them


def test_an_inventorys_ssh_persist_takes_the_cli_through_the_keeper(host: LoopbackServer, keeper_dir: Path,
                                                                    cluster_from) -> None:
    """What every command uses (kbuild.connect.open_pool) honours `ssh.persist`: two pools, one login."""
    from kbuild.connect import open_pool

    cluster = cluster_from(f"""\
        cluster: {{name: t}}
        ssh: {{key_file: {host.key_file}, port: {host.port}, known_hosts: {host.known_hosts}, persist: 30,
               host_key_policy: strict, retries: 0}}
        hosts:
          m1: {{address: 198.18.0.10, roles: [etcd, control-plane], ssh: {{host: 127.0.0.1}}}}
        """)
    for expected in ("one", "two"):
        with open_pool(cluster) as pool:
            assert pool.get("m1").run(f"echo {expected}").out == f"{expected}\n"
    assert host.logins == 1
