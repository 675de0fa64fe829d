"""Fixtures for the PKI tests: inventories written to tmp_path, a fixed clock, and pooled RSA keys."""

from __future__ import annotations

import itertools
import stat
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from kbuild.inventory import Cluster, load_cluster
from kbuild.pki import keys

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)

HOSTS = {
    "m1": {"address": "198.18.0.11", "roles": ["etcd", "control-plane"]},
    "m2": {"address": "198.18.0.12", "roles": ["etcd", "control-plane", "worker"]},
    "m3": {"address": "198.18.0.13", "roles": ["etcd", "control-plane"]},
    "w1": {"address": "198.18.0.21", "roles": ["worker"]},
}


def write_inventory(folder: Path, *, hosts: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None,
                    pki: dict[str, Any] | None = None, name: str = "inventory.yaml") -> Path:
    doc = {
        "cluster": {"name": "lab", **(cluster or {})},
        "pki": {"key_algorithm": "ecdsa-p256", **(pki or {})},  # fast; RSA has its own tests
        "state_dir": "state",
        "hosts": hosts if hosts is not None else HOSTS,
    }
    path = folder / name
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def make_cluster(tmp_path: Path) -> Callable[..., Cluster]:
    """make_cluster(hosts=..., cluster=..., pki=...) -> a loaded Cluster whose state dir is tmp_path/state."""
    def make(**kwargs: Any) -> Cluster:
        return load_cluster(write_inventory(tmp_path, **kwargs))
    return make


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    return make_cluster()


# RSA key generation costs 50 ms (2048) to 1 s (4096) a key; a cluster has ~30 keys. Tests where
# the algorithm matters get keys of the right kind from a small pool generated once per session.
_POOL: dict[str, list[keys.PrivateKey]] = {}
_POOL_SIZE = 2  # two, so a CA and the leaves it signs alternate keys


@pytest.fixture
def pooled_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    cycles: dict[str, Any] = {}

    def new_key(algorithm: str) -> keys.PrivateKey:
        if algorithm not in _POOL:
            _POOL[algorithm] = [keys.new_key(algorithm) for _ in range(_POOL_SIZE)]
        cycle = cycles.setdefault(algorithm, itertools.cycle(_POOL[algorithm]))
        return next(cycle)

    monkeypatch.setattr("kbuild.pki.generate.new_key", new_key)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root with its bytes and mode, to prove a failed run changed nothing."""
    return {str(p.relative_to(root)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
            for p in sorted(root.rglob("*")) if p.is_file()}
