"""A tar archive produced lazily from named payloads: how a host receives all its files in one stream."""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any, Iterator

from kbuild.errors import KbuildError


class TarStream(io.RawIOBase):
    """A readable tar archive produced piece by piece, so large payloads stream and are never held in memory.

    Writing the ustar/GNU framing by hand (header, data, padding to 512 bytes, two zero blocks) is
    what lets each payload be copied in chunks; tarfile's writer wants whole members at once.
    """

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        self._members = members
        self._buffer = bytearray()
        self._gen = self._generate()

    def readable(self) -> bool:
        return True

    def _generate(self) -> Iterator[bytes]:
        for name, payload in self._members:
            if isinstance(payload, bytes):
                data, size = io.BytesIO(payload), len(payload)
            else:
                data, size = payload.open(), payload.size
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o600, int(time.time())
            yield info.tobuf(format=tarfile.GNU_FORMAT)
            copied = 0
            with data:
                while chunk := data.read(256 * 1024):
                    copied += len(chunk)
                    yield chunk
            if copied != size:
                raise KbuildError(f"payload {name} changed size while being sent ({size} -> {copied} bytes)")
            if size % 512:
                yield b"\0" * (512 - size % 512)
        yield b"\0" * 1024

    def readinto(self, buffer: Any) -> int:
        while not self._buffer:
            try:
                self._buffer += next(self._gen)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        del self._buffer[:n]
        return n


def tar_stream(members: list[tuple[str, Any]]) -> io.BufferedReader:
    return io.BufferedReader(TarStream(members), buffer_size=256 * 1024)
