"""The SSH connection keeper: holds the connections of runs that asked for `ssh.persist`, for the next run.

A login costs a host far more than kbuild's own work on a no-op run: sshd starts a fresh copy of itself
for every connection (about 32 ms of a lab machine's CPU, against kbuild's 12 to 14). So, as OpenSSH's
ControlPersist does for Ansible, a connection may outlive its run by `persist` seconds, and a run within
that time opens a channel on it instead of logging in again.

One keeper runs per user, started by the first run that needs one (kbuild.engine.mux). It listens on a
Unix socket in a directory only that user may enter, and serves only peers of its own uid. A run holds
one socket per host for as long as it uses the host, and sends its requests on it; a connection is
closed once no run holds it and `persist` seconds have passed, and the keeper exits when it keeps none.
Run as `python -m kbuild.engine.muxd DIRECTORY`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import socket
import socketserver
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kbuild.engine import muxwire as wire
from kbuild.engine.ssh import CHUNK, SSHConnection, SSHTarget, Stats, connect
from kbuild.errors import KbuildError, UnreachableError

SOCKET_NAME = "keeper.sock"
LOCK_NAME = "keeper.lock"  # held by the keeper that serves: a second one started at the same time exits
PID_NAME = "keeper.pid"  # for the bench, which adds the keeper's CPU to the runs it served
REAP_EVERY = 0.5  # seconds between looks for connections past their time
LINGER = 2.0  # seconds the keeper waits, holding nothing, for the run that started it to come


def keeper_pid(directory: Path) -> int | None:
    """The pid the last keeper of `directory` wrote (it may have exited since), or None."""
    try:
        return int((directory / PID_NAME).read_text())
    except (OSError, ValueError):
        return None


@dataclass(eq=False)
class Kept:
    key: str  # login_key's
    connection: SSHConnection
    persist: float
    last_used: float
    holders: int = 0  # runs holding the host now: never closed under them


class Keeper:
    """The kept connections, by what makes two targets the same login."""

    def __init__(self) -> None:
        self.kept: dict[str, Kept] = {}
        self.lock = threading.Lock()
        self.locks: dict[str, threading.Lock] = {}
        self.handlers = 0
        self.last_activity = time.monotonic()

    def hold(self, target: SSHTarget, known_hosts: Path, strict: bool) -> tuple[Kept, SSHConnection, bool]:
        """The connection for `target`, reused when one is kept and still answers; and whether it is new."""
        key = login_key(target, known_hosts, strict)
        with self.lock:
            key_lock = self.locks.setdefault(key, threading.Lock())
        with key_lock:  # two runs reaching the same host at once log in once
            with self.lock:
                kept = self.kept.get(key)
                if kept is not None:
                    kept.holders += 1  # held from here on: the reaper leaves it
            if kept is not None and not kept.connection.answers(min(target.connect_timeout, 5.0)):
                self.drop(kept)  # dead for every run that holds it
                kept = None
            new = kept is None
            if kept is None:
                kept = Kept(key, connect(target, known_hosts, strict=strict, stats=Stats()), target.persist,
                            time.monotonic(), holders=1)
                with self.lock:
                    self.kept[key] = kept
            with self.lock:
                kept.persist = max(kept.persist, target.persist)
        return kept, kept.connection.for_target(target), new

    def release(self, kept: Kept) -> None:
        with self.lock:
            kept.holders -= 1
            kept.last_used = time.monotonic()

    def drop(self, kept: Kept) -> None:
        """The host rebooted or its connection was lost: no run can use the connection any more. (Runs that
        still hold it release it later; a connection made since for the same login is another entry.)"""
        with self.lock:
            if self.kept.get(kept.key) is kept:
                del self.kept[kept.key]
        kept.connection.close()

    def reap(self) -> bool:
        """Close what is past its time; whether the keeper should go on (it keeps or serves something)."""
        now = time.monotonic()
        with self.lock:  # taken out under the lock, so a run that holds it meanwhile keeps it
            expired = [self.kept.pop(k) for k, v in list(self.kept.items())
                       if v.holders <= 0 and now - v.last_used > v.persist]
        for kept in expired:
            kept.connection.close()
        with self.lock:
            busy = bool(self.kept) or self.handlers > 0
            if busy:
                self.last_activity = now
            return busy or now - self.last_activity < LINGER

    def close_all(self) -> None:
        with self.lock:
            kept, self.kept = list(self.kept.values()), {}
        for one in kept:
            one.connection.close()


def login_key(target: SSHTarget, known_hosts: Path, strict: bool) -> str:
    """Two targets share a connection when they log in the same way and trust the same host keys. The name and
    `become` only change what a command looks like; a changed known_hosts file (a key removed, say) means
    a new login, verified again."""
    try:
        trusted = hashlib.sha256(known_hosts.read_bytes()).hexdigest()
    except OSError:
        trusted = ""
    login = {k: v for k, v in wire.target_payload(target).items() if k not in ("name", "become", "persist")}
    return json.dumps([login, str(known_hosts), trusted, strict], sort_keys=True)


class _Sink:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        wire.send(self.sock, wire.STDOUT, data)


class _Stdin:
    """A command's stdin as the run sends it, frame by frame; `on_end` is called once it has all come."""

    def __init__(self, sock: socket.socket, on_end: Callable[[], None]) -> None:
        self.sock = sock
        self.ended = False
        self.on_end = on_end

    def read(self, _size: int = -1) -> bytes:
        if self.ended:
            return b""
        kind, payload = wire.receive(self.sock)
        if kind == wire.STDIN_END:
            self.ended = True
            self.on_end()
            return b""
        if kind != wire.STDIN:
            raise wire.WireError(f"expected stdin, got a {kind!r} frame")
        return payload


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        if not _same_user(sock):
            return
        keeper = self.server.keeper
        with keeper.lock:
            keeper.handlers += 1
        self.held: Kept | None = None  # the host this run holds, released however the run ends
        try:
            self._serve(sock, keeper)
        except (wire.WireError, OSError):
            pass  # the run went away
        finally:
            if self.held is not None:
                keeper.release(self.held)
            with keeper.lock:
                keeper.handlers -= 1

    def _serve(self, sock: socket.socket, keeper: Keeper) -> None:
        kind, payload = wire.receive(sock)
        if kind != wire.OPEN:
            return
        request = wire.decode(payload)
        try:
            target = wire.target_from(request["target"])
            known_hosts, strict = Path(request["known_hosts"]), bool(request["strict"])
        except (KeyError, TypeError):
            raise wire.WireError("an open request without a target") from None
        try:
            self.held, connection, new = keeper.hold(target, known_hosts, strict)
        except KbuildError as exc:
            wire.send_json(sock, wire.ERROR, wire.error_payload(exc))
            return
        wire.send_json(sock, wire.DONE, {"new": new})
        while True:
            kind, payload = wire.receive(sock)  # a WireError here: the run closed the host's socket, done
            if kind == wire.RUN:
                if self._run(sock, connection, wire.decode(payload)):
                    continue
            elif kind != wire.DROP:
                raise wire.WireError(f"unexpected {kind!r} frame")
            keeper.release(self.held)
            keeper.drop(self.held)  # the host rebooted (DROP), or its connection was lost
            self.held = None
            return

    @staticmethod
    def _run(sock: socket.socket, connection: SSHConnection, request: dict[str, Any]) -> bool:
        """Run one command for the run; False when the connection is lost (it is then dropped)."""
        watch = _Watch(sock)
        connection.abandoned = watch.gone
        stdin = _Stdin(sock, watch.start) if request.get("stdin") else None
        if stdin is None:
            watch.start()
        failure: KbuildError | None = None
        try:
            result = connection._execute(str(request["argv"]), stdin, request.get("timeout"), _Sink(sock), None)
        except KbuildError as exc:
            failure = exc
        finally:
            watch.stop()
        if watch.gone.is_set():
            raise wire.WireError("the run went away during a command")
        if stdin is not None:
            while stdin.read():  # what the command did not read: the next request comes after it
                pass
        if failure is not None:
            wire.send_json(sock, wire.ERROR, wire.error_payload(failure))
            return not isinstance(failure, UnreachableError)
        for start in range(0, len(result.stderr), CHUNK):
            wire.send(sock, wire.STDERR, result.stderr[start:start + CHUNK])
        wire.send_json(sock, wire.DONE, {"rc": result.rc})
        return True


