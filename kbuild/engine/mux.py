"""A run's side of the SSH connection keeper (kbuild.engine.muxd): reach a host through it, starting it if needed.

A host reached this way behaves as one reached directly: the same commands, the same errors (an
unreachable host, a changed host key), the same verification of its key when a login is made. Only the
login is spared when the keeper already holds one that still answers.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, Callable

from kbuild.engine import muxwire as wire
from kbuild.engine.muxd import SOCKET_NAME
from kbuild.engine.ssh import CHUNK, ByteSink, Connection, Result, SSHTarget, Stats, connect, stdin_source
from kbuild.errors import KbuildError, UnreachableError, UsageError
from kbuild.userdirs import runtime_home

DIRECTORY_VARIABLE = "KBUILD_SSH_KEEPER_DIR"  # where the keeper's socket lives, instead of the default
START_TIMEOUT = 15.0  # seconds a run waits for a keeper it started to listen (Python and paramiko load first)
_NOT_LISTENING = (errno.ENOENT, errno.ECONNREFUSED)


def keeper_directory() -> Path:
    """The keeper's directory: `$KBUILD_SSH_KEEPER_DIR`, else kbuild's runtime directory (kbuild.userdirs).
    Made private to the user if it is new, and refused if anyone else may enter it: whoever reaches the
    socket runs commands as root on every kept host."""
    chosen = os.environ.get(DIRECTORY_VARIABLE)
    directory = Path(chosen) if chosen else runtime_home()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        raise UsageError(f"cannot make the SSH connection keeper's directory {directory}: {exc.strerror}",
                         hint=f"set {DIRECTORY_VARIABLE} to a directory of your own, or set ssh.persist to 0") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise UsageError(f"the SSH connection keeper's directory {directory} is not private to this user "
                         f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o})",
                         hint=f"run `chmod 700 {directory}` if it is yours; else set {DIRECTORY_VARIABLE} "
                              "to a directory of your own")
    if len(str(directory / SOCKET_NAME).encode()) > 107:
        raise UsageError(f"the SSH connection keeper's directory {directory} is too deep for a Unix socket",
                         hint=f"set {DIRECTORY_VARIABLE} to a shorter path")
    return directory


def open_connection(target: SSHTarget, known_hosts: Path, *, strict: bool, stats: Stats) -> Connection:
    """The host through the keeper when `target.persist` asks for it, else over a connection of this run's own."""
    if target.persist > 0:
        return through_keeper(target, known_hosts, strict=strict, stats=stats)
    return connect(target, known_hosts, strict=strict, stats=stats)


def through_keeper(target: SSHTarget, known_hosts: Path, *, strict: bool, stats: Stats) -> Connection:
    """The host, through the keeper: a login only when the keeper holds none that still answers."""
    directory = keeper_directory()
    request = {"target": wire.target_payload(_absolute_keys(target)), "known_hosts": str(known_hosts.resolve()),
               "strict": strict}
    for attempt in range(2):
        sock = _reach_keeper(directory)
        try:
            wire.send_json(sock, wire.OPEN, request)
            kind, payload = wire.receive(sock)
        except (wire.WireError, OSError):
            sock.close()  # the keeper was on its way out as this run came: start another
            if attempt:
                raise KbuildError(f"{target.name}: the SSH connection keeper in {directory} stopped answering",
                                  hint="run again, or set ssh.persist to 0") from None
            continue
        answer = wire.decode(payload)
        if kind == wire.ERROR:
            sock.close()
            raise wire.error_from(answer)
        if answer.get("new"):
            stats.count(connections=1)
        return KeptConnection(target, sock, stats)
    raise AssertionError("unreachable")


def _absolute_keys(target: SSHTarget) -> SSHTarget:
    """The keeper runs from another working directory: key files are named absolutely."""
    def absolute(path: str | None) -> str | None:
        return str(Path(path).expanduser().resolve()) if path else path

    bastion = target.bastion
    if bastion is not None:
        bastion = replace(bastion, key_file=absolute(bastion.key_file))
    return replace(target, key_file=absolute(target.key_file), bastion=bastion)


