"""Which files each host gets, their paths, modes and the services each one restarts."""

from __future__ import annotations

import ipaddress
from pathlib import PurePosixPath

import pytest

from kbuild import layout
from kbuild.render import host_files, node_pod_cidr, units_for
from kbuild.render.files import UNIT_ORDER
from tests.unit.supported import KUBERNETES_RELEASES

from .conftest import HOSTS, MakeCluster, files_by_path, versions

UNIT = str(layout.UNIT_DIR)

ETCD_FILES = {f"{UNIT}/etcd.service": ("etcd",)}
CONTROL_PLANE_FILES = {
    f"{UNIT}/kube-apiserver.service": ("kube-apiserver",),
    f"{UNIT}/kube-controller-manager.service": ("kube-controller-manager",),
    f"{UNIT}/kube-scheduler.service": ("kube-scheduler",),
    str(layout.SCHEDULER_CONFIG): ("kube-scheduler",),
    str(layout.AUDIT_POLICY): ("kube-apiserver",),
    str(layout.AUTHENTICATION_CONFIG): ("kube-apiserver",),
    str(layout.APISERVER_KUBELET_RBAC): (),  # applied through the API, read by no service
    str(layout.COREDNS_MANIFEST): (),  # likewise (addons.coredns.enabled, the default)
}
KUBELET_FILES = {
    f"{UNIT}/containerd.service": ("containerd",),
    str(layout.CONTAINERD_CONFIG): ("containerd",),
    str(layout.CNI_BRIDGE_CONF): (),  # containerd reloads the CNI directory by itself
    str(layout.CNI_LOOPBACK_CONF): (),
    f"{UNIT}/kubelet.service": ("kubelet",),
    str(layout.KUBELET_CONFIG): ("kubelet",),
    f"{UNIT}/kube-proxy.service": ("kube-proxy",),
    str(layout.KUBE_PROXY_CONFIG): ("kube-proxy",),
}
# Nodes and every apiserver host (webhooks and aggregated APIs run in pods).
POD_ROUTE_FILES = {f"{UNIT}/kbuild-pod-routes.service": ()}  # new routes are added live; see kbuild.plays.pod_network


@pytest.mark.parametrize("host, expected", [
    ("m1", {**ETCD_FILES, **CONTROL_PLANE_FILES, **POD_ROUTE_FILES}),
    ("m3", {**ETCD_FILES, **CONTROL_PLANE_FILES, **KUBELET_FILES, **POD_ROUTE_FILES}),
    ("w1", {**KUBELET_FILES, **POD_ROUTE_FILES}),
])
def test_files_and_services_follow_the_roles(make_cluster: MakeCluster, host: str, expected: dict) -> None:
    files = files_by_path(make_cluster(), host)
    assert {path: f.services for path, f in files.items()} == expected


