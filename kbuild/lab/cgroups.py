"""A cgroup of its own for each machine, in every hierarchy, so that no two machines' systemd share one.

Without a service manager to give it a unit (`--keep-unit` on a host without systemd), nspawn
splits *its own* cgroup into supervisor/ and payload/. Two machines started from the same
cgroup would then share payload/ and their systemd instances would trample each other's
slices, so each nspawn is moved into <current cgroup>/kbuild-lab-<lab>/<machine> first, in
every hierarchy (cgroup v1 controllers, name=systemd, and cgroup2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbuild.lab.mounts import MOUNTINFO, parse_mountinfo

PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class Hierarchy:
    controllers: str  # "memory", "cpu,cpuacct", "name=systemd", or "" for cgroup2
    mount: Path
    current: PurePosixPath  # our cgroup, relative to the mount point

    @property
    def path(self) -> Path:
        return self.mount / str(self.current).lstrip("/")

    @property
    def is_cpuset(self) -> bool:
        return "cpuset" in self.controllers.split(",")

    @property
    def is_v1(self) -> bool:
        return self.controllers != ""


def parse_hierarchies(proc_cgroup: str, mountinfo: str) -> list[Hierarchy]:
    """Join /proc/self/cgroup with the cgroup mounts: where, in each hierarchy, this process lives."""
    mounts = [m for m in parse_mountinfo(mountinfo) if m.fstype in ("cgroup", "cgroup2")]
    found: list[Hierarchy] = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, current = parts
        wanted = set(controllers.split(",")) if controllers else set()
        for mount in mounts:
            if controllers:
                if mount.fstype != "cgroup" or not wanted <= set(mount.options.split(",")):
                    continue
            elif mount.fstype != "cgroup2":
                continue
            root = PurePosixPath(mount.root)
            here = PurePosixPath(current)
            if here == root or root in here.parents:
                found.append(Hierarchy(controllers, mount.target, PurePosixPath("/") / here.relative_to(root)))
                break
    return found


def current_hierarchies() -> list[Hierarchy]:
    return parse_hierarchies(PROC_CGROUP.read_text(), MOUNTINFO.read_text())


def lab_group(lab: str) -> str:
    return f"kbuild-lab-{lab}"


def machine_cgroups(hierarchies: list[Hierarchy], lab: str, machine: str) -> list[tuple[Hierarchy, Path]]:
    return [(h, h.path / lab_group(lab) / machine) for h in hierarchies]


def prepare(lab: str, machine: str, hierarchies: list[Hierarchy] | None = None) -> list[Path]:
    """Create the machine's cgroup in every hierarchy; return their directories (to move nspawn into)."""
    created: list[Path] = []
    for hierarchy, directory in machine_cgroups(hierarchies or current_hierarchies(), lab, machine):
        for level in (directory.parent, directory):
            level.mkdir(exist_ok=True)
            if hierarchy.is_cpuset:
                # A new v1 cpuset starts with no CPUs and no memory nodes; a task cannot join it until
                # they are copied from the parent, and clone_children makes systemd's own children inherit.
                for name in ("cpuset.cpus", "cpuset.mems"):
                    _write_if_empty(level / name, (level.parent / name).read_text())
            if hierarchy.is_v1:
                _write(level / "cgroup.clone_children", "1")
        created.append(directory)
    return created


def pids(directories: list[Path]) -> set[int]:
    """Every process in these cgroups and their children (a machine's whole process tree)."""
    found: set[int] = set()
    for directory in directories:
        # os.walk skips what vanishes under it: a shutting-down machine removes its cgroups as we look.
        for sub, _dirs, _files in os.walk(directory):
            try:
                found.update(int(p) for p in Path(sub, "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                continue
    return found


def remove(directories: list[Path]) -> list[Path]:
    """Remove the machine cgroups (and the lab's parent once empty), deepest first; return those that stay."""
    left: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for sub, _dirs, _files in os.walk(directory, topdown=False):
            try:
                os.rmdir(sub)
            except OSError:
                left.append(Path(sub))
        try:
            directory.parent.rmdir()
        except OSError:
            pass  # other machines of the lab still have theirs
    return left


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError:
        pass  # not every hierarchy has every knob; nspawn reports what really matters


def _write_if_empty(path: Path, value: str) -> None:
    try:
        if not path.read_text().strip():
            path.write_text(value.strip())
    except OSError:
        pass
