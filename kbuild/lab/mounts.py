"""Overlay mounts for machine roots, and removing directory trees only after everything under them is unmounted."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kbuild.lab.errors import LabError
from kbuild.lab.proc import run

MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    target: Path
    fstype: str
    source: str
    root: str = "/"  # the part of the filesystem mounted here (bind mounts, cgroup namespaces)
    options: str = ""  # superblock options: for cgroup v1 they name the controllers


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...)
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        mounts.append(Mount(Path(_unescape(fields[4])), fields[sep + 1], _unescape(fields[sep + 2]),
                            root=_unescape(fields[3]), options=fields[sep + 3] if len(fields) > sep + 3 else ""))
    return mounts


def mounts_under(path: Path, mountinfo: str | None = None) -> list[Mount]:
    """Mounts at or below `path`, deepest first (the order to unmount them in)."""
    text = mountinfo if mountinfo is not None else MOUNTINFO.read_text()
    root = Path(path).absolute()
    found = [m for m in parse_mountinfo(text) if m.target == root or root in m.target.parents]
    return sorted(found, key=lambda m: len(m.target.parts), reverse=True)


def is_mounted(path: Path) -> bool:
    return any(m.target == Path(path).absolute() for m in mounts_under(path))


def overlay_options(lower: Path, upper: Path, work: Path) -> str:
    for part in (lower, upper, work):
        if any(ch in str(part) for ch in ",:\\ "):
            raise LabError(f"{part}: overlay paths cannot contain ',', ':', '\\' or spaces")
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def overlay_command(lower: Path, upper: Path, work: Path, merged: Path) -> list[str]:
    return ["mount", "-t", "overlay", "overlay", "-o", overlay_options(lower, upper, work), str(merged)]


def mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    """Mount `lower` + `upper` at `merged` unless it is already mounted."""
    if is_mounted(merged):
        return
    for directory in (upper, work, merged):
        directory.mkdir(parents=True, exist_ok=True)
    run(overlay_command(lower, upper, work, merged))


def unmount_all(path: Path) -> None:
    """Unmount every mount at or below `path`, deepest first; lazily when a mount stays busy."""
    for mount in mounts_under(path):
        if run(["umount", str(mount.target)], check=False).returncode != 0:
            run(["umount", "--lazy", str(mount.target)], check=False)
    left = mounts_under(path)
    if left:
        raise LabError(f"cannot unmount {', '.join(str(m.target) for m in left)}")


def remove_tree(path: Path) -> None:
    """Delete `path` after unmounting everything below it, so rmtree never walks into a mounted /proc or image."""
    if not path.exists():
        return
    unmount_all(path)
    shutil.rmtree(path)
