"""Bundles: write, verify, import; a damaged or incomplete bundle changes nothing usable."""

from __future__ import annotations

import io
import json
import shutil
import socket
import tarfile

import pytest

from kbuild.artifacts import BundleError, cluster_binaries, host_artifacts, read_manifest, use_bundle, write_bundle
from kbuild.artifacts.errors import ArtifactConfigError
from tests.unit.artifacts.helpers import make_cluster, sha, write_fake_mirror


@pytest.fixture
def bundled(tmp_path):
    """A cluster fetched from a fake mirror into `cache`, and its bundle."""
    cluster = make_cluster(tmp_path, artifacts="mirror: mirror\ncache_dir: cache\n")
    write_fake_mirror(tmp_path / "mirror", cluster_binaries(cluster))
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
    assert {(f.name, f.version, f.arch) for f in manifest.files} >= {("etcdctl", "3.5.1", "amd64"),
                                                                    ("kubelet", "1.33.5", "amd64")}
    assert len(manifest.files) == len(cluster_binaries(cluster))
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
    for host in offline.hosts:
        for artifact in host_artifacts(offline, host):
            assert artifact.local_path is not None and sha(artifact.local_path.read_bytes()) == artifact.sha256


def test_import_without_inventory_goes_to_the_given_cache(bundled, tmp_path):
    _, manifest, path = bundled
    use_bundle(path, cache_dir=tmp_path / "c2")
    assert all((tmp_path / "c2" / "blobs" / "sha256" / f.sha256).is_file() for f in manifest.files)


def test_a_damaged_blob_is_refused_and_no_index_written(bundled, tmp_path):
    _, manifest, path = bundled
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(path) as source, tarfile.open(damaged, "w") as target:
        for member in source:
            data = source.extractfile(member).read()
            if member.name.endswith(manifest.files[0].sha256):
                data = b"X" + data[1:]
            target.addfile(member, io.BytesIO(data))
    with pytest.raises(BundleError, match="is damaged"):
        use_bundle(damaged, cache_dir=tmp_path / "c3")
    assert not (tmp_path / "c3" / "refs").exists()


def test_a_bundle_missing_a_blob_is_refused(bundled, tmp_path):
    _, manifest, path = bundled
    partial = tmp_path / "partial.tar"
    with tarfile.open(path) as source, tarfile.open(partial, "w") as target:
        for member in source:
            if not member.name.endswith(manifest.files[-1].sha256):
                target.addfile(member, source.extractfile(member))
    with pytest.raises(BundleError, match="does not hold it"):
        use_bundle(partial, cache_dir=tmp_path / "c4")


def test_a_bundle_must_cover_the_inventory(bundled, tmp_path):
    _, _, path = bundled
    newer = make_cluster(tmp_path, versions="kubernetes: 1.34.1\n", artifacts="cache_dir: c5\n")
    with pytest.raises(BundleError, match=r"lacks .*kube-apiserver \(kubernetes 1.34.1 linux/amd64\)"):
        use_bundle(path, newer)
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
