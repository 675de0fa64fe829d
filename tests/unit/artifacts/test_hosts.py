"""host_artifacts: what the engine gets in push and pull mode, with and without prepare."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from kbuild.artifacts import HostArtifact, cluster_artifacts, cluster_binaries, host_artifacts
from kbuild.artifacts.errors import ArtifactConfigError
from tests.mirror.server import MirrorServer
from tests.unit.artifacts.helpers import make_cluster, sha, write_fake_mirror


def cluster_with(tmp_path, artifacts: str):
    cluster = make_cluster(tmp_path, artifacts=artifacts)
    written = write_fake_mirror(tmp_path / "mirror", cluster_binaries(cluster))
    return cluster, written


def test_push_prepare_fills_sha_and_local_path(tmp_path):
    cluster, _ = cluster_with(tmp_path, "mirror: mirror\ncache_dir: cache\n")
    worker = {a.name: a for a in host_artifacts(cluster, cluster.host("w1"))}
    bridge = worker["bridge"]
    assert isinstance(bridge, HostArtifact)
    assert bridge.component == "cni-plugins" and bridge.mode == 0o755
    assert bridge.remote_path == PurePosixPath("/opt/cni/bin/bridge")
    assert bridge.local_path is not None and bridge.local_path.read_bytes().startswith(b"#!/bin/sh\necho bridge")
    assert bridge.sha256 == sha(bridge.local_path.read_bytes())
    assert bridge.member == "./bridge" and bridge.archive_sha256 is not None
    assert bridge.url.startswith("file://") and bridge.url.endswith("cni-plugins-linux-amd64-v1.1.1.tgz")
    kubelet = worker["kubelet"]
    assert kubelet.member is None and kubelet.archive_sha256 is None and kubelet.services == ("kubelet",)
    assert worker["containerd"].services == ("containerd",)


def test_without_prepare_nothing_is_fetched(tmp_path):
    cluster, _ = cluster_with(tmp_path, "mirror: mirror\ncache_dir: cache\n")
    cold = host_artifacts(cluster, cluster.host("cp1"), prepare=False)
    assert all(a.sha256 is None and a.local_path is None for a in cold)
    assert not (tmp_path / "cache").exists()
    warm = host_artifacts(cluster, cluster.host("cp1"))
    again = host_artifacts(cluster, cluster.host("cp1"), prepare=False)
    assert again == warm


def test_pull_fetches_only_checksums_and_points_hosts_at_the_mirror(tmp_path):
    _, written = cluster_with(tmp_path, "mirror: mirror\n")
    with MirrorServer(tmp_path / "mirror") as server:
        cluster = make_cluster(tmp_path, artifacts=f"mirror: {server.url}\ntransfer: pull\ncache_dir: cache\n")
        artifacts = {a.name: a for a in host_artifacts(cluster, cluster.host("cp1"))}
        requested = server.requests
    assert requested and all(p.endswith((".sha256", "SHA256SUMS")) for p in requested)
    etcdctl = artifacts["etcdctl"]
    etcd_path = "github.com/etcd-io/etcd/releases/download/v3.5.1/etcd-v3.5.1-linux-amd64.tar.gz"
    assert etcdctl.url == f"{server.url}/{etcd_path}"
    assert etcdctl.archive_sha256 == sha(written[
        "https://github.com/etcd-io/etcd/releases/download/v3.5.1/etcd-v3.5.1-linux-amd64.tar.gz"])
    assert etcdctl.member == "etcd-v3.5.1-linux-amd64/etcdctl"
    assert etcdctl.sha256 is None and etcdctl.local_path is None  # the host verifies the archive itself
    api = artifacts["kube-apiserver"]
    assert api.sha256 == sha(written[
        "https://dl.k8s.io/release/v1.33.5/bin/linux/amd64/kube-apiserver"]) and api.archive_sha256 is None


def test_pull_with_official_sites_uses_official_urls(tmp_path):
    cluster = make_cluster(tmp_path, artifacts="transfer: pull\n")
    artifacts = host_artifacts(cluster, cluster.host("cp1"), prepare=False)
    assert artifacts[0].url == "https://github.com/etcd-io/etcd/releases/download/v3.5.1/etcd-v3.5.1-linux-amd64.tar.gz"


def test_pull_from_a_directory_mirror_is_refused(tmp_path):
    cluster, _ = cluster_with(tmp_path, "mirror: mirror\ntransfer: pull\n")
    with pytest.raises(ArtifactConfigError, match="cluster hosts cannot read"):
        host_artifacts(cluster, cluster.host("cp1"), prepare=False)


def test_cluster_artifacts_covers_every_host(tmp_path):
    cluster, _ = cluster_with(tmp_path, "mirror: mirror\ncache_dir: cache\n")
    everything = cluster_artifacts(cluster)
    assert set(everything) == {"cp1", "w1"}
    assert [a.name for a in everything["cp1"]][:3] == ["etcd", "etcdctl", "etcdutl"]
    assert all(a.local_path is not None and a.local_path.read_bytes() == content_of(a) for a in everything["w1"])


def content_of(artifact: HostArtifact) -> bytes:
    version = {"kubernetes": "1.33.5", "containerd": "1.6.20", "runc": "1.1.5", "cni-plugins": "1.1.1"}
    return f"#!/bin/sh\necho {artifact.name} {version[artifact.component]} amd64\n".encode()
