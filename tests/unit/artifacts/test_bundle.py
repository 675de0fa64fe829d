"""Bundles: write, verify, import; a damaged or incomplete bundle changes nothing usable."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kbuild.artifacts import (
    ArtifactStore,
    BundleError,
    cluster_binaries,
    host_artifacts,
    read_manifest,
    use_bundle,
    write_bundle,
)
from kbuild.artifacts.errors import ArtifactConfigError
from kbuild.artifacts.hosts import host_images
from kbuild.artifacts.images import node_image_refs
from tests.unit.artifacts.helpers import make_cluster, sha, write_cluster_mirror
from tests.unit.supported import DEFAULTS, KUBE_PREVIOUS, PAUSE


@pytest.fixture
def bundled(tmp_path):
    """A cluster fetched from a fake mirror (binaries and image archives) into `cache`, and its bundle."""
    cluster = make_cluster(tmp_path, artifacts="mirror: mirror\ncache_dir: cache\n")
    write_cluster_mirror(tmp_path / "mirror", cluster)
    manifest = write_bundle(cluster, tmp_path / "out" / "bundle.tar")
    return cluster, manifest, tmp_path / "out" / "bundle.tar"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_manifest_names_every_file(bundled):
    cluster, manifest, path = bundled
    assert read_manifest(path) == manifest
    assert {(f.name, f.version, f.arch) for f in manifest.files} >= {("etcdctl", DEFAULTS.etcd, "amd64"),
                                                                    ("kubelet", DEFAULTS.kubernetes, "amd64")}
    images = {(ref, h.arch) for h in cluster.hosts for ref in node_image_refs(cluster, h)}
    assert (PAUSE, "amd64") in images
    assert {(f.name, f.arch) for f in manifest.files if f.component == "image"} == images  # each once
    assert len(manifest.files) == len(cluster_binaries(cluster)) + len(images)
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json"
    assert sorted(names[1:]) == sorted({f"blobs/sha256/{f.sha256}" for f in manifest.files})


def test_round_trip_without_network(bundled, tmp_path, no_network):
    cluster, manifest, path = bundled
    shutil.rmtree(tmp_path / "mirror")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    offline = make_cluster(elsewhere, artifacts="mirror: http://127.0.0.1:9/nothing\ncache_dir: fresh-cache\n")
    use_bundle(path, offline)
    store = ArtifactStore.for_cluster(offline, offline=True)
    for host in offline.hosts:
        for artifact in host_artifacts(offline, host):
            assert artifact.local_path is not None and sha(artifact.local_path.read_bytes()) == artifact.sha256
        for image in host_images(store, offline, host, prepare=True):
            assert image.local_path is not None and sha(image.local_path.read_bytes()) == image.sha256


def test_import_without_inventory_goes_to_the_given_cache(bundled, tmp_path):
    _, manifest, path = bundled
    use_bundle(path, cache_dir=tmp_path / "c2")
    assert all((tmp_path / "c2" / "blobs" / "sha256" / f.sha256).is_file() for f in manifest.files)


def copy_bundle(source: Path, target: Path, change: Callable[[tarfile.TarInfo, bytes], bytes | None]) -> Path:
    """A copy of a bundle with each member's data passed through `change` (None leaves the member out)."""
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for member in old:
            stream = old.extractfile(member)
            assert stream is not None
            data = change(member, stream.read())
            if data is not None:
                member.size = len(data)
                new.addfile(member, io.BytesIO(data))
    return target


def test_a_damaged_blob_is_refused_and_no_index_written(bundled, tmp_path):
    _, manifest, path = bundled
    blob = manifest.files[0].blob
    damaged = copy_bundle(path, tmp_path / "damaged.tar", lambda m, data: b"X" + data[1:] if m.name == blob else data)
    with pytest.raises(BundleError, match="is damaged"):
        use_bundle(damaged, cache_dir=tmp_path / "c3")
    assert not (tmp_path / "c3" / "refs").exists()


def test_a_bundle_missing_a_blob_is_refused(bundled, tmp_path):
    _, manifest, path = bundled
    blob = manifest.files[-1].blob
    partial = copy_bundle(path, tmp_path / "partial.tar", lambda m, data: None if m.name == blob else data)
    with pytest.raises(BundleError, match="does not hold it"):
        use_bundle(partial, cache_dir=tmp_path / "c4")


def test_a_bundle_must_cover_the_inventory(bundled, tmp_path):
    _, _, path = bundled
    other = make_cluster(tmp_path, versions=f"kubernetes: {KUBE_PREVIOUS}\n", artifacts="cache_dir: c5\n")
    with pytest.raises(BundleError, match=rf"lacks .*kube-apiserver \(kubernetes {KUBE_PREVIOUS} linux/amd64\)"):
        use_bundle(path, other)
    pull = make_cluster(tmp_path, artifacts="transfer: pull\ncache_dir: c5\n")
    with pytest.raises(ArtifactConfigError, match="push transfer only"):
        use_bundle(path, pull)


def test_not_a_bundle(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="not a readable tar file"):
        use_bundle(tmp_path / "x.tar", cache_dir=tmp_path)
    with tarfile.open(tmp_path / "y.tar", "w") as tar:
        data = json.dumps({"format": "something-else"}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BundleError, match="not a kbuild artifacts bundle manifest"):
        use_bundle(tmp_path / "y.tar", cache_dir=tmp_path)
    with pytest.raises(BundleError, match="not found"):
        use_bundle(tmp_path / "none.tar", cache_dir=tmp_path)


def test_a_bundle_must_hold_the_image_archives_too(tmp_path):
    """A bundle made where containerd pulls images does not serve an air-gapped cluster, which imports them."""
    (tmp_path / "online").mkdir()
    online = make_cluster(tmp_path / "online",
                          artifacts="mirror: mirror\ncache_dir: cache\nimages: {source: registry}\n")
    write_cluster_mirror(tmp_path / "online" / "mirror", online)
    manifest = write_bundle(online, tmp_path / "online.tar")
    assert not [f for f in manifest.files if f.component == "image"]
    air_gapped = make_cluster(tmp_path, artifacts="cache_dir: c6\nimages: {source: archives}\n")
    needed = node_image_refs(air_gapped, air_gapped.host("w1"))
    assert needed[0] == PAUSE
    every_image = ", ".join(f"image {ref} (linux/amd64)" for ref in needed)
    with pytest.raises(BundleError, match=rf"(?m)lacks what this inventory needs: {re.escape(every_image)}$"):
        use_bundle(tmp_path / "online.tar", air_gapped)
    assert not (tmp_path / "c6").exists()  # checked before anything is imported
