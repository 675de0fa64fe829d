"""Snapshot and restore on the shared 1-master + 2-worker cluster (one etcd member), etcd 3.5.1. The cluster
is left bootstrapped and healthy for other modules. Real parts: systemd-nspawn machines with systemd and sshd,
etcd 3.5.1, the kube-* stand-ins (kubelets keep their Nodes through the restore), the real kubectl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ClusterLab
from tests.integration.etcd_support import (
    EtcdLab,
    assert_no_op_bootstrap_and_members_rejoin,
    round_trip,
)

pytestmark = pytest.mark.integration

KUBECTL = Path(sys.executable).parent / "kubectl"


@pytest.fixture(scope="module")
def single(cluster_lab: ClusterLab, built_mirror) -> EtcdLab:
    # The shared cluster as bootstrapped by its fixture (same inventory and state dir: nothing to re-apply).
    return EtcdLab(cluster_lab.lab, cluster_lab.inventory, cluster_lab.state_dir, built_mirror.root)


def test_round_trip_on_one_member(single: EtcdLab):
    round_trip(single, keys=20)
    # The workers' Nodes came back with the snapshot and are Ready again.
    nodes = subprocess.run([str(KUBECTL), "--kubeconfig", str(single.state_dir / "admin.conf"), "get", "nodes",
                            "-o", "json"], capture_output=True, text=True, timeout=60)
    assert nodes.returncode == 0, nodes.stderr
    names = sorted(item["metadata"]["name"] for item in json.loads(nodes.stdout)["items"])
    assert names == sorted(m.name for m in single.lab.machines if m.role == "worker")


def test_bootstrap_after_restore_changes_nothing_on_one_member(single: EtcdLab):
    assert_no_op_bootstrap_and_members_rejoin(single)
    code, _, stderr = single.kbuild("status", json_events=False)
    assert code == 0, stderr[-2000:]
