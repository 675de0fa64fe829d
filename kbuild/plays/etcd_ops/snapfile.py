"""Snapshot files on the controller: integrity checks, the metadata file next to each one, names, pruning.

A snapshot written by `etcdctl snapshot save` is a bbolt database followed by the sha256 of that
database (the etcd server appends it to the stream; `snapshot restore` refuses a file without it).
Checking that trailer and bbolt's two meta pages here, in pure Python, lets kbuild refuse a
truncated, corrupted or non-etcd file before any host is touched: `snapshot status` alone reads
a truncated file without complaint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kbuild.errors import UsageError
from kbuild.state import ensure_dir, write_atomic

FORMAT = "kbuild-etcd-snapshot/1"
HASH_SIZE = 32  # the sha256 etcd appends
BOLT_MAGIC = 0xED0CDAED
BOLT_VERSION = 2
BOLT_META_FLAG = 0x04
_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<IIIIQQQQQ")  # magic, version, page size, flags, root, sequence, freelist, pgid, txid
_CHUNK = 1024 * 1024
METADATA_KEYS = ("cluster", "member", "etcd_version", "revision", "sha256", "size", "time", "reason")


class SnapshotFileError(UsageError):
    """A file that is not a complete etcd snapshot (bad input: exit 2)."""


@dataclass(frozen=True)
class FileCheck:
    """What the local integrity check found: the file is a complete etcd snapshot of this size and digest."""

    size: int
    sha256: str  # of the whole file, as stored
    page_size: int
    txid: int


def metadata_path(snapshot: Path) -> Path:
    """The metadata file of a snapshot: its name plus .json, next to it."""
    return snapshot.with_name(snapshot.name + ".json")


def _fnv64a(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _meta_page(data: bytes) -> tuple[int, int] | None:
    """(page size, txid) of one bbolt meta page, or None when the page is not a valid meta page."""
    if len(data) < _PAGE_HEADER.size + _META.size + 8:
        return None
    _, flags, _, _ = _PAGE_HEADER.unpack_from(data, 0)
    fields = _META.unpack_from(data, _PAGE_HEADER.size)
    magic, version, page_size = fields[0], fields[1], fields[2]
    (checksum,) = struct.unpack_from("<Q", data, _PAGE_HEADER.size + _META.size)
    if flags != BOLT_META_FLAG or magic != BOLT_MAGIC or version != BOLT_VERSION:
        return None
    if checksum != _fnv64a(data[_PAGE_HEADER.size:_PAGE_HEADER.size + _META.size]):
        return None
    return page_size, fields[8]


def verify_file(path: Path) -> FileCheck:
    """Check that `path` is a complete etcd snapshot; raise SnapshotFileError saying what is wrong."""
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except FileNotFoundError:
        raise SnapshotFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise SnapshotFileError(f"{path}: cannot read it: {exc.strerror}") from None
    with handle:
        head = handle.read(4096)
        first = _meta_page(head)
        if first is None:
            raise SnapshotFileError(f"{path}: not an etcd snapshot (no bbolt database header)",
                                    hint="give a file written by `kbuild etcd snapshot save` or "
                                         "`etcdctl snapshot save`")
        page_size, txid = first
        if size % 512 != HASH_SIZE or size < 2 * page_size + HASH_SIZE:
            raise SnapshotFileError(
                f"{path}: incomplete etcd snapshot ({size} bytes: no integrity hash at the end); it was truncated, "
                "or copied from a data directory rather than saved with `etcdctl snapshot save`",
                hint="use a complete snapshot; kbuild never restores one it cannot verify")
        handle.seek(page_size)
        second = _meta_page(handle.read(page_size))
        if second is not None:
            txid = max(txid, second[1])
        handle.seek(0)
        body, whole = hashlib.sha256(), hashlib.sha256()
        remaining = size - HASH_SIZE
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                raise SnapshotFileError(f"{path}: the file shrank while being read")
            body.update(chunk)
            whole.update(chunk)
            remaining -= len(chunk)
        trailer = handle.read(HASH_SIZE)
        whole.update(trailer)
    if body.digest() != trailer:
        raise SnapshotFileError(f"{path}: corrupted etcd snapshot: its content does not match the sha256 etcd "
                                "wrote at its end", hint="use another snapshot (kbuild etcd snapshot list)")
    return FileCheck(size, whole.hexdigest(), page_size, txid)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- metadata ------------------------------------------------------------------------------------------


def read_metadata(snapshot: Path) -> dict[str, Any] | None:
    """The snapshot's metadata, or None when it has none; a metadata file that is not ours is an error."""
    path = metadata_path(snapshot)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SnapshotFileError(f"{path}: unreadable snapshot metadata: {exc}",
                                hint="move it away to restore the snapshot without metadata") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SnapshotFileError(f"{path}: not kbuild snapshot metadata (format {data.get('format')!r})"
                                if isinstance(data, dict) else f"{path}: not kbuild snapshot metadata")
    return data


