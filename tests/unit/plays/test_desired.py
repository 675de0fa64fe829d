"""Each phase gets exactly its own binaries, files, certificates and images."""

from __future__ import annotations

import pytest

from kbuild import layout
from kbuild.artifacts import HostImage
from kbuild.engine.resources import ContainerImage
from kbuild.errors import KbuildError
from kbuild.plays import control_plane, etcd, node
from kbuild.plays.desired import HostInputs, image_resources
from tests.unit.supported import PAUSE


def paths(plan) -> set[str]:
    return {getattr(r, "path", None) for r in plan.resources} - {None}


def test_every_phase_has_its_own_binaries_and_nothing_twice(prepared):
    cluster, inputs = prepared("  m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}\n")
    plans = {"etcd": etcd.plan(cluster, inputs), "control-plane": control_plane.plan(cluster, inputs),
             "node": node.plan(cluster, inputs)}
    binaries = {name: {p for p in paths(plan) if p.startswith(("/usr/local/bin/", "/opt/cni/bin/"))}
                for name, plan in plans.items()}
    assert {"/usr/local/bin/etcd", "/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl"} <= binaries["etcd"]
    assert binaries["control-plane"] == {f"/usr/local/bin/{n}" for n in
                                         ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")}
    assert {"/usr/local/bin/kubelet", "/usr/local/bin/kube-proxy", "/usr/local/bin/containerd",
            "/opt/cni/bin/bridge"} <= binaries["node"]
    # A file is managed by exactly one phase (directories may repeat).
    files = [p for plan in plans.values() for r in plan.resources if r.kind in ("file", "artifact")
             for p in [r.path]]
    assert len(files) == len(set(files))
    # The etcd gate can run once the etcd phase is done: it uses etcdctl from that same phase.
    assert "/usr/local/bin/etcdctl" in plans["etcd"].gates[0].command
    # The RBAC manifest belongs to the control plane, the CNI config to the node.
    assert "/etc/kubernetes/addons/apiserver-to-kubelet-rbac.yaml" in paths(plans["control-plane"])
    assert "/etc/cni/net.d/10-bridge.conflist" in paths(plans["node"])
    # The pod routes once, by the node phase, on a host that is both (the control plane's has none).
    assert [r.key for r in plans["control-plane"].resources if "route" in r.key] == []
    assert "service:kbuild-pod-routes" in {r.key for r in plans["node"].resources}
    # Private key material is never shown in diffs.
    keys = [r for plan in plans.values() for r in plan.resources if getattr(r, "path", "").endswith(".key")]
    assert keys and all(r.secret for r in keys)


def test_etcd_health_checks_have_their_certificate_in_the_etcd_phase(prepared):
    cluster, inputs = prepared("  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}\n")
    etcd_paths = paths(etcd.plan(cluster, inputs))
    assert {"/etc/kubernetes/pki/etcd/healthcheck-client.crt", "/etc/kubernetes/pki/etcd/healthcheck-client.key",
            "/etc/kubernetes/pki/etcd/ca.crt"} <= etcd_paths


@pytest.fixture
def arm_worker(cluster_from):
    cluster = cluster_from("cluster: {name: t}\nhosts:\n  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}\n"
                           "  w1: {address: 198.18.0.11, roles: [worker], arch: arm64}\n")
    return cluster.host("w1")


def test_images_are_imported_with_the_node_s_ctr_socket_namespace_and_platform(arm_worker, tmp_path):
    pushed = HostImage(PAUSE, "a" * 64, tmp_path / "pause.tar", None)
    pulled = HostImage("kbuild.test/app:1.0", "b" * 64, None, "http://mirror.example/app.tar")
    common = {"ctr": str(layout.binary_path("ctr")), "address": str(layout.CONTAINERD_SOCKET),
              "namespace": "k8s.io", "platform": "linux/arm64"}
    assert image_resources(HostInputs(arm_worker, (), (), (), (pushed, pulled))) == [
        ContainerImage(PAUSE, "a" * 64, source=tmp_path / "pause.tar", **common),
        ContainerImage("kbuild.test/app:1.0", "b" * 64, url="http://mirror.example/app.tar", **common),
    ]


def test_an_image_whose_checksum_is_not_known_yet_is_an_error_naming_host_and_image(arm_worker):
    unknown = HostImage(PAUSE, None, None, "http://mirror.example/pause.tar")
    with pytest.raises(KbuildError, match=f"w1: the checksum of image {PAUSE}'s archive is not known"):
        image_resources(HostInputs(arm_worker, (), (), (), (unknown,)))
