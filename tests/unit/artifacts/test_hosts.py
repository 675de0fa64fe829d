"""host_artifacts and host_images: what the engine gets in push and pull mode, with and without prepare."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest

from kbuild.artifacts import (
    ArtifactStore,
    HostArtifact,
    HostImage,
    cluster_artifacts,
    cluster_binaries,
    cluster_images,
    host_artifacts,
)
from kbuild.artifacts.cache import Cache
from kbuild.artifacts.catalogue import kubernetes_release
from kbuild.artifacts.errors import ArtifactConfigError, ChecksumError
from kbuild.artifacts.hosts import host_images
from kbuild.artifacts.images import archive_path, node_image_refs
from tests.mirror.server import MirrorServer
from tests.unit.artifacts.helpers import (
    content,
    make_cluster,
    oci_archive,
    sha,
    write_fake_mirror,
    write_image,
    write_node_images,
)
from tests.unit.supported import DEFAULTS, PAUSE


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
    assert bridge.url.startswith("file://") and bridge.url.endswith(
        f"cni-plugins-linux-amd64-v{DEFAULTS.cni_plugins}.tgz")
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
    etcd = DEFAULTS.etcd
    etcd_path = f"github.com/etcd-io/etcd/releases/download/v{etcd}/etcd-v{etcd}-linux-amd64.tar.gz"
    assert etcdctl.url == f"{server.url}/{etcd_path}"
    assert etcdctl.archive_sha256 == sha(written[f"https://{etcd_path}"])
    assert etcdctl.member == f"etcd-v{etcd}-linux-amd64/etcdctl"
    assert etcdctl.sha256 is None and etcdctl.local_path is None  # the host verifies the archive itself
    api = artifacts["kube-apiserver"]
    assert api.sha256 == sha(written[kubernetes_release("kube-apiserver", DEFAULTS.kubernetes, "amd64").url])
    assert api.archive_sha256 is None


def test_pull_with_official_sites_uses_official_urls(tmp_path):
    cluster = make_cluster(tmp_path, artifacts="transfer: pull\n")
    artifacts = host_artifacts(cluster, cluster.host("cp1"), prepare=False)
    assert artifacts[0].url == (f"https://github.com/etcd-io/etcd/releases/download/v{DEFAULTS.etcd}/"
                                f"etcd-v{DEFAULTS.etcd}-linux-amd64.tar.gz")


def test_pull_from_a_directory_mirror_is_refused(tmp_path):
    cluster, _ = cluster_with(tmp_path, "mirror: mirror\ntransfer: pull\n")
    with pytest.raises(ArtifactConfigError, match="cluster hosts cannot read"):
        host_artifacts(cluster, cluster.host("cp1"), prepare=False)


def test_cluster_artifacts_covers_every_host(tmp_path):
    cluster, _ = cluster_with(tmp_path, "mirror: mirror\ncache_dir: cache\n")
    everything = cluster_artifacts(cluster)
    assert set(everything) == {"cp1", "w1"}
    assert [a.name for a in everything["cp1"]][:3] == ["etcd", "etcdctl", "etcdutl"]
    binaries = {b.remote_path: b for b in cluster_binaries(cluster)}
    assert all(a.local_path is not None and a.local_path.read_bytes() == content(binaries[a.remote_path])
               for a in everything["w1"])


# -- image archives ---------------------------------------------------------------------------------

APP = "kbuild.test/app:1.0"


def images_of(tmp_path, artifacts: str, host: str = "w1", *, prepare: bool = True) -> list[HostImage]:
    """host_images of `host` in a cluster with these artifacts settings, its mirror directory holding every
    archive the nodes need (kbuild's images and the preloaded ones) but those given as local files."""
    cluster = make_cluster(tmp_path, artifacts=artifacts)
    write_node_images(tmp_path / "mirror", cluster)
    return host_images(ArtifactStore.for_cluster(cluster), cluster, cluster.host(host), prepare=prepare)


def test_push_prepare_verifies_each_archive_into_the_cache(tmp_path):
    cluster = make_cluster(tmp_path, artifacts=f"mirror: mirror\ncache_dir: cache\nimages: {{preload: [{APP}]}}\n")
    written = write_node_images(tmp_path / "mirror", cluster)
    images = cluster_images(cluster)
    assert images["cp1"] == []  # no kubelet, no images
    refs = [i.ref for i in images["w1"]]
    assert refs == node_image_refs(cluster, cluster.host("w1")) and refs[0] == PAUSE and refs[-1] == APP
    for image in images["w1"]:
        data = written[(image.ref, "amd64")]
        assert (image.sha256, image.url) == (sha(data), None)
        assert image.local_path is not None and image.local_path.read_bytes() == data


def test_push_without_prepare_knows_only_what_the_cache_holds(tmp_path):
    settings = "mirror: mirror\ncache_dir: cache\n"
    cold = images_of(tmp_path, settings, prepare=False)
    assert cold[0].ref == PAUSE and all((i.sha256, i.local_path, i.url) == (None, None, None) for i in cold)
    assert not (tmp_path / "cache").exists()
    warm = images_of(tmp_path, settings)
    assert [i.ref for i in warm] == [i.ref for i in cold] and all(i.local_path is not None for i in warm)
    assert images_of(tmp_path, settings, prepare=False) == warm


def test_pull_reads_only_the_checksums_and_points_the_host_at_the_mirror(tmp_path):
    (tmp_path / "mirror").mkdir()
    with MirrorServer(tmp_path / "mirror") as server:
        images = images_of(tmp_path, f"mirror: {server.url}\ntransfer: pull\ncache_dir: cache\n")
        requested = server.requests
    assert images[0].ref == PAUSE
    paths = [archive_path(i.ref, "amd64") for i in images]
    assert requested == [f"/{path}.sha256" for path in paths]
    assert images == [HostImage(image.ref, sha((tmp_path / "mirror" / path).read_bytes()), None, f"{server.url}/{path}")
                      for image, path in zip(images, paths)]


def local_archive(tmp_path, ref: str = APP, *, checksum: str | None = None) -> Path:
    """archives/app.tar next to the inventory, with its .sha256 beside it (the archive's own, or `checksum`)."""
    archive = tmp_path / "archives" / "app.tar"
    archive.parent.mkdir(exist_ok=True)
    archive.write_bytes(oci_archive(ref))
    archive.with_name("app.tar.sha256").write_text(f"{checksum or sha(archive.read_bytes())}\n")
    return archive


LOCAL_APP = f"images: {{files: {{{APP}: archives/app.tar}}, preload: [{APP}]}}\n"


def test_local_files_are_pushed_even_when_the_hosts_pull(tmp_path):
    archive = local_archive(tmp_path)
    (tmp_path / "mirror").mkdir()
    with MirrorServer(tmp_path / "mirror") as server:
        images = images_of(tmp_path, f"mirror: {server.url}\ntransfer: pull\ncache_dir: cache\n{LOCAL_APP}")
        requested = server.requests
    *from_mirror, app = images
    assert app.ref == APP and [i.ref for i in from_mirror][0] == PAUSE
    assert all(i.url is not None and i.local_path is None for i in from_mirror)
    assert app.url is None and app.local_path is not None and app.local_path.read_bytes() == archive.read_bytes()
    assert app.sha256 == sha(archive.read_bytes())
    assert not any("app" in r for r in requested)  # the local file is not looked for in the mirror


def test_a_local_file_that_does_not_match_its_sha256_file_is_refused(tmp_path):
    archive = local_archive(tmp_path, checksum="0" * 64)
    with pytest.raises(ChecksumError) as caught:
        images_of(tmp_path, f"mirror: mirror\ncache_dir: cache\n{LOCAL_APP}")
    message = str(caught.value)
    assert f"image {APP} (linux/amd64): checksum mismatch for {archive.resolve().as_uri()}" in message
    assert f"expected sha256 {'0' * 64}" in message and f"found {sha(archive.read_bytes())}" in message
    assert Cache(tmp_path / "cache").get(sha(archive.read_bytes())) is None  # nothing of it was kept


def test_a_local_file_without_its_sha256_file_is_never_used(tmp_path):
    archive = local_archive(tmp_path)
    archive.with_name("app.tar.sha256").unlink()
    sums = archive.with_name("app.tar.sha256").as_uri()
    with pytest.raises(ChecksumError, match=f"image {re.escape(APP)} \\(linux/amd64\\): no checksum: "
                                            f"{re.escape(sums)} does not exist"):
        images_of(tmp_path, f"mirror: mirror\ncache_dir: cache\n{LOCAL_APP}")


def test_a_local_file_s_sha256_file_may_name_the_file_as_sha256sum_writes_it(tmp_path):
    archive = local_archive(tmp_path)
    archive.with_name("app.tar.sha256").write_text(f"{sha(archive.read_bytes())}  app.tar\n")
    *_, app = images_of(tmp_path, f"mirror: mirror\ncache_dir: cache\n{LOCAL_APP}")
    assert app.sha256 == sha(archive.read_bytes())


def test_the_pin_suggested_for_an_image_archive_is_that_archive_s_alone(tmp_path):
    local_archive(tmp_path).with_name("app.tar.sha256").unlink()
    with pytest.raises(ChecksumError, match=f"image {re.escape(APP)} .*no checksum") as caught:
        images_of(tmp_path, f"mirror: mirror\ncache_dir: cache\n{LOCAL_APP}")
    assert "artifacts.checksums: {linux-amd64.tar:" not in (caught.value.hint or "")


def test_an_archive_that_does_not_match_its_checksum_is_refused(tmp_path):
    damaged = b"not the published archive"
    write_image(tmp_path / "mirror", PAUSE, data=damaged, checksum=sha(oci_archive(PAUSE)))
    cluster = make_cluster(tmp_path, artifacts="mirror: mirror\ncache_dir: cache\n")
    store = ArtifactStore.for_cluster(cluster)
    with pytest.raises(ChecksumError) as caught:
        host_images(store, cluster, cluster.host("w1"), prepare=True)
    message = str(caught.value)
    assert f"image {PAUSE} (linux/amd64): checksum mismatch" in message
    assert f"found {sha(damaged)}" in message and "nothing was installed" in message
    assert store.cache.get(sha(damaged)) is None


def test_archives_without_a_mirror_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(ArtifactConfigError, match=f"{archive_path(PAUSE, 'amd64')} exists only in mirrors"):
        images_of(tmp_path, "images: {source: archives}\ncache_dir: cache\n")


def test_images_from_registries_need_no_archives(tmp_path):
    assert images_of(tmp_path, "cache_dir: cache\n") == []
    assert images_of(tmp_path, "mirror: mirror\nimages: {source: registry}\ncache_dir: cache\n") == []