def write_metadata(snapshot: Path, metadata: dict[str, Any]) -> Path:
    path = metadata_path(snapshot)
    write_atomic(path, json.dumps(metadata, indent=2, sort_keys=True) + "\n", mode=0o600)
    return path


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def slug(reason: str) -> str:
    """A file-name-safe form of a reason: 'before upgrade to 1.34.1' -> 'before-upgrade-to-1-34-1'."""
    text = re.sub(r"[^a-z0-9]+", "-", reason.lower()).strip("-")
    return text[:40].rstrip("-") or "snapshot"


def snapshot_name(cluster: str, moment: datetime, reason: str) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z"
    return f"etcd-{cluster}-{stamp}-{slug(reason)}.db"


# -- the stored snapshots ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredSnapshot:
    path: Path
    metadata: dict[str, Any] | None
    size: int
    mtime: float

    @property
    def time(self) -> str:
        if self.metadata and isinstance(self.metadata.get("time"), str):
            return self.metadata["time"]
        return iso(datetime.fromtimestamp(self.mtime, UTC))

    @property
    def cluster(self) -> str | None:
        return self.metadata.get("cluster") if self.metadata else None


def list_snapshots(directory: Path) -> list[StoredSnapshot]:
    """The snapshots in `directory`, newest first; a file whose metadata is unreadable is listed without it."""
    found: list[StoredSnapshot] = []
    if not directory.is_dir():
        return found
    for path in directory.glob("*.db"):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            metadata = read_metadata(path)
        except SnapshotFileError:
            metadata = None
        info = path.stat()
        found.append(StoredSnapshot(path, metadata, info.st_size, info.st_mtime))
    found.sort(key=lambda s: (s.time, s.path.name), reverse=True)
    return found


def prunable(snapshots: list[StoredSnapshot], *, keep: int, cluster: str, protect: Path) -> list[StoredSnapshot]:
    """The snapshots `keep` would remove: this cluster's kbuild snapshots beyond the newest `keep`.

    Files without kbuild metadata, and other clusters' snapshots, are never counted or removed;
    `protect` (the snapshot just taken) always stays.
    """
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, not {keep}")
    ours = [s for s in snapshots if s.cluster == cluster]
    ours.sort(key=lambda s: (s.path == protect, s.time, s.path.name), reverse=True)
    return [s for s in ours[keep:] if s.path != protect]


def prune(snapshots: list[StoredSnapshot]) -> list[Path]:
    removed = []
    for snap in snapshots:
        for path in (snap.path, metadata_path(snap.path)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        removed.append(snap.path)
    return removed


def backups_dir(state_dir: Path) -> Path:
    return ensure_dir(state_dir / "backups")


def temporary_path(final: Path) -> Path:
    """Where a snapshot is written until verified: hidden, next to its final name (same filesystem)."""
    return final.with_name(f".{final.name}.partial-{os.getpid()}")
