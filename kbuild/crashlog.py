"""Where an unexpected traceback goes: a new private file in the user's state directory, never a shared path.

A fixed name in a shared directory (/tmp/kbuild-crash.log) lets another local user plant a symlink
there and have kbuild, often run as root, overwrite any file with the traceback. So each crash gets
its own file, created exclusively (O_EXCL), mode 0600, without following a link, in
$XDG_STATE_HOME/kbuild/crashes (~/.local/state/kbuild/crashes), a 0700 directory.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
import time
from pathlib import Path


def crash_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "kbuild" / "crashes"


def _private_dir(path: Path) -> bool:
    """Create `path` 0700 if needed; True only when it is a directory of ours that nobody else can write."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def write_crash_log(text: str) -> Path:
    """Write `text` to a new crash log and return its path."""
    directory = crash_dir()
    data = text.encode(errors="replace")
    if _private_dir(directory):
        name = f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(4)}.log"
        path = directory / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, 0o600)
        except OSError:
            fd = -1
        if fd >= 0:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return path
    # No usable home (a locked-down account): mkstemp makes a new 0600 file with a random name, O_EXCL.
    fd, name = tempfile.mkstemp(prefix="kbuild-crash-", suffix=".log")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Path(name)
