"""Each phase gets exactly its own binaries, files and certificates."""

from __future__ import annotations

import pytest

from kbuild import pki
from kbuild.artifacts import host_artifacts
from kbuild.plays import control_plane, etcd, node
from kbuild.plays.desired import gather_inputs


@pytest.fixture
def cluster(cluster_from):
    cluster = cluster_from("""\
        cluster: {name: t}
        pki: {key_algorithm: ecdsa-p256}
        hosts:
          m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}
        """)
    pki.ensure(cluster)
    return cluster


def paths(plan) -> set[str]:
    return {getattr(r, "path", None) for r in plan.resources} - {None}


def test_every_phase_has_its_own_binaries_and_nothing_twice(cluster):
    host = cluster.host("m1")
    inputs = gather_inputs(cluster, host, host_artifacts(cluster, host, prepare=False))
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
    assert "/etc/cni/net.d/10-bridge.conf" in paths(plans["node"])
    # Private key material is never shown in diffs.
    keys = [r for plan in plans.values() for r in plan.resources if getattr(r, "path", "").endswith(".key")]
    assert keys and all(r.secret for r in keys)


def test_etcd_health_checks_have_their_certificate_in_the_etcd_phase(cluster_from):
    cluster = cluster_from("cluster: {name: t}\npki: {key_algorithm: ecdsa-p256}\nhosts:\n"
                           "  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}\n")
    pki.ensure(cluster)
    host = cluster.host("m1")
    inputs = gather_inputs(cluster, host, host_artifacts(cluster, host, prepare=False))
    etcd_paths = paths(etcd.plan(cluster, inputs))
    assert {"/etc/kubernetes/pki/etcd/healthcheck-client.crt", "/etc/kubernetes/pki/etcd/healthcheck-client.key",
            "/etc/kubernetes/pki/etcd/ca.crt"} <= etcd_paths
