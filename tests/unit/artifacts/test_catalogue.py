"""The catalogue: official URLs, checksum files and archive members exactly as upstream publishes them; roles."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from kbuild.artifacts.catalogue import component_binaries, host_binaries, release_binaries
from tests.unit.artifacts.helpers import make_cluster
from tests.unit.supported import DEFAULTS, ETCD_PREVIOUS, KUBE, KUBE_PREVIOUS

ETCD = DEFAULTS.etcd


def by_name(component: str, version: str, arch: str) -> dict:
    return {b.name: b for b in component_binaries(component, version, arch)}


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_kubernetes_binaries_are_single_files_on_dl_k8s_io(arch):
    files = by_name("kubernetes", KUBE, arch)
    assert set(files) == {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
                          "kubectl"}
    api = files["kube-apiserver"]
    assert api.release.url == f"https://dl.k8s.io/release/v{KUBE}/bin/linux/{arch}/kube-apiserver"
    assert api.release.checksum_url == f"https://dl.k8s.io/release/v{KUBE}/bin/linux/{arch}/kube-apiserver.sha256"
    assert api.member is None and not api.release.archive
    assert api.remote_path == PurePosixPath("/usr/local/bin/kube-apiserver")
    assert api.services == ("kube-apiserver",)
    assert files["kubectl"].services == ()


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_etcd_tarball_and_sha256sums(arch):
    files = by_name("etcd", ETCD, arch)
    assert set(files) == {"etcd", "etcdctl", "etcdutl"}
    release = files["etcd"].release
    base = f"https://github.com/etcd-io/etcd/releases/download/v{ETCD}/"
    assert release.url == f"{base}etcd-v{ETCD}-linux-{arch}.tar.gz"
    assert release.checksum_url == f"{base}SHA256SUMS"
    assert files["etcdctl"].member == f"etcd-v{ETCD}-linux-{arch}/etcdctl"
    assert files["etcd"].services == ("etcd",) and files["etcdutl"].services == ()


@pytest.mark.parametrize("etcd", [ETCD_PREVIOUS, ETCD])
def test_every_supported_etcd_ships_etcdutl(etcd):
    assert set(by_name("etcd", etcd, "amd64")) == {"etcd", "etcdctl", "etcdutl"}


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_containerd_runc_cni_crictl_release_names(arch):
    v = DEFAULTS
    containerd = by_name("containerd", v.containerd, arch)
    assert set(containerd) == {"containerd", "containerd-shim-runc-v2", "ctr"}
    assert containerd["containerd"].release.url == (
        f"https://github.com/containerd/containerd/releases/download/v{v.containerd}/"
        f"containerd-{v.containerd}-linux-{arch}.tar.gz")
    assert containerd["containerd"].release.checksum_url == containerd["containerd"].release.url + ".sha256sum"
    assert containerd["containerd-shim-runc-v2"].member == "bin/containerd-shim-runc-v2"
    assert containerd["containerd"].services == ("containerd",)

    runc = by_name("runc", v.runc, arch)["runc"]
    assert runc.release.url == f"https://github.com/opencontainers/runc/releases/download/v{v.runc}/runc.{arch}"
    assert runc.release.checksum_url == (
        f"https://github.com/opencontainers/runc/releases/download/v{v.runc}/runc.sha256sum")
    assert runc.member is None and runc.remote_path == PurePosixPath("/usr/local/bin/runc")

    cni = by_name("cni-plugins", v.cni_plugins, arch)
    assert {"bridge", "loopback", "host-local", "portmap"} <= set(cni)
    bridge = cni["bridge"]
    assert bridge.release.url == (f"https://github.com/containernetworking/plugins/releases/download/"
                                  f"v{v.cni_plugins}/cni-plugins-linux-{arch}-v{v.cni_plugins}.tgz")
    assert bridge.release.checksum_url == bridge.release.url + ".sha256"
    assert bridge.member == "./bridge" and bridge.remote_path == PurePosixPath("/opt/cni/bin/bridge")

    crictl = by_name("crictl", v.crictl, arch)["crictl"]
    assert crictl.release.url == (f"https://github.com/kubernetes-sigs/cri-tools/releases/download/v{v.crictl}/"
                                  f"crictl-v{v.crictl}-linux-{arch}.tar.gz")
    assert crictl.release.checksum_url == crictl.release.url + ".sha256"
    assert crictl.member == "crictl"


def test_unknown_component_and_arch_are_refused():
    with pytest.raises(ValueError, match="unknown component"):
        component_binaries("docker", "1.0.0", "amd64")
    with pytest.raises(ValueError, match="unsupported architecture"):
        component_binaries("etcd", ETCD, "riscv64")


def test_release_binaries_are_everything_taken_from_one_archive():
    etcd = component_binaries("etcd", ETCD, "amd64")
    assert release_binaries(etcd[0].release) == etcd
    api = by_name("kubernetes", KUBE, "amd64")["kube-apiserver"]
    assert release_binaries(api.release) == (api,)


def names(cluster, host):
    return [b.name for b in host_binaries(cluster.settings.versions, cluster.host(host))]


def test_roles_decide_what_a_host_gets(tmp_path):
    cluster = make_cluster(tmp_path, hosts="""\
  e1: {address: 198.18.0.9, roles: [etcd]}
  cp1: {address: 198.18.0.10, roles: [control-plane]}
  w1: {address: 198.18.0.11, roles: [worker], arch: arm64}
""")
    assert names(cluster, "e1") == ["etcd", "etcdctl", "etcdutl"]
    assert names(cluster, "cp1") == ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]
    assert names(cluster, "w1") == ["kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "runc",
                                    "bridge", "host-local", "loopback", "portmap", "crictl"]
    assert all(b.arch == "arm64" for b in host_binaries(cluster.settings.versions, cluster.host("w1")))


def test_crictl_is_installed_by_default_and_left_out_with_null(tmp_path):
    cluster = make_cluster(tmp_path)
    default = host_binaries(cluster.settings.versions, cluster.host("w1"))
    assert [(b.name, b.version) for b in default if b.component == "crictl"] == [("crictl", DEFAULTS.crictl)]
    assert "crictl" not in names(make_cluster(tmp_path, versions="crictl: null\n"), "w1")


def test_a_host_with_every_role_gets_each_file_once(tmp_path):
    cluster = make_cluster(tmp_path, hosts="  all: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}\n")
    got = names(cluster, "all")
    assert len(got) == len(set(got)) == 3 + 4 + 11


def test_versions_come_from_the_inventory(tmp_path):
    cluster = make_cluster(tmp_path, versions=f"kubernetes: {KUBE_PREVIOUS}\netcd: {ETCD_PREVIOUS}\n")
    binaries = host_binaries(cluster.settings.versions, cluster.host("cp1"))
    assert {b.version for b in binaries if b.component == "kubernetes"} == {KUBE_PREVIOUS}
    assert {(b.name, b.version) for b in binaries if b.component == "etcd"} == {
        ("etcd", ETCD_PREVIOUS), ("etcdctl", ETCD_PREVIOUS), ("etcdutl", ETCD_PREVIOUS)}
