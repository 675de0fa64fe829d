"""`kbuild artifacts` on a fake mirror directory: image archives are fetched and listed with the binaries."""

from __future__ import annotations

import json

import pytest

from kbuild.artifacts import ArtifactStore, write_bundle
from kbuild.artifacts.cache import Cache
from kbuild.artifacts.hosts import host_images
from kbuild.artifacts.images import image_release, node_image_refs
from kbuild.cli import run
from tests.unit.artifacts.helpers import make_cluster, sha, write_cluster_mirror
from tests.unit.supported import PAUSE


def test_fetch_verifies_the_image_archives_into_the_cache(tmp_path, capsys):
    cluster = make_cluster(tmp_path, artifacts="mirror: mirror\ncache_dir: cache\n")
    write_cluster_mirror(tmp_path / "mirror", cluster)
    assert run(["artifacts", "fetch", "-i", str(cluster.inventory_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    images = host_images(ArtifactStore.for_cluster(cluster, offline=True), cluster, cluster.host("w1"), prepare=False)
    assert images[0].ref == PAUSE
    for image in images:
        assert image.local_path is not None and sha(image.local_path.read_bytes()) == image.sha256
        assert any(line.startswith(image.ref) and line.endswith(f"sha256:{image.sha256}") for line in printed)


def test_list_shows_each_node_s_images_and_urls_only_what_wget_can_fetch(tmp_path, capsys):
    cluster = make_cluster(tmp_path, artifacts="mirror: mirror\ncache_dir: cache\n")
    write_cluster_mirror(tmp_path / "mirror", cluster)
    assert run(["artifacts", "list", "-i", str(cluster.inventory_path), "--json"]) == 0
    hosts = {h["name"]: h for h in json.loads(capsys.readouterr().out)["hosts"]}
    refs = node_image_refs(cluster, cluster.host("w1"))
    assert refs[0] == PAUSE
    assert [f["name"] for f in hosts["w1"]["files"] if f["component"] == "image"] == refs
    assert not [f for f in hosts["cp1"]["files"] if f["component"] == "image"]
    assert run(["artifacts", "list", "-i", str(cluster.inventory_path), "--urls"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed and all(url.startswith("https://") for url in printed)
    for ref in refs:
        assert image_release(ref, "amd64").url not in printed  # image archives have no official site


def test_import_with_an_inventory_fills_the_cache_dir_it_is_given(tmp_path, capsys):
    cluster = make_cluster(tmp_path, artifacts="mirror: mirror\ncache_dir: cache\n")
    write_cluster_mirror(tmp_path / "mirror", cluster)
    manifest = write_bundle(cluster, tmp_path / "bundle.tar")
    chosen = tmp_path / "chosen"
    assert run(["artifacts", "import", str(tmp_path / "bundle.tar"), "-i", str(cluster.inventory_path),
                "--cache-dir", str(chosen)]) == 0
    assert f"into {chosen}" in capsys.readouterr().out
    assert all(Cache(chosen).get(f.sha256) is not None for f in manifest.files)
