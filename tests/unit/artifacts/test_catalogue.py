"""The catalogue: official URLs, checksum files and archive members exactly as upstream publishes them; roles."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from kbuild.artifacts.catalogue import component_binaries, host_binaries, release_binaries
from tests.unit.artifacts.helpers import make_cluster, with_crictl


def by_name(component: str, version: str, arch: str) -> dict:
    return {b.name: b for b in component_binaries(component, version, arch)}


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_kubernetes_binaries_are_single_files_on_dl_k8s_io(arch):
    files = by_name("kubernetes", "1.33.5", arch)
    assert set(files) == {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
                          "kubectl"}
    api = files["kube-apiserver"]
    assert api.release.url == f"https://dl.k8s.io/release/v1.33.5/bin/linux/{arch}/kube-apiserver"
    assert api.release.checksum_url == f"https://dl.k8s.io/release/v1.33.5/bin/linux/{arch}/kube-apiserver.sha256"
    assert api.member is None and not api.release.archive
    assert api.remote_path == PurePosixPath("/usr/local/bin/kube-apiserver")
    assert api.services == ("kube-apiserver",)
    assert files["kubectl"].services == ()


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_etcd_tarball_and_sha256sums(arch):
    files = by_name("etcd", "3.5.1", arch)
    assert set(files) == {"etcd", "etcdctl", "etcdutl"}
    release = files["etcd"].release
    base = "https://github.com/etcd-io/etcd/releases/download/v3.5.1/"
    assert release.url == f"{base}etcd-v3.5.1-linux-{arch}.tar.gz"
    assert release.checksum_url == f"{base}SHA256SUMS"
    assert files["etcdctl"].member == f"etcd-v3.5.1-linux-{arch}/etcdctl"
    assert files["etcd"].services == ("etcd",) and files["etcdutl"].services == ()


def test_etcdutl_exists_only_from_3_5():
    assert set(by_name("etcd", "3.4.23", "amd64")) == {"etcd", "etcdctl"}
    assert "etcdutl" in by_name("etcd", "3.6.0", "amd64")


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_containerd_runc_cni_crictl_release_names(arch):
    containerd = by_name("containerd", "1.6.20", arch)
    assert set(containerd) == {"containerd", "containerd-shim-runc-v2", "ctr"}
    assert containerd["containerd"].release.url == (
        f"https://github.com/containerd/containerd/releases/download/v1.6.20/containerd-1.6.20-linux-{arch}.tar.gz")
    assert containerd["containerd"].release.checksum_url == containerd["containerd"].release.url + ".sha256sum"
    assert containerd["containerd-shim-runc-v2"].member == "bin/containerd-shim-runc-v2"
    assert containerd["containerd"].services == ("containerd",)

    runc = by_name("runc", "1.1.5", arch)["runc"]
    assert runc.release.url == f"https://github.com/opencontainers/runc/releases/download/v1.1.5/runc.{arch}"
    assert runc.release.checksum_url == "https://github.com/opencontainers/runc/releases/download/v1.1.5/runc.sha256sum"
    assert runc.member is None and runc.remote_path == PurePosixPath("/usr/local/bin/runc")

    cni = by_name("cni-plugins", "1.1.1", arch)
    assert {"bridge", "loopback", "host-local", "portmap"} <= set(cni)
    bridge = cni["bridge"]
    assert bridge.release.url == (f"https://github.com/containernetworking/plugins/releases/download/v1.1.1/"
                                  f"cni-plugins-linux-{arch}-v1.1.1.tgz")
    assert bridge.release.checksum_url == bridge.release.url + ".sha256"
    assert bridge.member == "./bridge" and bridge.remote_path == PurePosixPath("/opt/cni/bin/bridge")

    crictl = by_name("crictl", "1.33.0", arch)["crictl"]
    assert crictl.release.url == (f"https://github.com/kubernetes-sigs/cri-tools/releases/download/v1.33.0/"
                                  f"crictl-v1.33.0-linux-{arch}.tar.gz")
    assert crictl.release.checksum_url == crictl.release.url + ".sha256"
    assert crictl.member == "crictl"


def test_unknown_component_and_arch_are_refused():
    with pytest.raises(ValueError, match="unknown component"):
        component_binaries("docker", "1.0.0", "amd64")
    with pytest.raises(ValueError, match="unsupported architecture"):
        component_binaries("etcd", "3.5.1", "riscv64")


def test_release_binaries_are_everything_taken_from_one_archive():
    etcd = component_binaries("etcd", "3.5.1", "amd64")
    assert release_binaries(etcd[0].release) == etcd
    api = by_name("kubernetes", "1.33.5", "amd64")["kube-apiserver"]
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
                                    "bridge", "host-local", "loopback", "portmap"]
    assert all(b.arch == "arm64" for b in host_binaries(cluster.settings.versions, cluster.host("w1")))


def test_crictl_is_opt_in(tmp_path):
    cluster = make_cluster(tmp_path)
    assert "crictl" not in names(cluster, "w1")
    assert names(with_crictl(cluster, "1.33.0"), "w1")[-1] == "crictl"


def test_a_host_with_every_role_gets_each_file_once(tmp_path):
    cluster = make_cluster(tmp_path, hosts="  all: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}\n")
    got = names(cluster, "all")
    assert len(got) == len(set(got)) == 3 + 4 + 10


def test_versions_come_from_the_inventory(tmp_path):
    cluster = make_cluster(tmp_path, versions="kubernetes: 1.34.1\netcd: 3.4.23\n")
    binaries = host_binaries(cluster.settings.versions, cluster.host("cp1"))
    assert {b.version for b in binaries if b.component == "kubernetes"} == {"1.34.1"}
    assert [b.name for b in binaries if b.component == "etcd"] == ["etcd", "etcdctl"]
