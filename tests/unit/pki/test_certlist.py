"""The certificate table itself: order, references, names, and the host selections it makes."""

from __future__ import annotations

from kbuild.inventory import Cluster
from kbuild.pki import CERTS, KUBECONFIGS
from kbuild.pki.certlist import instances, kubeconfig_instances


def test_cas_come_first_and_every_signing_ca_is_declared_earlier() -> None:
    seen_cas: set[str] = set()
    leaf_seen = False
    for entry in CERTS:
        if entry.is_ca:
            assert not leaf_seen, f"CA {entry.name} comes after a leaf certificate"
            seen_cas.add(entry.name)
        else:
            leaf_seen = True
            assert entry.ca in seen_cas, f"{entry.name} names CA {entry.ca!r}, which is not declared before it"


def test_names_and_files_are_unique() -> None:
    assert len({c.name for c in CERTS}) == len(CERTS)
    assert len({c.file for c in CERTS}) == len(CERTS)
    assert len({k.name for k in KUBECONFIGS}) == len(KUBECONFIGS)


def test_kubeconfigs_name_client_certificates_of_the_cluster_ca() -> None:
    by_name = {c.name: c for c in CERTS}
    for kc in KUBECONFIGS:
        assert by_name[kc.cert].ca == "ca"
        assert "client" in by_name[kc.cert].ext_key_usage


def test_per_host_rows_follow_roles(cluster: Cluster) -> None:
    names = [i.name for i in instances(cluster)]
    assert [n for n in names if n.startswith("etcd-server/")] == ["etcd-server/m1", "etcd-server/m2",
                                                                 "etcd-server/m3"]
    assert [n for n in names if n.startswith("kubelet-client/")] == ["kubelet-client/m2", "kubelet-client/w1"]
    assert [k.name for k in kubeconfig_instances(cluster) if k.host] == ["kubelet.conf/m2", "kubelet.conf/w1"]


def test_kubelet_runs_only_on_hosts_with_the_worker_role(cluster: Cluster) -> None:
    assert [h.name for h in cluster.kubelet_hosts] == ["m2", "w1"]
    assert not cluster.host("m1").runs_kubelet  # a pure master
    assert cluster.host("m2").runs_kubelet  # a master that is also a worker
