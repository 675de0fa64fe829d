"""SSH transport (paramiko): one connection per host, reused for every command and upload of a run (and by
later runs, through kbuild.engine.muxd, when `ssh.persist` asks for it).

Everything goes through exec channels: commands, and file transfers as a stream on the command's
stdin. That works the same for root and for a user with sudo (no SFTP, no second login), and
lets a host receive all of a run's files in a single round trip.
"""

from __future__ import annotations

import errno
import io
import logging
import select
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Protocol

import paramiko

from kbuild.engine.hostkeys import AcceptNewPolicy, StrictPolicy, changed_key_error, known_host_name, load_into
from kbuild.errors import HostKeyError, KbuildError, UnreachableError

CHUNK = 256 * 1024
WAIT_POLL = 0.5  # seconds between looks at a command's deadline while it sends nothing
# paramiko's transport thread logs a failed handshake with a traceback; with no handler configured,
# Python would print it on stderr. kbuild reports every connection failure itself, in one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
# What paramiko says when no SSH handshake happened: the peer closed the connection or stayed silent past
# the connect timeout (which of the two messages comes depends on a race in paramiko).
NO_HANDSHAKE = ("Error reading SSH protocol banner", "No existing session")


@dataclass(frozen=True)
class Jump:
    """A bastion (jump host) the connection goes through."""

    host: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class SSHTarget:
    name: str  # the inventory's name for the host, used in every message
    host: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    become: bool = False  # wrap commands in `sudo -n`
    bastion: Jump | None = None
    connect_timeout: float = 10.0
    retries: int = 2
    # Seconds a connection outlives the run that opened it, kept by kbuild.engine.muxd for the next run (as
    # OpenSSH's ControlPersist); 0 closes it with the run. See kbuild.engine.mux.open_connection.
    persist: float = 0.0


def stdin_source(stdin: BinaryIO | bytes) -> BinaryIO:
    """A command's stdin as something to read chunks from, whether it was given as bytes or as a file."""
    return io.BytesIO(stdin) if isinstance(stdin, (bytes, bytearray)) else stdin


class ByteSink(Protocol):
    """Where a command's stdout goes as it arrives, instead of into memory: a file, or a hashing wrapper."""

    def write(self, data: bytes, /) -> object: ...


@dataclass
class Result:
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")


@dataclass
class Stats:
    connections: int = 0
    round_trips: int = 0
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, connections: int = 0, round_trips: int = 0, sent: int = 0) -> None:
        with self.lock:
            self.connections += connections
            self.round_trips += round_trips
            self.bytes_sent += sent


class Connection:
    """What a connection to one host offers: commands under sh, scripts on stdin. Not shared between threads;
    the runner uses one thread per host."""

    target: SSHTarget

    def run(self, command: str, *, stdin: BinaryIO | bytes | None = None, timeout: float | None = 600,
            stdout_sink: ByteSink | None = None, progress: Callable[[int], None] | None = None) -> Result:
        """Run `command` under sh (as root through sudo when `become`), feeding `stdin`, and wait for it.

        `stdout_sink` receives stdout as it arrives (for large downloads) instead of it being kept.
        """
        return self._execute(f"sh -c {shlex.quote(command)}", stdin, timeout, stdout_sink, progress)

    def run_script(self, script: bytes, *, timeout: float | None = 600) -> Result:
        """Run a shell script fed on stdin to `sh -s` itself: no `sh -c` around it, so one program start less
        on the host than `run("exec sh -s")` (about 0.6 ms of a host's CPU, on every run's facts)."""
        return self._execute("sh -s", script, timeout, None, None)

    def _execute(self, argv: str, stdin: BinaryIO | bytes | None, timeout: float | None,
                 stdout_sink: ByteSink | None, progress: Callable[[int], None] | None) -> Result:
        raise NotImplementedError

    def close(self) -> None:
        """The run is done with the host."""
        raise NotImplementedError

    def discard(self) -> None:
        """The connection is dead (the host rebooted): close it, and keep nothing of it for a later run."""
        self.close()


