"""The controller's artifact cache: files stored by sha256, plus a small index of what is known about URLs.

Layout under the cache directory (default ~/.cache/kbuild/artifacts, or artifacts.cache_dir):

    blobs/sha256/<hex>    verified files, named by their sha256 (release files and unpacked binaries)
    stamps/<hex>          "size mtime_ns ctime_ns inode" of a blob when it was last hashed
    refs/<hex>.json       index entries: a release URL's sha256 (and the published one), an archive
                          member's sha256; file name = sha256 of the entry's key
    tmp/                  downloads in flight; a file only reaches blobs/ after it was verified

A blob is re-hashed before use unless its stamp still matches (ctime cannot be set back from user
space, so a rewritten file is noticed); a blob that no longer matches its name is removed.
Every write is a rename within the cache, so an interrupted run never leaves a partial file in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from kbuild.artifacts.checksums import CHUNK, SHA256, sha256_file
from kbuild.artifacts.errors import ArtifactError
from kbuild.userdirs import cache_home


def default_cache_dir() -> Path:
    return cache_home() / "artifacts"


class Cache:
    """Content-addressed files and index entries in one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- blobs ------------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / "blobs" / "sha256" / sha256

    def get(self, sha256: str) -> Path | None:
        """The cached file with this sha256, verified, or None when it is absent or damaged (then removed)."""
        path = self.blob_path(sha256)
        try:
            info = path.stat()
        except FileNotFoundError:
            return None
        stamp = self.root / "stamps" / sha256
        fingerprint = _fingerprint(info)
        try:
            if stamp.read_text() == fingerprint:
                return path
        except FileNotFoundError:
            pass
        if sha256_file(path) != sha256:
            path.unlink(missing_ok=True)
            stamp.unlink(missing_ok=True)
            return None
        self._write_text(stamp, fingerprint)
        return path

    def has(self, sha256: str) -> bool:
        return self.get(sha256) is not None

    @contextmanager
    def writer(self) -> Iterator[tuple[IO[bytes], Path]]:
        """A temporary file inside the cache (same filesystem, so `commit` is an atomic rename)."""
        tmp_dir = self._dir("tmp")
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="part-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle, tmp
        finally:
            tmp.unlink(missing_ok=True)  # after commit the name is gone already

    def commit(self, tmp: Path, sha256: str) -> Path:
        """Move a fully written and verified temporary file into place under its sha256."""
        target = self.blob_path(sha256)
        self._dir(target.parent.relative_to(self.root).as_posix())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        self._write_text(self.root / "stamps" / sha256, _fingerprint(target.stat()))
        return target

    def add_stream(self, stream: IO[bytes], expected: str | None = None) -> tuple[str, Path]:
        """Copy a stream into the cache; with `expected`, refuse (and keep nothing) on a mismatch."""
        digest = hashlib.sha256()
        with self.writer() as (handle, tmp):
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            found = digest.hexdigest()
            if expected is not None and found != expected:
                raise Mismatch(expected, found)
            return found, self.commit(tmp, found)

    # -- index --------------------------------------------------------------------------------------
    def ref(self, key: str) -> dict[str, Any] | None:
        path = self._ref_path(key)
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged entry is only lost knowledge: it is looked up again
        return entry if isinstance(entry, dict) and entry.get("key") == key else None

    def set_ref(self, key: str, **values: Any) -> None:
        self._write_text(self._ref_path(key), json.dumps({"key": key, **values}, sort_keys=True))

    def _ref_path(self, key: str) -> Path:
        return self.root / "refs" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    # -- helpers ------------------------------------------------------------------------------------
    def _dir(self, relative: str) -> Path:
        path = self.root / relative
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"{path}: cannot create the artifact cache directory: {exc.strerror}",
                                hint="set artifacts.cache_dir in the inventory to a writable directory") from None
        return path

    def _write_text(self, path: Path, text: str) -> None:
        directory = self._dir(path.parent.relative_to(self.root).as_posix())
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


def _fingerprint(info: os.stat_result) -> str:
    """A blob's stamp: it changes whenever the file is rewritten (ctime cannot be set back)."""
    return f"{info.st_size} {info.st_mtime_ns} {info.st_ctime_ns} {info.st_ino}"


class Mismatch(Exception):
    """Raised inside add_stream; callers turn it into a ChecksumError that names the file and its source."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"expected {expected}, found {found}")
        self.expected = expected
        self.found = found
