"""status parsing and reset plans: recorded output in, verdicts and plans out."""

from __future__ import annotations

import json
import subprocess

import pytest

from kbuild import layout
from kbuild.plays import reset, cluster_status
from kbuild.plays.phases import Context
from kbuild.plays.clusterfacts import etcd_status
from kbuild.plays.clusterfacts import nodes as node_facts
from tests.unit.fakes import FakeSession
from tests.unit.supported import ETCD_VERSION, KUBE


@pytest.fixture
def cluster(cluster_from):
    return cluster_from("""\
        cluster: {name: t}
        etcd: {data_dir: /data/etcd}
        hosts:
          m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
          w1: {address: 198.18.0.11, roles: [worker]}
          w2: {address: 198.18.0.12, roles: [worker]}
        """)


def test_probe_parsing_and_verdicts():
    host = cluster_status.parse_probe("m1", "\n".join([
        "unit etcd active", f"version etcd etcd Version: {ETCD_VERSION}", "health etcd ok",
        "unit kube-apiserver active", f"version kube-apiserver Kubernetes v{KUBE}",
        "health kube-apiserver fail curl: (7) Failed to connect",
        "unit kube-scheduler failed", f"version kube-scheduler Kubernetes v{KUBE}", "health kube-scheduler ok",
    ]))
    by_unit = {c.unit: c for c in host.components}
    assert by_unit["etcd"].ok and by_unit["etcd"].version == ETCD_VERSION
    assert not by_unit["kube-apiserver"].ok and "Failed to connect" in by_unit["kube-apiserver"].detail
    assert not by_unit["kube-scheduler"].ok and by_unit["kube-scheduler"].version == f"v{KUBE}"
    report = cluster_status.ClusterStatus([host])
    assert "m1: kube-apiserver unhealthy: curl: (7) Failed to connect" in report.problems
    assert "m1: kube-scheduler unhealthy: unit failed" in report.problems


def test_etcd_and_node_parsing():
    members = etcd_status.named(etcd_status.parse(json.dumps([
        {"Endpoint": "https://198.18.0.10:2379",
         "Status": {"header": {"member_id": 1}, "leader": 1, "raftIndex": 42, "dbSize": 2048, "version": ETCD_VERSION}},
        {"Endpoint": "https://198.18.0.11:2379",
         "Status": {"header": {"member_id": 2}, "leader": 1, "raftIndex": 42, "dbSize": 2048, "version": ETCD_VERSION}},
    ])), {"https://198.18.0.10:2379": "m1"})
    assert [(m.name, m.is_leader, m.raft_index) for m in members] == [("m1", True, 42), ("https://198.18.0.11:2379", False, 42)]
    nodes = list(node_facts.parse(json.dumps({"items": [
        {"metadata": {"name": "w1"}, "spec": {"unschedulable": True},
         "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": f"v{KUBE}"}}},
        {"metadata": {"name": "w2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
    ]})).values())
    report = cluster_status.ClusterStatus([], etcd_members=members, nodes=nodes, expected_nodes=["w1", "w2", "w3"])
    assert report.problems == ["node w2: not Ready", "node w3: not registered"]
    assert cluster_status.ClusterStatus([], etcd_members=[members[1]]).problems == ["etcd: no leader"]


def test_unreachable_host_is_a_problem():
    unreachable = cluster_status.HostReport("w1", reachable=False, error="timed out")
    assert cluster_status.ClusterStatus([unreachable]).problems == ["w1: unreachable (timed out)"]


def test_reset_plan_keeps_etcd_data_by_default(cluster):
    p = reset.plan(cluster, cluster.host("m1"), stamp="20260101T000000")
    assert p.etcd_data == "/data/etcd" and p.etcd_data_to == "/data/etcd.reset-20260101T000000"
    assert p.stop_units[:2] == ["kbuild-pod-routes.service", "kube-scheduler.service"] and "etcd.service" in p.stop_units
    assert "/usr/local/bin/etcdctl" in p.remove_files and "/usr/local/bin/kube-apiserver" in p.remove_files
    assert "/usr/local/sbin/kbuild-etcd-backup" in p.remove_files
    assert not any("/var/backups" in path for path in p.remove_files + p.remove_dirs)  # snapshots are kept
    # A control plane has routes to the nodes' pods (for webhooks), and they go with it; it has no kube-proxy.
    assert not p.kube_proxy_cleanup and p.routes == ["10.200.0.0/24", "10.200.1.0/24"]
    script = reset.script(p)
    assert "mv /data/etcd /data/etcd.reset-20260101T000000" in script
    assert "rm -rf --one-file-system /data/etcd\n" not in script
    assert any("move etcd data /data/etcd to" in line for line in p.describe())