class SSHConnection(Connection):
    """An open SSH connection of this process's own to one host (paramiko)."""

    def __init__(self, target: SSHTarget, client: paramiko.SSHClient, jump: paramiko.SSHClient | None,
                 stats: Stats) -> None:
        self.target = target
        self._client = client
        self._jump = jump
        self.stats = stats
        # Set when whoever asked for the command has gone (a keeper's run was interrupted): the command's
        # channel is closed, as the run's own connection would have been.
        self.abandoned: threading.Event | None = None

    def _execute(self, argv: str, stdin: BinaryIO | bytes | None, timeout: float | None,
                 stdout_sink: ByteSink | None, progress: Callable[[int], None] | None) -> Result:
        wrapped = f"sudo -n -- {argv}" if self.target.become and self.target.user != "root" else argv
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise UnreachableError(f"{self.target.name}: the SSH connection was lost")
        deadline = None if timeout is None else time.monotonic() + timeout
        channel: paramiko.Channel | None = None
        try:
            # The host is up (the connection is): a slow answer to the channel open is a busy host, so it may
            # take as long as the command may (a 200-host run on 2 cores saw opens past connect_timeout).
            channel = transport.open_session(timeout=max(timeout, self.target.connect_timeout)
                                             if timeout is not None else None)
            channel.exec_command(wrapped)
            out, err = bytearray(), bytearray()
            sent = self._feed(channel, stdin, out, err, stdout_sink, progress) if stdin is not None else 0
            channel.shutdown_write()
            while True:
                got = self._drain(channel, out, err, stdout_sink)
                # sshd may send the exit status before the last of the output: done only after its EOF.
                finished = channel.exit_status_ready() and (channel.eof_received or channel.closed)
                if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    channel.close()
                    raise TimeoutError
                if self.abandoned is not None and self.abandoned.is_set():
                    channel.close()
                    raise KbuildError(f"{self.target.name}: the run that asked for the command went away")
                if not got:
                    # The channel's pipe is readable on stdout and stderr data, on EOF and on close, so the
                    # timeout only bounds how late the deadline is seen: a wake-up every 50 ms cost each
                    # waiting host about 2 ms of the controller's CPU a second.
                    select.select([channel], [], [], WAIT_POLL)
            rc = channel.recv_exit_status()
            channel.close()
        except (socket.timeout, TimeoutError):
            raise KbuildError(f"{self.target.name}: a command did not finish within {timeout:.0f}s") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise UnreachableError(f"{self.target.name}: the SSH connection failed during a command: {exc}") from None
        except BaseException:
            # Whatever else stopped the command (Ctrl-C, its stdin's source failing): the host sees its channel
            # closed, as when the connection goes, and a kept connection carries no half-fed command on.
            if channel is not None:
                channel.close()
            raise
        self.stats.count(round_trips=1, sent=sent)
        if rc == 1 and self.target.become and b"sudo: a password is required" in err:
            raise KbuildError(f"{self.target.name}: sudo needs a password for {self.target.user}",
                              hint="give the user passwordless sudo (NOPASSWD) or connect as root")
        return Result(rc, bytes(out), bytes(err))

    def _feed(self, channel: paramiko.Channel, stdin: BinaryIO | bytes, out: bytearray, err: bytearray,
              sink: ByteSink | None, progress: Callable[[int], None] | None) -> int:
        sent = 0
        source = stdin_source(stdin)
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                return sent
            try:
                channel.sendall(chunk)
            except OSError:
                return sent  # the remote side stopped reading: its exit status says why
            sent += len(chunk)
            if progress is not None:
                progress(len(chunk))
            self._drain(channel, out, err, sink)

    @staticmethod
    def _drain(channel: paramiko.Channel, out: bytearray, err: bytearray, sink: ByteSink | None) -> bool:
        """Take whatever output is buffered, without blocking."""
        got = False
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(CHUNK)
            got = True
        while channel.recv_ready():
            data = channel.recv(CHUNK)
            if not data:
                break
            if sink is not None:
                sink.write(data)
            else:
                out += data
            got = True
        return got

    def for_target(self, target: SSHTarget) -> SSHConnection:
        """This connection, speaking for `target` (its name in messages, its `become`): the keeper serves runs
        whose inventories may name and wrap the same host differently."""
        return SSHConnection(target, self._client, self._jump, self.stats)

    def answers(self, timeout: float) -> bool:
        """Whether the host still answers on this connection: a channel opened and closed (sshd starts no
        process for that). A kept connection to a host that went away looks active until TCP gives up."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            return False
        try:
            transport.open_session(timeout=timeout).close()
        except (paramiko.SSHException, OSError, EOFError):
            return False
        return True

    def close(self) -> None:
        self._client.close()
        if self._jump is not None:
            self._jump.close()


def connect(target: SSHTarget, known_hosts: Path, *, strict: bool, stats: Stats | None = None) -> SSHConnection:
    """Open a verified connection of this process's own, retrying transient failures `target.retries` times.
    (`kbuild.engine.mux.open_connection` goes through the keeper instead when `target.persist` asks for it.)"""
    stats = stats or Stats()
    attempts = target.retries + 1
    last: Exception | None = None
    for attempt in range(attempts):
        jump_client = None
        try:
            sock = None
            if target.bastion is not None:
                jump_client, sock = _via_bastion(target, known_hosts, strict)
            client = _client(known_hosts, strict, target.host, target.port)
            client.connect(
                target.host, port=target.port, username=target.user, key_filename=target.key_file,
                timeout=target.connect_timeout, banner_timeout=target.connect_timeout,
                auth_timeout=target.connect_timeout, allow_agent=True, look_for_keys=target.key_file is None,
                sock=sock, transport_factory=_QuietTransport,
            )
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(30)
            stats.count(connections=1)
            return SSHConnection(target, client, jump_client, stats)
        except paramiko.BadHostKeyException as exc:
            _close(jump_client)
            raise changed_key_error(target.host, target.port, known_hosts, exc) from None
        except HostKeyError:
            _close(jump_client)
            raise
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            _close(jump_client)  # a local file problem (a key file, say): retrying will not help
            raise KbuildError(f"{target.name}: cannot read {exc.filename or 'a local file'}: {exc.strerror}") from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            _close(jump_client)
            if _is_auth_failure(exc):
                raise _auth_error(target, exc) from None
            last = exc
            if attempt + 1 < attempts:
                time.sleep(min(2.0 * (attempt + 1), 5.0))
    via = f" via {target.bastion.host}" if target.bastion else ""
    raise UnreachableError(
        f"{target.name}: cannot connect to {target.host}:{target.port}{via} after {attempts} attempt"
        f"{'s' if attempts > 1 else ''}: {_reason(last)}",
        hint="is the host up and sshd listening? (ssh.connect_timeout and ssh.retries tune the patience)",
    )


def _is_auth_failure(exc: BaseException) -> bool:
    # paramiko says "No authentication methods available" (a plain SSHException) when it has no key to
    # offer at all: that is a wrong setting, not a flaky network, so it is not retried either.
    return isinstance(exc, paramiko.AuthenticationException) or "No authentication methods" in str(exc)


def _auth_error(target: SSHTarget, exc: BaseException) -> UnreachableError:
    key = f" with key {target.key_file}" if target.key_file else " with ssh-agent/default keys"
    return UnreachableError(
        f"{target.name}: authentication failed for {target.user}@{target.host}:{target.port}{key}: {exc}",
        hint="check ssh.user and ssh.key_file in the inventory (or load the key into ssh-agent), and the "
             "host's authorized_keys",
    )


class _QuietTransport(paramiko.Transport):
    """paramiko's transport thread wakes from its socket every `_active_check_timeout` seconds (0.1) only to see
    whether the transport was closed, which `close()` tells it anyway through the packetizer it closes. Idle
    connections then cost the controller CPU in proportion to how long a run lasts: 200 hosts waiting on
    their commands made 2000 wake-ups a second. One a second is enough for the keepalive and rekey checks
    that ride on the same wake-up."""

    _active_check_timeout = 1.0


def _client(known_hosts: Path, strict: bool, host: str, port: int) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    load_into(client, known_hosts, known_host_name(host, port))
    client.set_missing_host_key_policy(StrictPolicy(known_hosts) if strict else AcceptNewPolicy(known_hosts))
    return client


def _via_bastion(target: SSHTarget, known_hosts: Path, strict: bool) -> tuple[paramiko.SSHClient, paramiko.Channel]:
    jump = target.bastion
    assert jump is not None
    client = _client(known_hosts, strict, jump.host, jump.port)
    try:
        client.connect(jump.host, port=jump.port, username=jump.user or target.user,
                       key_filename=jump.key_file or target.key_file, timeout=target.connect_timeout,
                       banner_timeout=target.connect_timeout, auth_timeout=target.connect_timeout,
                       allow_agent=True, look_for_keys=(jump.key_file or target.key_file) is None,
                       transport_factory=_QuietTransport)
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_channel("direct-tcpip", (target.host, target.port), ("127.0.0.1", 0),
                                         timeout=target.connect_timeout)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise changed_key_error(jump.host, jump.port, known_hosts, exc) from None
    except BaseException:
        client.close()
        raise
    return client, channel


def _close(client: paramiko.SSHClient | None) -> None:
    if client is not None:
        client.close()


REFUSED = "connection refused (the host is up, but nothing listens on that port: is sshd running?)"


def _reason(exc: Exception | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # paramiko folds every address's failure into "Unable to connect to port N": say which one it was.
        causes = {e.errno for e in exc.errors.values()}
        if causes == {errno.ECONNREFUSED}:
            return REFUSED
        if causes == {errno.EHOSTUNREACH}:
            return "no route to host"
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    text = str(exc) or type(exc).__name__
    if isinstance(exc, paramiko.SSHException) and text in NO_HANDSHAKE:
        return "no SSH handshake (the connection was closed, or nothing answered within the connect timeout)"
    return text


class ConnectionPool:
    """Connections for a whole run: opened on first use, one per host, closed at the end."""

    def __init__(self, targets: dict[str, SSHTarget], known_hosts: Path, *, strict: bool = False,
                 connector: Callable[[SSHTarget, Stats], Connection] | None = None) -> None:
        self.targets = targets
        self._connector = connector or (lambda t, stats: connect(t, known_hosts, strict=strict, stats=stats))
        self.known_hosts = known_hosts
        self.strict = strict
        self.stats = Stats()
        self._connections: dict[str, Connection] = {}
        self._failures: dict[str, KbuildError] = {}
        self._locks = {name: threading.Lock() for name in targets}

    def get(self, name: str) -> Connection:
        with self._locks[name]:
            if name in self._failures:
                raise self._failures[name]
            if name not in self._connections:
                try:
                    self._connections[name] = self._connector(self.targets[name], self.stats)
                except (UnreachableError, HostKeyError) as exc:
                    self._failures[name] = exc  # don't retry an unreachable host in every phase
                    raise
            return self._connections[name]

    def forget(self, name: str) -> None:
        """Drop a host's connection (e.g. after it rebooted) so the next use reconnects."""
        with self._locks[name]:
            conn = self._connections.pop(name, None)
            self._failures.pop(name, None)
        if conn is not None:
            conn.discard()

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
