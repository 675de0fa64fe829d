"""Files packed the way upstream publishes them (tarball member paths, checksum file formats), written into a mirror.

Archives are deterministic (fixed mtimes and owners, gzip header without a time), so the same
binaries always give the same sha256 and a rebuilt mirror serves the same checksums.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

EPOCH = 1_700_000_000


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sums(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A sha256sum-style file: `<sha256>  <name>` per line (etcd's SHA256SUMS, containerd's .sha256sum)."""
    return "".join(f"{sha256(data)}  {name}\n" for name, data in entries).encode()


def targz(files: Iterable[tuple[str, bytes]], *, directories: Iterable[str] = ()) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in directories:
            info = tarfile.TarInfo(directory if directory != "." else "./")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, EPOCH
            tar.addfile(info, io.BytesIO(data))
    # Level 1: these are test fixtures; speed matters more than size. mtime=0 keeps the bytes stable.
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


class MirrorWriter:
    """Writes files under the mirror root and records their sha256 (the manifest's `files`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, str] = {}
        self._by_sha: dict[str, Path] = {}

    def add(self, relative: str, data: bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        sha = sha256(data)
        if sha in self._by_sha:
            os.link(self._by_sha[sha], path)  # the same bytes under two names: stored once
        else:
            path.write_bytes(data)
            path.chmod(0o644)
            self._by_sha[sha] = path
        self.files[relative] = sha

    def add_with_sha256_file(self, relative: str, data: bytes) -> None:
        """dl.k8s.io's form: the file, and `<file>.sha256` holding only its hash."""
        self.add(relative, data)
        self.add(f"{relative}.sha256", sha256(data).encode())
