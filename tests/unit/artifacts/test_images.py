"""Images as artifacts: where an archive sits in a mirror, its release file, and which images a node gets."""

from __future__ import annotations

import pytest

from kbuild.artifacts.images import archive_path, image_release, node_image_refs, uses_archives
from kbuild.artifacts.mirror import MIRROR_ONLY
from kbuild.releases import COREDNS_IMAGE, KUBERNETES, minor_of
from tests.unit.artifacts.helpers import make_cluster
from tests.unit.supported import KUBERNETES_RELEASES, PAUSE

APP = "kbuild.test/app:1.0"
HOSTS = """\
  cp1: {address: 198.18.0.10, roles: [etcd, control-plane]}
  both: {address: 198.18.0.11, roles: [control-plane, worker]}
  w1: {address: 198.18.0.12, roles: [worker], arch: arm64}
"""


@pytest.mark.parametrize("ref, arch, path", [
    ("registry.k8s.io/pause:3.10.2", "amd64", "images/registry.k8s.io/pause/3.10.2/linux-amd64.tar"),
    ("registry.k8s.io/coredns/coredns:v1.14.6", "arm64",
     "images/registry.k8s.io/coredns/coredns/v1.14.6/linux-arm64.tar"),
    ("localhost:5000/team/app:v2-rc.1", "amd64", "images/localhost:5000/team/app/v2-rc.1/linux-amd64.tar"),
])
def test_an_archive_sits_under_registry_repository_tag_and_platform(ref, arch, path):
    assert archive_path(ref, arch) == path


def test_an_archive_path_needs_a_full_reference():
    for ref in ("pause:3.10.2", "registry.k8s.io/pause", "registry.k8s.io/pause@sha256:" + "a" * 64):
        with pytest.raises(ValueError, match="is not an image reference"):
            archive_path(ref, "amd64")


def test_an_image_release_exists_only_in_mirrors_and_is_checked_against_its_sha256():
    release = image_release(PAUSE, "arm64")
    assert release.url == f"{MIRROR_ONLY}{archive_path(PAUSE, 'arm64')}"
    assert release.checksum_url == f"{release.url}.sha256"
    assert (release.component, release.version, release.arch) == ("image", PAUSE.rsplit(":", 1)[1], "arm64")
    assert release.image == PAUSE and not release.archive  # imported whole, never unpacked
    assert release.filename == "linux-arm64.tar"
    assert release.label == f"image {PAUSE} (linux/arm64)"


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_a_node_gets_the_sandbox_image_of_its_kubernetes_minor_then_coredns(tmp_path, kubernetes):
    cluster = make_cluster(tmp_path, hosts=HOSTS, versions=f"kubernetes: {kubernetes}\n", artifacts="mirror: m\n")
    sandbox = KUBERNETES[minor_of(kubernetes)].pause_image
    # CoreDNS may be scheduled on any node, so every node holds its image.
    assert node_image_refs(cluster, cluster.host("w1")) == [sandbox, COREDNS_IMAGE]
    assert node_image_refs(cluster, cluster.host("both")) == [sandbox, COREDNS_IMAGE]


def test_without_the_coredns_addon_a_node_gets_no_coredns_image(tmp_path):
    cluster = make_cluster(tmp_path, hosts=HOSTS, settings="addons: {coredns: {enabled: false}}\n",
                           artifacts="mirror: m\n")
    assert node_image_refs(cluster, cluster.host("w1")) == [PAUSE]


def test_preloaded_images_come_last_and_each_image_once(tmp_path):
    cluster = make_cluster(tmp_path, hosts=HOSTS,
                           artifacts=f"mirror: m\nimages: {{preload: [{APP}, {COREDNS_IMAGE}, {PAUSE}]}}\n")
    assert node_image_refs(cluster, cluster.host("w1")) == [PAUSE, COREDNS_IMAGE, APP]


def test_hosts_without_a_kubelet_get_no_images(tmp_path):
    cluster = make_cluster(tmp_path, hosts=HOSTS, artifacts=f"mirror: m\nimages: {{preload: [{APP}]}}\n")
    assert node_image_refs(cluster, cluster.host("cp1")) == []


@pytest.mark.parametrize("artifacts, archives", [
    ("", False),  # online: containerd pulls from the registries
    ("mirror: m\n", True),  # a mirror means no internet
    ("mirror: m\nimages: {source: registry}\n", False),  # a mirror for binaries, a registry for images
    ("images: {source: archives}\n", True),  # a bundle or local files, no mirror
])
def test_where_images_come_from(tmp_path, artifacts, archives):
    cluster = make_cluster(tmp_path, hosts=HOSTS, artifacts=artifacts)
    assert uses_archives(cluster) is archives
    assert node_image_refs(cluster, cluster.host("w1")) == ([PAUSE, COREDNS_IMAGE] if archives else [])