class _Watch:
    """Notices a run that goes away while its command runs (Ctrl-C): a run sends nothing more until the
    command's end, so a readable socket then means the run closed it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.gone = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()

    def _watch(self) -> None:
        while not self.done.is_set():
            readable, _, _ = select.select([self.sock], [], [], REAP_EVERY)
            if readable:
                try:
                    closed = self.sock.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    closed = True
                if closed:
                    self.gone.set()
                return


def _same_user(sock: socket.socket) -> bool:
    """The directory's mode already keeps others out; the peer's uid is checked too, as ssh's mux does."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.geteuid()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, keeper: Keeper) -> None:
        self.keeper = keeper
        super().__init__(str(path), _Handler)


def serve(directory: Path) -> int:
    lock = open(directory / LOCK_NAME, "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another keeper serves this directory
    path = directory / SOCKET_NAME
    path.unlink(missing_ok=True)  # left by a keeper that was killed
    old_mask = os.umask(0o177)
    try:
        server = _Server(path, Keeper())
    finally:
        os.umask(old_mask)
    (directory / PID_NAME).write_text(f"{os.getpid()}\n")
    reaper = threading.Thread(target=_reap, args=(server, path), daemon=True)
    reaper.start()
    try:
        server.serve_forever(poll_interval=REAP_EVERY)
    finally:
        server.server_close()
        lock.close()  # a keeper started from now on may serve: this one answers no more
        server.keeper.close_all()
    return 0


def _reap(server: _Server, path: Path) -> None:
    while True:
        time.sleep(REAP_EVERY)
        if not server.keeper.reap():
            # Gone from the directory first: a run that comes now starts a new keeper instead of reaching this one.
            path.unlink(missing_ok=True)
            server.shutdown()
            return


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1])))
