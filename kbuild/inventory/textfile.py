"""Reading a file an inventory is made of (the inventory, Ansible's group_vars and host_vars, k0sctl.yaml).

Only a regular file of bounded size, as UTF-8: `-i /dev/zero` would read forever, a FIFO would block forever,
and a multi-gigabyte vars file would be read whole before YAML's own bounds could apply."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from kbuild.errors import UsageError

MAX_BYTES = 8 * 1024 * 1024  # 2000 hosts take about 400 kB


class UnreadableFile(UsageError):
    """The file and, apart, the reason: Ansible's reader reports the reason at the file's origin."""

    def __init__(self, file: Path | str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{file}: {reason}", hint=hint)
        self.reason = reason


def read_text(file: Path, what: str, *, missing_hint: str | None = None, not_regular_hint: str | None = None) -> str:
    """The file's text; a UsageError naming the file and the reason otherwise. O_NONBLOCK keeps the open itself
    from waiting for a FIFO's writer."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UnreadableFile(file, f"{what} file not found", hint=missing_hint) from None
    except OSError as exc:
        raise UnreadableFile(file, f"cannot read the {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnreadableFile(file, "not a regular file (a device or a FIFO)", hint=not_regular_hint)
    with os.fdopen(fd, "rb") as handle:
        return read_bounded(handle, file, what)


def read_bounded(handle: BinaryIO, file: Path | str, what: str) -> str:
    """At most MAX_BYTES of UTF-8 text from an open file (or stdin), named `file` in the errors."""
    try:
        data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UnreadableFile(file, f"cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise UnreadableFile(file, f"larger than {MAX_BYTES // (1024 * 1024)} MiB; not an {what} file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(file, f"not UTF-8 text (byte {exc.start}: {exc.reason})",
                             hint=f"save the {what} as UTF-8") from None
