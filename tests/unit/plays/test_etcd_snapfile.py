"""Snapshot files on the controller: the integrity check refuses truncated, corrupted and foreign files;
metadata, names, listing and pruning."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC
from pathlib import Path

import pytest

from kbuild.errors import UsageError
from kbuild.plays.etcd_ops import snapfile
from kbuild.plays.etcd_ops.snapfile import SnapshotFileError, verify_file
from tests.unit.supported import ETCD_VERSION, KUBE

from .etcd_fakes import PAGE, meta_page, snapshot_bytes, write_snapshot


def test_a_complete_snapshot_passes_with_its_digest(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.db")
    check = verify_file(path)
    assert check.size == path.stat().st_size and check.size % 512 == 32
    assert check.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (check.page_size, check.txid) == (PAGE, 8)


@pytest.mark.parametrize("cut", [1, 32, PAGE, 2 * PAGE + 32])
def test_a_truncated_snapshot_is_refused(tmp_path: Path, cut: int) -> None:
    data = snapshot_bytes()
    path = tmp_path / "s.db"
    path.write_bytes(data[:-cut])
    with pytest.raises(SnapshotFileError, match="incomplete etcd snapshot|corrupted"):
        verify_file(path)


def test_truncated_to_a_multiple_of_512_plus_32_is_still_caught(tmp_path: Path) -> None:
    data = snapshot_bytes(pages=6)
    path = tmp_path / "s.db"
    path.write_bytes(data[: 4 * PAGE + 32])  # looks like the right size, the trailer is data
    with pytest.raises(SnapshotFileError, match="corrupted"):
        verify_file(path)


@pytest.mark.parametrize("offset", [3 * PAGE + 100, 2 * PAGE, -1])
def test_a_flipped_byte_is_refused(tmp_path: Path, offset: int) -> None:
    data = bytearray(snapshot_bytes())
    data[offset] ^= 0x01
    path = tmp_path / "s.db"
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotFileError, match="corrupted etcd snapshot"):
        verify_file(path)


@pytest.mark.parametrize("content", [b"", b"hello\n", b"\0" * (PAGE * 4 + 32), b"SQLite format 3\0" + b"x" * 20000])
def test_files_that_are_not_etcd_snapshots_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(content)
    with pytest.raises(SnapshotFileError, match="not an etcd snapshot"):
        verify_file(path)


def test_a_bad_meta_page_checksum_is_refused(tmp_path: Path) -> None:
    body = bytearray(meta_page(0, 8) + meta_page(1, 7) + b"x" * (2 * PAGE))
    body[16 + 40] ^= 0xFF  # the freelist page id, covered by the meta checksum
    path = tmp_path / "s.db"
    path.write_bytes(bytes(body) + hashlib.sha256(bytes(body)).digest())
    with pytest.raises(SnapshotFileError, match="not an etcd snapshot"):
        verify_file(path)


def test_missing_and_unreadable_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(SnapshotFileError, match="no such file"):
        verify_file(tmp_path / "missing.db")
    assert issubclass(SnapshotFileError, UsageError)  # bad input: exit 2


def test_metadata_round_trip_and_foreign_json_refused(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.db")
    assert snapfile.read_metadata(path) is None
    meta = {"format": snapfile.FORMAT, "cluster": "demo", "revision": 5}
    written = snapfile.write_metadata(path, meta)
    assert written == tmp_path / "s.db.json" and oct(written.stat().st_mode & 0o777) == "0o600"
    assert snapfile.read_metadata(path) == meta
    written.write_text(json.dumps({"something": "else"}))
    with pytest.raises(SnapshotFileError, match="not kbuild snapshot metadata"):
        snapfile.read_metadata(path)
    written.write_text("{not json")
    with pytest.raises(SnapshotFileError, match="unreadable"):
        snapfile.read_metadata(path)


def test_names_sort_by_time_and_carry_a_slug_of_the_reason() -> None:
    from datetime import datetime

    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    name = snapfile.snapshot_name("demo", moment, f"before upgrade to Kubernetes {KUBE}, etcd {ETCD_VERSION}")
    assert name == f"etcd-demo-20260102T030405678Z-before-upgrade-to-kubernetes-{KUBE.replace('.', '-')}-etcd.db"
    assert snapfile.slug("!!!") == "snapshot"
    assert snapfile.iso(moment) == "2026-01-02T03:04:05.678Z"


def stored(tmp_path: Path, name: str, *, cluster: str | None = "demo", time: str = "") -> Path:
    path = write_snapshot(tmp_path / name)
    if cluster is not None:
        snapfile.write_metadata(path, {"format": snapfile.FORMAT, "cluster": cluster, "time": time})
    return path


def test_pruning_keeps_the_newest_of_this_cluster_only(tmp_path: Path) -> None:
    old = [stored(tmp_path, f"etcd-demo-{i}.db", time=f"2026-01-0{i}T00:00:00.000Z") for i in range(1, 6)]
    other = stored(tmp_path, "etcd-other-1.db", cluster="other", time="2020-01-01T00:00:00.000Z")
    mine = stored(tmp_path, "handmade.db", cluster=None)
    os.utime(mine, (1, 1))
    listed = snapfile.list_snapshots(tmp_path)
    assert [s.path for s in listed][:5] == list(reversed(old))  # newest first
    doomed = snapfile.prunable(listed, keep=2, cluster="demo", protect=old[4])
    assert [s.path for s in doomed] == [old[2], old[1], old[0]]
    removed = snapfile.prune(doomed)
    assert removed == [old[2], old[1], old[0]]
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {n for p in (old[3], old[4], other, mine) for n in (p.name, f"{p.name}.json")} - {"handmade.db.json"}


def test_the_protected_snapshot_survives_even_if_it_sorts_oldest(tmp_path: Path) -> None:
    new = stored(tmp_path, "a.db", time="2000-01-01T00:00:00.000Z")
    stored(tmp_path, "b.db", time="2026-01-01T00:00:00.000Z")
    doomed = snapfile.prunable(snapfile.list_snapshots(tmp_path), keep=1, cluster="demo", protect=new)
    assert [s.path.name for s in doomed] == ["b.db"]
    with pytest.raises(UsageError):
        snapfile.prunable([], keep=0, cluster="demo", protect=new)


def test_partial_files_are_hidden_from_the_list(tmp_path: Path) -> None:
    final = tmp_path / "etcd-demo-1.db"
    tmp = snapfile.temporary_path(final)
    tmp.write_bytes(b"partial")
    assert tmp.parent == tmp_path and tmp.name.startswith(".")
    assert snapfile.list_snapshots(tmp_path) == []
