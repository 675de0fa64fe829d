"""Snapshot and restore on the shared 1-master + 2-worker cluster (one etcd member). The cluster is left
bootstrapped and healthy for other modules. Real parts: systemd-nspawn machines with systemd and sshd, every
cluster component built from source (kubelets keep their Nodes through the restore), the real kubectl."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ClusterLab
from tests.integration.etcd_support import (
    EtcdLab,
    assert_no_op_bootstrap_and_members_rejoin,
    round_trip,
    saved_snapshot,
)
from tests.integration.kube import Kubectl, busybox_pod

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def single(cluster_lab: ClusterLab, built_mirror) -> EtcdLab:
    # The shared cluster as bootstrapped by its fixture (same inventory and state dir: nothing to re-apply).
    return EtcdLab(cluster_lab.lab, cluster_lab.inventory, cluster_lab.state_dir, built_mirror.root)


def configmaps(kube: Kubectl) -> set[str]:
    items = kube.json("get", "configmaps", "-n", "default", "-l", "kbuild-test=restore")["items"]
    return {item["metadata"]["name"] for item in items}


def test_kubernetes_objects_go_back_to_the_snapshot(single: EtcdLab, kubectl, built_mirror):
    kube = Kubectl(kubectl, single.state_dir / "admin.conf")
    for name in ("kept", "deleted-after"):
        kube.run("create", "configmap", name, "--from-literal=at=before")
        kube.run("label", "configmap", name, "kbuild-test=restore")
    code, events, stderr = single.kbuild("etcd", "snapshot", "save")
    assert code == 0, stderr
    path, _ = saved_snapshot(events)
    kube.run("delete", "configmap", "deleted-after")
    kube.run("create", "configmap", "created-after", "--from-literal=at=after")
    kube.run("label", "configmap", "created-after", "kbuild-test=restore")
    assert configmaps(kube) == {"kept", "created-after"}
    code, _, stderr = single.kbuild("etcd", "snapshot", "restore", str(path), "--yes")
    assert code == 0, stderr[-3000:]
    # What was deleted after the snapshot is back, what was created after it is gone.
    assert configmaps(kube) == {"kept", "deleted-after"}
    # Every control-plane component is healthy again, and the nodes report Ready.
    for check in ("livez", "readyz"):
        assert kube.run("get", "--raw", f"/{check}").stdout.strip() == "ok"
    kube.wait_for("condition=Ready", "node", "--all", timeout=120)
    code, _, stderr = single.kbuild("status", json_events=False)
    assert code == 0, stderr[-2000:]
    kube.run("delete", "configmap", "-l", "kbuild-test=restore")
    # The kubelets' watches started before the restore: a pod created after it must still reach its node
    # and run (a restore that handed out old revisions again would leave it Pending on a blind kubelet).
    for worker in (m.name for m in single.lab.machines if m.role == "worker"):
        kube.apply(busybox_pod(f"after-restore-{worker}", built_mirror.test_image, node=worker))
        kube.wait_for("condition=Ready", f"pod/after-restore-{worker}", timeout=120)
        kube.run("delete", "pod", f"after-restore-{worker}", "--wait=false")


def test_round_trip_on_one_member(single: EtcdLab, kubectl):
    round_trip(single, keys=20)
    # The workers' Nodes came back with the snapshot and are Ready again.
    kube = Kubectl(kubectl, single.state_dir / "admin.conf")
    names = sorted(item["metadata"]["name"] for item in kube.json("get", "nodes")["items"])
    assert names == sorted(m.name for m in single.lab.machines if m.role == "worker")
    kube.wait_for("condition=Ready", "node", "--all", timeout=120)


def test_bootstrap_after_restore_changes_nothing_on_one_member(single: EtcdLab):
    assert_no_op_bootstrap_and_members_rejoin(single)
    code, _, stderr = single.kbuild("status", json_events=False)
    assert code == 0, stderr[-2000:]
