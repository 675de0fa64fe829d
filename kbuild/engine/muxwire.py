"""The wire between a kbuild run and the SSH connection keeper (kbuild.engine.muxd), over a Unix socket.

Every message is a frame: one byte of type, four bytes of length (big-endian), then the payload. A
request (OPEN or RUN) carries JSON; a command's stdin, stdout and stderr travel as raw frames, so a
large upload or download is never held whole in memory on either side.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
from typing import Any

from kbuild.engine.ssh import Jump, SSHTarget
from kbuild.errors import HostKeyError, KbuildError, UnreachableError

OPEN = b"O"  # client: reach this host (connect, or reuse a connection that still answers)
RUN = b"R"  # client: run a command on it; STDIN frames follow when the request says so
DROP = b"D"  # client: close the kept connection to this host (it rebooted; its connection is dead)
STDIN = b"I"
STDIN_END = b"i"
STDOUT = b"o"
STDERR = b"e"
DONE = b"x"  # server: the command's exit status, or the open's result (JSON)
ERROR = b"E"  # server: a KbuildError as JSON, re-raised as the same kind on the client

_HEADER = struct.Struct(">cI")
MAX_CONTROL = 1 << 20  # a JSON frame longer than this is not one of ours
# The error kinds that cross the socket as themselves; any other becomes a plain KbuildError.
_ERRORS: dict[str, type[KbuildError]] = {cls.__name__: cls for cls in (KbuildError, UnreachableError, HostKeyError)}


class WireError(Exception):
    """The other side broke the protocol or went away mid-message."""


def send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(_HEADER.pack(kind, len(payload)) + payload)


def send_json(sock: socket.socket, kind: bytes, value: Any) -> None:
    send(sock, kind, json.dumps(value).encode())


def receive(sock: socket.socket) -> tuple[bytes, bytes]:
    kind, length = _HEADER.unpack(_exactly(sock, _HEADER.size))
    return kind, _exactly(sock, length)


def decode(payload: bytes) -> Any:
    """A control frame's JSON."""
    if len(payload) > MAX_CONTROL:
        raise WireError("a control message is too long")
    try:
        return json.loads(payload)
    except ValueError:
        raise WireError("a control message is not JSON") from None


def _exactly(sock: socket.socket, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise WireError("the other side closed the socket mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def error_payload(exc: KbuildError) -> dict[str, Any]:
    kind = type(exc).__name__ if type(exc).__name__ in _ERRORS else "KbuildError"
    return {"kind": kind, "message": exc.message, "hint": exc.hint}


def error_from(payload: dict[str, Any]) -> KbuildError:
    cls = _ERRORS.get(str(payload.get("kind")), KbuildError)
    return cls(str(payload.get("message", "the SSH connection keeper failed")), hint=payload.get("hint"))


def target_payload(target: SSHTarget) -> dict[str, Any]:
    return dataclasses.asdict(target)


def target_from(payload: dict[str, Any]) -> SSHTarget:
    fields = dict(payload)
    if fields.get("bastion") is not None:
        fields["bastion"] = Jump(**fields["bastion"])
    return SSHTarget(**fields)