def _reach_keeper(directory: Path) -> socket.socket:
    path = directory / SOCKET_NAME
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno not in _NOT_LISTENING:
                raise KbuildError(f"cannot reach the SSH connection keeper at {path}: {exc.strerror}") from None
        _ensure_starting(directory)
        if time.monotonic() > deadline:
            raise KbuildError(f"the SSH connection keeper did not start listening at {path} "
                              f"within {START_TIMEOUT:.0f}s", hint="set ssh.persist to 0 to connect without it")
        time.sleep(0.02)


_starting: dict[Path, subprocess.Popen[bytes]] = {}  # the keeper this process started, per directory
_starting_lock = threading.Lock()


def _ensure_starting(directory: Path) -> None:
    """Start a keeper unless this process already started one that has not exited. A run's hosts all arrive
    here at once on its first run: 100 keepers starting together (each loading Python and paramiko) cost
    the first logins 18 s at 100 hosts."""
    with _starting_lock:
        started = _starting.get(directory)
        if started is None or started.poll() is not None:  # none yet, or one that lost the race and exited
            _starting[directory] = _start_keeper(directory)


def _start_keeper(directory: Path) -> subprocess.Popen[bytes]:
    # Its own session and no inherited descriptors: it outlives the run, and whoever reads the run's
    # output (a pipe, a CI log) must not wait for the keeper to close it too.
    return subprocess.Popen([sys.executable, "-m", "kbuild.engine.muxd", str(directory)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


class KeptConnection(Connection):
    """A host held through the keeper, on one socket for as long as the run uses it."""

    def __init__(self, target: SSHTarget, sock: socket.socket, stats: Stats) -> None:
        self.target = target
        self.stats = stats
        self._sock = sock

    def _execute(self, argv: str, stdin: BinaryIO | bytes | None, timeout: float | None,
                 stdout_sink: ByteSink | None, progress: Callable[[int], None] | None) -> Result:
        wire.send_json(self._sock, wire.RUN, {"argv": argv, "timeout": timeout, "stdin": stdin is not None})
        sent = [0]
        feeder = None
        if stdin is not None:
            feeder = threading.Thread(target=self._feed, args=(stdin, sent, progress), daemon=True)
            feeder.start()
        out, err = bytearray(), bytearray()
        try:
            while True:
                kind, payload = wire.receive(self._sock)
                if kind == wire.STDOUT:
                    if stdout_sink is not None:
                        stdout_sink.write(payload)
                    else:
                        out += payload
                elif kind == wire.STDERR:
                    err += payload
                elif kind == wire.DONE:
                    rc = int(wire.decode(payload)["rc"])
                    break
                elif kind == wire.ERROR:
                    raise wire.error_from(wire.decode(payload))
                else:
                    raise wire.WireError(f"unexpected {kind!r} frame")
        except (wire.WireError, OSError):
            raise UnreachableError(f"{self.target.name}: the SSH connection keeper went away during a command",
                                   hint="run again; set ssh.persist to 0 to connect without it") from None
        finally:
            if feeder is not None:
                feeder.join()
        self.stats.count(round_trips=1, sent=sent[0])
        return Result(rc, bytes(out), bytes(err))

    def _feed(self, stdin: BinaryIO | bytes, sent: list[int], progress: Callable[[int], None] | None) -> None:
        source = stdin_source(stdin)
        try:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                wire.send(self._sock, wire.STDIN, chunk)
                sent[0] += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            wire.send(self._sock, wire.STDIN_END)
        except OSError:
            pass  # the keeper went away: the reader reports it

    def close(self) -> None:
        self._sock.close()  # the keeper keeps the connection for `persist` seconds

    def discard(self) -> None:
        try:
            wire.send(self._sock, wire.DROP)
        except OSError:
            pass
        self._sock.close()