def test_etcd_only_and_control_plane_only_hosts(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(hosts={
        "e1": {"address": "198.18.0.5", "roles": ["etcd"]},
        "c1": {"address": "198.18.0.6", "roles": ["control-plane"]},
        "w1": {"address": "198.18.0.7", "roles": ["worker"]},
    })
    assert set(files_by_path(cluster, "e1")) == set(ETCD_FILES)
    assert set(files_by_path(cluster, "c1")) == set(CONTROL_PLANE_FILES) | set(POD_ROUTE_FILES)
    assert units_for(cluster.host("e1")) == ["etcd"]
    assert units_for(cluster.host("c1")) == ["kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                             "kbuild-pod-routes"]


def test_unit_files_restart_themselves_and_name_their_template(cluster) -> None:
    for host in cluster.hosts:
        for f in host_files(cluster, host):
            assert f.path.is_absolute()
            assert f.mode == 0o644
            assert f.template.endswith(".j2")
            assert f.content.endswith("\n")
            if f.path.parent == layout.UNIT_DIR and f.services:
                name = f.path.name.removesuffix(".service")
                assert f.services == (name,)
                assert f.template == f"{name}.service.j2"
                assert f.path == layout.unit_path(name)


def test_rendered_file_is_frozen(cluster) -> None:
    f = host_files(cluster, cluster.host("m1"))[0]
    with pytest.raises(AttributeError):
        f.content = "x"  # type: ignore[misc]
    assert isinstance(f.path, PurePosixPath)


def test_units_for_is_in_start_order(cluster) -> None:
    assert units_for(cluster.host("m1")) == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                             "kbuild-pod-routes"]
    assert units_for(cluster.host("w1")) == ["containerd", "kubelet", "kube-proxy", "kbuild-pod-routes"]
    assert units_for(cluster.host("m3")) == list(UNIT_ORDER)


def test_units_for_matches_the_unit_files(cluster) -> None:
    for host in cluster.hosts:
        unit_names = {f.path.name.removesuffix(".service") for f in host_files(cluster, host)
                      if f.path.parent == layout.UNIT_DIR}
        assert set(units_for(host)) == unit_names


def test_runs_kubelet_is_the_worker_role(cluster) -> None:
    assert [h.name for h in cluster.hosts if h.runs_kubelet] == ["m3", "w1", "w2"]


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_every_supported_minor_restricts_anonymous_through_the_authentication_config(
        make_cluster: MakeCluster, kubernetes: str) -> None:
    files = files_by_path(make_cluster(versions=versions(kubernetes=kubernetes)), "m1")
    assert files[str(layout.AUTHENTICATION_CONFIG)].services == ("kube-apiserver",)
    assert str(layout.AUTHENTICATION_CONFIG) not in files_by_path(make_cluster(), "w1")  # control planes only


# -- per-node pod CIDRs ---------------------------------------------------------------------------------


def test_node_pod_cidrs_are_consecutive_blocks_in_inventory_order(cluster) -> None:
    got = {h.name: str(node_pod_cidr(cluster, h)) for h in cluster.hosts if h.runs_kubelet}
    assert got == {"m3": "10.200.0.0/24", "w1": "10.200.1.0/24", "w2": "10.200.2.0/24"}


def test_node_pod_cidrs_do_not_overlap_and_stay_in_the_pod_cidr(make_cluster: MakeCluster) -> None:
    hosts = {f"w{i}": {"address": f"198.18.0.{100 + i}", "roles": ["worker"]} for i in range(16)}
    hosts["m1"] = {"address": "198.18.0.1", "roles": ["etcd", "control-plane"]}
    cluster = make_cluster(hosts=hosts, pod_cidr="10.244.0.0/20", node_cidr_mask_size=24)
    nets = [node_pod_cidr(cluster, h) for h in cluster.hosts if h.runs_kubelet]
    assert len(nets) == 16
    for i, a in enumerate(nets):
        assert a.subnet_of(ipaddress.ip_network("10.244.0.0/20"))
        assert a.prefixlen == 24
        assert not any(a.overlaps(b) for b in nets[i + 1:])


def test_the_bridge_serves_the_node_pod_cidr(cluster) -> None:
    import json

    for name in ("m3", "w1", "w2"):
        bridge = json.loads(files_by_path(cluster, name)[str(layout.CNI_BRIDGE_CONF)].content)["plugins"][0]
        assert bridge["ipam"]["ranges"] == [[{"subnet": str(node_pod_cidr(cluster, cluster.host(name)))}]]


def test_a_host_without_kubelet_has_no_pod_cidr(cluster) -> None:
    from kbuild.errors import KbuildError

    with pytest.raises(KbuildError, match="runs no kubelet"):
        node_pod_cidr(cluster, cluster.host("m1"))


def test_default_hosts_cover_every_role_combination() -> None:
    combos = {tuple(sorted(h["roles"])) for h in HOSTS.values()}
    assert len(combos) == 3


def test_pod_routes_point_at_every_other_node(cluster) -> None:
    kubelet_hosts = cluster.kubelet_hosts
    for host in kubelet_hosts:
        unit = files_by_path(cluster, host.name)[f"{UNIT}/kbuild-pod-routes.service"].content
        for other in kubelet_hosts:
            route = f"ip route replace {node_pod_cidr(cluster, other)} via {other.address}"
            assert (route in unit) == (other.name != host.name), (host.name, other.name)


def test_a_control_plane_without_kubelet_routes_to_every_node_s_pods(make_cluster: MakeCluster) -> None:
    # kube-apiserver runs with --enable-aggregator-routing: it calls webhook and aggregated-API pods at their
    # pod IPs, so its host needs the route to every node's pod CIDR although it runs no pod itself.
    cluster = make_cluster(hosts={
        "c1": {"address": "198.18.0.6", "roles": ["etcd", "control-plane"]},
        "w1": {"address": "198.18.0.7", "roles": ["worker"]},
        "w2": {"address": "198.18.0.8", "roles": ["worker"]},
    })
    routes = files_by_path(cluster, "c1")[f"{UNIT}/kbuild-pod-routes.service"]
    assert routes.role == "control-plane"  # no node phase runs there to set them
    for worker in ("w1", "w2"):
        node = cluster.host(worker)
        assert f"ip route replace {node_pod_cidr(cluster, node)} via {node.address}" in routes.content
    assert files_by_path(cluster, "w1")[f"{UNIT}/kbuild-pod-routes.service"].role == "node"


def test_an_etcd_only_host_gets_no_pod_routes(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(hosts={
        "e1": {"address": "198.18.0.5", "roles": ["etcd"]},
        "c1": {"address": "198.18.0.6", "roles": ["control-plane"]},
        "w1": {"address": "198.18.0.7", "roles": ["worker"]},
    })
    assert f"{UNIT}/kbuild-pod-routes.service" not in files_by_path(cluster, "e1")
