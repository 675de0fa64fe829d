"""The component table's network side: status asks each component exactly what the phases' gates wait for."""

from __future__ import annotations

from kbuild.plays import control_plane, node, cluster_status
from kbuild.plays.components import health_checks


def test_status_runs_every_health_check_the_gates_wait_for(cluster_from) -> None:
    cluster = cluster_from("cluster: {name: t}\nhosts:\n"
                           "  m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}\n")
    gates = control_plane.gates(cluster) + node.gates(cluster)
    assert [g.name for g in gates] == [
        "kube-apiserver /livez", "kube-apiserver /readyz", "kube-controller-manager /healthz",
        "kube-scheduler /healthz", "containerd answering", "kubelet /healthz", "kube-proxy /healthz"]
    probe = cluster_status.probe_script(cluster, cluster.host("m1"))
    for gate in gates:
        assert gate.command in probe, gate.name
    for component in ("etcd", "kubectl", "kbuild-pod-routes"):
        assert health_checks(cluster, component) == ()  # etcd's gate asks the whole cluster: not a member's check
