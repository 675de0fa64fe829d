"""Fixtures for the rendering tests: small inventories written to a temporary directory and loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from kbuild.inventory import Cluster, load_cluster
from kbuild.render import RenderedFile, host_files
from tests.unit.supported import CONTAINERD, ETCD_VERSION, KUBE

# Three etcd+control-plane hosts (one also a worker) and two workers: every role combination.
HOSTS: dict[str, dict[str, Any]] = {
    "m1": {"address": "198.18.0.11", "roles": ["etcd", "control-plane"]},
    "m2": {"address": "198.18.0.12", "roles": ["etcd", "control-plane"]},
    "m3": {"address": "198.18.0.13", "roles": ["etcd", "control-plane", "worker"]},
    "w1": {"address": "198.18.0.21", "roles": ["worker"],
           "labels": {"zone": "a", "node-role.kubernetes.io/worker": ""},
           "taints": ["dedicated=gpu:NoSchedule"]},
    "w2": {"address": "198.18.0.22", "roles": ["worker"]},
}

MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> MakeCluster:
    """make_cluster(hosts=..., **cluster settings) -> a loaded Cluster."""

    def make(*, hosts: dict[str, dict[str, Any]] | None = None, **settings: Any) -> Cluster:
        data = {"cluster": {"name": "demo", **settings}, "hosts": hosts or HOSTS}
        path = tmp_path / "inventory.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_cluster(path)

    return make


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Cluster:
    return make_cluster()


def files_by_path(cluster: Cluster, host: str) -> dict[str, RenderedFile]:
    return {str(f.path): f for f in host_files(cluster, cluster.host(host))}


def versions(kubernetes: str = KUBE, etcd: str = ETCD_VERSION, containerd: str = CONTAINERD) -> dict[str, str]:
    """cluster.versions for make_cluster; kbuild's defaults unless given."""
    return {"kubernetes": kubernetes, "etcd": etcd, "containerd": containerd}
