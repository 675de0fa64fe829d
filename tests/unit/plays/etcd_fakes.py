"""Test data for the etcd operation tests: snapshot files built the way bbolt and etcd lay them out, inventories."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from kbuild.inventory import Cluster, load_cluster
from tests.unit.supported import ETCD_VERSION

PAGE = 4096


def _fnv64a(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def meta_page(page_id: int, txid: int, *, magic: int = 0xED0CDAED) -> bytes:
    meta = struct.pack("<IIIIQQQQQ", magic, 2, PAGE, 0, 3, 0, 2, 4, txid)
    page = struct.pack("<QHHI", page_id, 0x04, 0, 0) + meta + struct.pack("<Q", _fnv64a(meta))
    return page.ljust(PAGE, b"\0")


def snapshot_bytes(pages: int = 4, *, seed: bytes = b"etcd") -> bytes:
    """A bbolt database (two meta pages, then data pages) followed by the sha256 etcd appends to a snapshot."""
    body = meta_page(0, 8) + meta_page(1, 7)
    for i in range(2, pages):
        body += (seed + bytes([i])) * (PAGE // (len(seed) + 1)) + b"\0" * (PAGE % (len(seed) + 1))
    return body + hashlib.sha256(body).digest()


def write_snapshot(path: Path, **kw: object) -> Path:
    path.write_bytes(snapshot_bytes(**kw))  # type: ignore[arg-type]
    return path


def cluster(tmp_path: Path, *, masters: int = 3, etcd: str = ETCD_VERSION, extra: str = "") -> Cluster:
    hosts = "".join(f"  m{i}: {{address: 198.18.0.{10 + i}, roles: [etcd, control-plane]}}\n"
                    for i in range(1, masters + 1))
    path = tmp_path / "inventory.yaml"
    path.write_text(f"cluster: {{name: demo, versions: {{etcd: {etcd}}}}}\n{extra}\nhosts:\n{hosts}"
                    "  w1: {address: 198.18.0.21, roles: [worker]}\n")
    return load_cluster(path)