def test_reset_plan_purge_and_node_cleanup(cluster):
    purge = reset.plan(cluster, cluster.host("m1"), purge_data=True)
    assert purge.etcd_data_to is None and "rm -rf --one-file-system /data/etcd" in reset.script(purge)
    assert any(line.startswith("DELETE etcd data") for line in purge.describe())
    worker = reset.plan(cluster, cluster.host("w1"))
    assert worker.kube_proxy_cleanup and worker.etcd_data is None
    assert worker.routes == ["10.200.1.0/24"]  # w2's pod network
    script = reset.script(worker)
    assert "kube-proxy --cleanup" in script and "ip route del 10.200.1.0/24" in script
    assert "/usr/local/bin/kubelet" in worker.remove_files and "/opt/cni/bin/bridge" in worker.remove_files
    # Only directories kbuild owns are removed wholesale; never a system directory.
    assert set(worker.remove_dirs) == {"/etc/kubernetes", "/var/lib/kubelet", "/var/lib/kube-proxy", "/etc/cni/net.d",
                                       "/var/lib/kbuild", "/var/log/kubernetes"}


def line_of(script: str, text: str) -> int:
    """The number of the one line of `script` that contains `text`."""
    [number] = [i for i, line in enumerate(script.splitlines()) if text in line]
    return number


def test_a_node_s_pods_are_removed_after_the_kubelet_stops_and_before_containerd_does(cluster):
    plan = reset.plan(cluster, cluster.host("w1"))
    assert plan.remove_pods and any(line.startswith("stop and remove every pod") for line in plan.describe())
    script = reset.script(plan)
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    crictl = f"{layout.binary_path('crictl')} --runtime-endpoint unix://{layout.CONTAINERD_SOCKET} rmp -af"
    order = [line_of(script, text) for text in (
        "systemctl disable --now kubelet.service",  # nothing starts pods again
        crictl,  # through the CRI, so the CNI plugins release addresses and network namespaces
        "tasks kill -s SIGKILL",  # what is left in the k8s.io namespace (no crictl on the host)
        "containers delete",
        "systemctl disable --now containerd.service",
        "systemctl stop kubepods.slice",  # the kubelet's cgroups, once their shims are gone
        f"grep '^{layout.KUBELET_DIR}/'",  # then the kubelet's mounts
    )]
    assert order == sorted(order)


def test_a_host_without_a_kubelet_has_no_pods_to_remove(cluster):
    plan = reset.plan(cluster, cluster.host("m1"))
    assert not plan.remove_pods
    script = reset.script(plan)
    assert "rmp -af" not in script and "kubepods.slice" not in script and "umount" not in script


def test_etcd_members_on_ipv6_hosts_are_named(cluster_from):
    v6 = cluster_from("""\
        cluster: {name: t}
        hosts:
          m1: {address: 'fd00::10', roles: [etcd, control-plane]}
          m2: {address: 'fd00::11', roles: [etcd, control-plane]}
          m3: {address: 'fd00::12', roles: [etcd, control-plane]}
        """)
    # etcdctl names endpoints by their client URL, with an IPv6 address in brackets.
    output = json.dumps([{"Endpoint": f"https://[fd00::1{i}]:2379",
                          "Status": {"header": {"member_id": i}, "leader": 0, "raftIndex": 7}} for i in range(3)])
    ctx = Context(v6, FakeSession(v6.hosts, lambda host, command: output))
    report = cluster_status.ClusterStatus([])
    cluster_status._etcd_members(ctx, v6, report, {"m1", "m2", "m3"})
    assert [m.name for m in report.etcd_members] == ["m1", "m2", "m3"] and not report.etcd_error
