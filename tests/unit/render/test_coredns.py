"""The CoreDNS addon as rendered for an inventory (templates/addons/coredns.yaml.j2): image, replicas, the
kube-dns Service at cluster_dns, the cluster domain, the forward resolvers and the Corefile's checksum."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
import yaml

from kbuild import layout
from kbuild.artifacts.images import node_image_refs
from kbuild.inventory import Cluster

from .conftest import MakeCluster, files_by_path


def manifest(cluster: Cluster, host: str = "m1") -> dict[str, dict[str, Any]]:
    """The addon's objects by kind, as the control plane `host` gets them."""
    text = files_by_path(cluster, host)[str(layout.COREDNS_MANIFEST)].content
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text) if doc}


def corefile(cluster: Cluster) -> str:
    return manifest(cluster)["ConfigMap"]["data"]["Corefile"]


def checksum(cluster: Cluster) -> str:
    return manifest(cluster)["Deployment"]["spec"]["template"]["metadata"]["annotations"]["kbuild.io/corefile-sha256"]


def test_the_objects_of_kubeadm_s_coredns_addon_in_kube_system(cluster) -> None:
    objects = manifest(cluster)
    assert set(objects) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment",
                            "PodDisruptionBudget", "Service"}
    assert {o["metadata"].get("namespace") for k, o in objects.items() if not k.startswith("Cluster")} == {
        "kube-system"}
    assert all(o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kbuild" for o in objects.values())
    assert objects["Service"]["metadata"]["name"] == "kube-dns"  # the name kubelets and users expect


def test_the_image_is_the_one_the_nodes_get_from_the_artifacts(cluster) -> None:
    (container,) = manifest(cluster)["Deployment"]["spec"]["template"]["spec"]["containers"]
    # With a mirror, nodes import image archives: the Deployment must name one they hold, or it never starts.
    air_gapped = dataclasses.replace(cluster, artifacts=cluster.artifacts.model_copy(update={"mirror": "mirror"}))
    assert air_gapped.kubelet_hosts
    for worker in air_gapped.kubelet_hosts:
        assert container["image"] in node_image_refs(air_gapped, worker)
    assert container["imagePullPolicy"] == "IfNotPresent"  # an imported archive is used, never pulled again


@pytest.mark.parametrize("replicas", [1, 2, 5])
def test_replicas_follow_the_inventory_with_a_budget_only_when_one_can_go(make_cluster: MakeCluster,
                                                                          replicas: int) -> None:
    objects = manifest(make_cluster(addons={"coredns": {"replicas": replicas}}))
    assert objects["Deployment"]["spec"]["replicas"] == replicas
    assert ("PodDisruptionBudget" in objects) == (replicas > 1)
    if replicas > 1:
        assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_the_service_sits_at_cluster_dns_by_default_the_tenth_service_address(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(service_cidr="10.96.0.0/16")
    assert manifest(cluster)["Service"]["spec"]["clusterIP"] == "10.96.0.10" == str(cluster.cluster_dns_ip)
    chosen = make_cluster(service_cidr="10.96.0.0/16", cluster_dns="10.96.3.53")
    assert manifest(chosen)["Service"]["spec"]["clusterIP"] == "10.96.3.53"
    # The kubelets hand the same address to every pod as its name server.
    kubelet = yaml.safe_load(files_by_path(chosen, "w1")[str(layout.KUBELET_CONFIG)].content)
    assert kubelet["clusterDNS"] == ["10.96.3.53"]


def test_the_cluster_domain_is_served_and_not_cached_for_success_or_denial(make_cluster: MakeCluster) -> None:
    text = corefile(make_cluster(cluster_domain="k8s.example.org"))
    assert "    kubernetes k8s.example.org in-addr.arpa ip6.arpa {" in text
    assert "disable success k8s.example.org" in text and "disable denial k8s.example.org" in text
    assert "cluster.local" not in text


@pytest.mark.parametrize("forward,line", [
    (None, "forward . /etc/resolv.conf {"),  # the default: the nodes' own resolvers
    (["1.1.1.1", "9.9.9.9:5353"], "forward . 1.1.1.1 9.9.9.9:5353 {"),
    (["/run/systemd/resolve/resolv.conf"], "forward . /run/systemd/resolve/resolv.conf {"),
])
def test_names_outside_the_cluster_go_to_the_forward_resolvers(make_cluster: MakeCluster, forward, line) -> None:
    settings = {"addons": {"coredns": {"forward": forward}}} if forward else {}
    lines = [entry.strip() for entry in corefile(make_cluster(**settings)).splitlines()]
    assert [entry for entry in lines if entry.startswith("forward")] == [line]


def test_without_forward_resolvers_only_cluster_names_are_answered(make_cluster: MakeCluster) -> None:
    text = corefile(make_cluster(addons={"coredns": {"forward": []}}))
    assert "forward" not in text and "kubernetes cluster.local" in text


def test_the_checksum_annotation_is_the_corefile_s_and_rolls_the_pods_when_forward_changes(
        make_cluster: MakeCluster) -> None:
    default = make_cluster()
    assert checksum(default) == hashlib.sha256(corefile(default).encode()).hexdigest()
    forwarded = make_cluster(addons={"coredns": {"forward": ["1.1.1.1"]}})
    assert checksum(forwarded) != checksum(default)
    assert checksum(forwarded) == hashlib.sha256(corefile(forwarded).encode()).hexdigest()
    # What is not in the Corefile does not restart the pods.
    assert checksum(make_cluster(addons={"coredns": {"replicas": 3}})) == checksum(default)


def test_disabled_no_host_gets_the_manifest(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(addons={"coredns": {"enabled": False}})
    assert all(str(layout.COREDNS_MANIFEST) not in files_by_path(cluster, h.name) for h in cluster.hosts)


def test_no_budget_with_a_single_worker_as_it_would_block_that_worker_s_drain(make_cluster: MakeCluster) -> None:
    # Every replica is on the one worker: a budget would make `kubectl drain` (every upgrade) wait forever.
    hosts = {"m1": {"address": "198.18.0.10", "roles": ["etcd", "control-plane"]},
             "w1": {"address": "198.18.0.11", "roles": ["worker"]}}
    objects = manifest(make_cluster(hosts=hosts, addons={"coredns": {"replicas": 2}}))
    assert objects["Deployment"]["spec"]["replicas"] == 2 and "PodDisruptionBudget" not in objects
