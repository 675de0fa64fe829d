"""host_files: which PKI files each role gets, their modes, secrecy, services, and that they come from the state dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

import pytest
from cryptography import x509

from kbuild.inventory import Cluster
from kbuild.pki import PKIError, PKIFile, ensure, host_files
from kbuild.pki.certlist import remote_path
from kbuild.pki.store import StateFiles

from .conftest import HOSTS, NOW


def _remote(*ids: str) -> set[PurePosixPath]:
    return {remote_path(i) for i in ids}


ETCD_FILES = _remote("etcd-ca.crt", "etcd-server.crt", "etcd-server.key", "etcd-peer.crt", "etcd-peer.key",
                     "etcd-healthcheck-client.crt", "etcd-healthcheck-client.key")
CONTROL_PLANE_FILES = _remote(
    "ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "apiserver-kubelet-client.crt",
    "apiserver-kubelet-client.key", "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "etcd-ca.crt",
    "front-proxy-ca.crt", "front-proxy-client.crt", "front-proxy-client.key", "sa.key", "sa.pub",
    "encryption-config", "controller-manager.conf", "scheduler.conf", "admin.conf")
KUBELET_FILES = _remote("ca.crt", "kubelet.conf", "kubelet-serving.crt", "kubelet-serving.key", "kube-proxy.conf")


@pytest.fixture
def generated(cluster: Cluster) -> Cluster:
    ensure(cluster, now=NOW)
    return cluster


def _by_path(cluster: Cluster, host: str) -> dict[PurePosixPath, PKIFile]:
    files = host_files(cluster, cluster.host(host))
    assert len({f.path for f in files}) == len(files), "a path is listed twice"
    return {f.path: f for f in files}


def test_files_per_role(generated: Cluster) -> None:
    assert set(_by_path(generated, "m1")) == ETCD_FILES | CONTROL_PLANE_FILES  # etcd + control plane
    assert set(_by_path(generated, "m2")) == ETCD_FILES | CONTROL_PLANE_FILES | KUBELET_FILES
    assert set(_by_path(generated, "w1")) == KUBELET_FILES


def test_modes_and_secrecy(generated: Cluster) -> None:
    for host in ("m2", "w1"):
        for f in host_files(generated, generated.host(host)):
            secret = f.path.suffix in (".key", ".conf") or f.path == remote_path("encryption-config")
            assert f.secret is secret, f.path
            assert f.mode == (0o600 if secret else 0o644), f.path
            assert isinstance(f.path, PurePosixPath) and f.path.is_absolute()


def test_services_to_restart(generated: Cluster) -> None:
    m2 = _by_path(generated, "m2")
    assert m2[remote_path("ca.crt")].services == ("kube-apiserver", "kube-controller-manager", "kubelet")
    assert m2[remote_path("etcd-ca.crt")].services == ("etcd", "kube-apiserver")
    assert m2[remote_path("ca.key")].services == ("kube-controller-manager",)
    assert m2[remote_path("apiserver.crt")].services == ("kube-apiserver",)
    assert m2[remote_path("sa.key")].services == ("kube-apiserver", "kube-controller-manager")
    assert m2[remote_path("scheduler.conf")].services == ("kube-scheduler",)
    assert m2[remote_path("kube-proxy.conf")].services == ("kube-proxy",)
    assert m2[remote_path("etcd-peer.key")].services == ("etcd",)
    assert m2[remote_path("admin.conf")].services == ()
    assert _by_path(generated, "w1")[remote_path("ca.crt")].services == ("kubelet",)


def test_content_is_the_hosts_own(generated: Cluster) -> None:
    state = StateFiles(generated.state_dir)
    m1, w1 = _by_path(generated, "m1"), _by_path(generated, "w1")
    assert m1[remote_path("etcd-server.crt")].content == state.cert("hosts/m1/etcd-server").read_bytes()
    assert m1[remote_path("etcd-peer.key")].content == state.key("hosts/m1/etcd-peer").read_bytes()
    assert w1[remote_path("kubelet.conf")].content == (generated.state_dir / "kubeconfigs/kubelet-w1.conf").read_bytes()
    assert m1[remote_path("admin.conf")].content == (generated.state_dir / "admin.conf").read_bytes()
    assert m1[remote_path("encryption-config")].content == state.encryption_config.read_bytes()
    serving = x509.load_pem_x509_certificate(w1[remote_path("kubelet-serving.crt")].content)
    assert serving.subject.rfc4514_string() == "CN=system:node:w1,O=system:nodes"


def test_pki_changes_reach_host_files(generated: Cluster) -> None:
    before = _by_path(generated, "m1")
    ensure(generated, renew=["apiserver"], now=NOW)
    after = _by_path(generated, "m1")
    changed = {p for p in after if after[p].content != before[p].content}
    assert changed == {remote_path("apiserver.crt"), remote_path("apiserver.key")}


def test_no_encryption_config_when_encryption_at_rest_is_off(make_cluster: Callable[..., Cluster]) -> None:
    plain = make_cluster(cluster={"encryption_at_rest": False})
    report = ensure(plain, now=NOW)
    assert "encryption-config" not in {o.name for o in report.outcomes}
    assert remote_path("encryption-config") not in _by_path(plain, "m1")


def test_a_host_added_after_generate_is_reported(make_cluster: Callable[..., Cluster]) -> None:
    ensure(make_cluster(), now=NOW)
    grown = make_cluster(hosts=dict(HOSTS, w9={"address": "198.18.0.29", "roles": ["worker"]}))
    with pytest.raises(PKIError, match="w9: the PKI is not generated for this host yet"):
        host_files(grown, grown.host("w9"))
    assert host_files(grown, grown.host("w1"))  # the others are unaffected
