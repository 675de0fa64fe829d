"""Where the lab keeps things on this host: lab directories (machines, keys, inventory) and the image cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LABS_DIR = Path("/var/lib/kbuild/lab")  # one 0700 directory per lab; `down` deletes it
CACHE_DIR = Path("/var/cache/kbuild/lab")  # images, kept across labs
LABS_DIR_ENV = "KBUILD_LAB_DIR"
CACHE_DIR_ENV = "KBUILD_LAB_CACHE"


def labs_dir() -> Path:
    return Path(os.environ.get(LABS_DIR_ENV) or LABS_DIR)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or CACHE_DIR)


@dataclass(frozen=True)
class MachinePaths:
    """One machine's directory: overlay upper/work/merged dirs, its nspawn log and pid file."""

    dir: Path

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def merged(self) -> Path:
        return self.dir / "rootfs"

    @property
    def containerd(self) -> Path:
        # Bound to /var/lib/containerd: overlayfs snapshots cannot have their upper dir on the
        # machine's own overlay root, but can on this plain host directory.
        return self.dir / "containerd"

    @property
    def log(self) -> Path:
        return self.dir / "nspawn.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "nspawn.pid"

    @property
    def cgroups_file(self) -> Path:
        return self.dir / "cgroups"

    @property
    def created_marker(self) -> Path:
        return self.dir / "created"


@dataclass(frozen=True)
class LabPaths:
    """A lab's directory and what lives in it."""

    root: Path

    @classmethod
    def for_lab(cls, name: str, base: Path | None = None) -> LabPaths:
        return cls((base or labs_dir()) / name)

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def public_key(self) -> Path:
        return self.root / "id_ed25519.pub"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yaml"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def machines_dir(self) -> Path:
        return self.root / "machines"

    def machine(self, name: str) -> MachinePaths:
        return MachinePaths(self.machines_dir / name)
