"""Artifacts against the test mirror on loopback: downloads, cache hits, tampering, pins, bundles, the CLI.

Real parts used: the test mirror (every binary and image archive built from source, in the official layout)
served by http.server on 127.0.0.1, and the binaries themselves, run from the cache to prove the right files
arrived. No lab hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kbuild.artifacts import (
    ChecksumError,
    cluster_artifacts,
    host_artifacts,
    sha256_file,
    use_bundle,
    write_bundle,
)
from kbuild.artifacts.hosts import cluster_binaries, cluster_image_releases, cluster_images
from kbuild.cli import run
from kbuild.inventory.model import Versions
from kbuild.releases import COREDNS_IMAGE, KUBERNETES, minor_of
from tests.mirror.releases import PREVIOUS_ETCD
from tests.mirror.server import MirrorServer
from tests.unit.artifacts.helpers import make_cluster, sha

if TYPE_CHECKING:
    from tests.mirror.plugin import MirrorCopy


HOSTS = """\
  cp1: {address: 198.18.0.10, roles: [etcd, control-plane]}
  w1: {address: 198.18.0.11, roles: [worker]}
"""
DEFAULT = Versions()
API = f"dl.k8s.io/release/v{DEFAULT.kubernetes}/bin/linux/amd64/kube-apiserver"
ETCD = f"github.com/etcd-io/etcd/releases/download/v{DEFAULT.etcd}/etcd-v{DEFAULT.etcd}-linux-amd64.tar.gz"
ETCD_SUMS = f"github.com/etcd-io/etcd/releases/download/v{DEFAULT.etcd}/SHA256SUMS"
PAUSE = KUBERNETES[minor_of(DEFAULT.kubernetes)].pause_image


def cut_network(monkeypatch) -> None:
    """From here on any attempt to open a connection fails the test: proves a run needs no network at all."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def cluster_at(tmp_path: Path, mirror: str, *, extra: str = "", versions: str = "", hosts: str = HOSTS):
    return make_cluster(tmp_path, hosts=hosts, versions=versions,
                        artifacts=f"mirror: {mirror}\ncache_dir: {tmp_path / 'cache'}\n{extra}")


def run_binary(path: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    runnable = tmp_path / "run" / path.name
    runnable.parent.mkdir(exist_ok=True)
    shutil.copy(path, runnable)
    runnable.chmod(0o755)
    result = subprocess.run([str(runnable), *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **(env or {})})
    return result.stdout + result.stderr


# -- downloads and the cache ----------------------------------------------------------------------------------


def test_download_through_the_loopback_mirror(built_mirror, mirror_server, tmp_path):
    cluster = cluster_at(tmp_path, mirror_server.url)
    mirror_server.reset()
    everything = cluster_artifacts(cluster)
    assert f"/{API}" in mirror_server.requests and f"/{ETCD_SUMS}" in mirror_server.requests
    files = {a.name: a for artifacts in everything.values() for a in artifacts}
    for artifact in files.values():
        assert artifact.local_path is not None and sha256_file(artifact.local_path) == artifact.sha256
    assert files["kube-apiserver"].sha256 == built_mirror.files[API]
    assert files["etcdctl"].archive_sha256 == built_mirror.files[ETCD]

    # The right real binaries arrived: run a few of them from the cache.
    assert f"etcdctl version: {DEFAULT.etcd}" in run_binary(files["etcdctl"].local_path, tmp_path, "version")
    assert DEFAULT.etcd in run_binary(files["etcdutl"].local_path, tmp_path, "version")
    assert f"runc version {DEFAULT.runc}" in run_binary(files["runc"].local_path, tmp_path, "--version")
    assert f"v{DEFAULT.containerd}" in run_binary(files["containerd"].local_path, tmp_path, "--version")
    assert f"Client Version: v{DEFAULT.kubernetes}" in run_binary(files["kubectl"].local_path, tmp_path, "version",
                                                                  "--client")
    for name in ("kube-apiserver", "kubelet", "kube-proxy"):
        assert run_binary(files[name].local_path, tmp_path, "--version").strip() == f"Kubernetes v{DEFAULT.kubernetes}"
    assert '"cniVersion"' in run_binary(files["bridge"].local_path, tmp_path, env={"CNI_COMMAND": "VERSION"})


def test_second_fetch_is_a_cache_hit_with_no_request(mirror_server, tmp_path):
    cluster = cluster_at(tmp_path, mirror_server.url)
    first = cluster_artifacts(cluster), cluster_images(cluster)
    mirror_server.reset()
    assert (cluster_artifacts(cluster), cluster_images(cluster)) == first
    assert run(["artifacts", "fetch", "-i", str(cluster.inventory_path)]) == 0
    assert mirror_server.requests == []


def test_mirror_url_and_mirror_directory_give_the_same_files(built_mirror, mirror_server, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    by_url = cluster_artifacts(cluster_at(tmp_path / "a", mirror_server.url))
    by_dir = cluster_artifacts(cluster_at(tmp_path / "b", str(built_mirror.root)))
    def shas(everything):
        return {host: [a.sha256 for a in artifacts] for host, artifacts in everything.items()}

    assert shas(by_url) == shas(by_dir)
    assert by_dir["cp1"][0].url.startswith("file://") and by_url["cp1"][0].url.startswith(mirror_server.url)


def test_older_etcd_and_other_kubernetes_version(built_mirror, mirror_server, tmp_path):
    other = built_mirror.kubernetes_versions[-1]
    assert len(built_mirror.kubernetes_versions) >= 2
    cluster = cluster_at(tmp_path, mirror_server.url, versions=f"etcd: {PREVIOUS_ETCD}\nkubernetes: {other}\n")
    files = {a.name: a for a in host_artifacts(cluster, cluster.host("cp1"))}
    assert [n for n in files if n.startswith("etcd")] == ["etcd", "etcdctl", "etcdutl"]
    assert f"etcd Version: {PREVIOUS_ETCD}" in run_binary(files["etcd"].local_path, tmp_path, "--version")
    api = f"dl.k8s.io/release/v{other}/bin/linux/amd64/kube-apiserver"
    assert files["kube-apiserver"].sha256 == built_mirror.files[api]


def test_pull_mode_reads_checksums_only(built_mirror, mirror_server, tmp_path):
    cluster = cluster_at(tmp_path, mirror_server.url, extra="transfer: pull\n")
    mirror_server.reset()
    files = {a.name: a for a in host_artifacts(cluster, cluster.host("w1"))}
    assert mirror_server.requests and all(p.endswith((".sha256", ".sha256sum", "SHA256SUMS"))
                                          for p in mirror_server.requests)
    runc = f"github.com/opencontainers/runc/releases/download/v{DEFAULT.runc}/runc.amd64"
    assert files["runc"].url == f"{mirror_server.url}/{runc}"
    assert files["runc"].sha256 == built_mirror.files[runc]
    assert files["containerd"].member == "bin/containerd" and files["containerd"].local_path is None


# -- refusing what does not verify ---------------------------------------------------------------------------


def test_tampered_binary_is_refused(mirror_copy: MirrorCopy, tmp_path):
    pwned = b"#!/bin/sh\necho pwned\n"
    mirror_copy.replace(API, pwned)
    with MirrorServer(mirror_copy.root) as server:
        cluster = cluster_at(tmp_path, server.url)
        with pytest.raises(ChecksumError) as caught:
            host_artifacts(cluster, cluster.host("cp1"))
    message = str(caught.value)
    assert f"kube-apiserver (kubernetes {DEFAULT.kubernetes} linux/amd64): checksum mismatch" in message
    assert f"found {sha(pwned)}" in message and "nothing was installed" in message
    assert not (tmp_path / "cache" / "blobs" / "sha256" / sha(pwned)).exists()
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_tampered_archive_is_refused(built_mirror, mirror_copy: MirrorCopy, tmp_path):
    other = mirror_copy.read(f"github.com/etcd-io/etcd/releases/download/v{PREVIOUS_ETCD}/"
                             f"etcd-v{PREVIOUS_ETCD}-linux-amd64.tar.gz")
    mirror_copy.replace(ETCD, other)
    cluster = cluster_at(tmp_path, str(mirror_copy.root))
    with pytest.raises(ChecksumError, match=f"expected sha256 {built_mirror.files[ETCD]}"):
        host_artifacts(cluster, cluster.host("cp1"))


def test_missing_checksum_is_refused_and_a_pin_replaces_it(built_mirror, mirror_copy: MirrorCopy, tmp_path):
    mirror_copy.remove(ETCD_SUMS)
    cluster = cluster_at(tmp_path, str(mirror_copy.root))
    with pytest.raises(ChecksumError, match="no checksum: .*SHA256SUMS does not exist"):
        host_artifacts(cluster, cluster.host("cp1"))
    pinned = cluster_at(tmp_path, str(mirror_copy.root),
                        extra=f"checksums:\n  etcd-v{DEFAULT.etcd}-linux-amd64.tar.gz: {built_mirror.files[ETCD]}\n")
    assert host_artifacts(pinned, pinned.host("cp1"))[0].archive_sha256 == built_mirror.files[ETCD]


def test_a_pin_is_honoured_and_a_disagreeing_pin_refused(built_mirror, mirror_server, tmp_path):
    url = f"https://{API}"
    good = cluster_at(tmp_path, mirror_server.url, extra=f"checksums:\n  {url}: sha256:{built_mirror.files[API]}\n")
    assert host_artifacts(good, good.host("cp1"))[3].sha256 == built_mirror.files[API]
    bad = cluster_at(tmp_path, mirror_server.url, extra=f"checksums:\n  {url}: {'c' * 64}\n")
    with pytest.raises(ChecksumError, match="disagrees with the published checksum"):
        host_artifacts(bad, bad.host("cp1"))


# -- bundles --------------------------------------------------------------------------------------------------


def test_bundle_round_trip_with_the_network_cut(built_mirror, tmp_path, monkeypatch):
    (tmp_path / "online").mkdir()
    with MirrorServer(built_mirror.root) as server:
        source = cluster_at(tmp_path / "online", server.url)
        manifest = write_bundle(source, tmp_path / "bundle.tar")
        dead_url = server.url
    assert {f.name for f in manifest.files} >= {"etcd", "kube-apiserver", "kubelet", "containerd", "bridge", PAUSE}

    cut_network(monkeypatch)
    (tmp_path / "offline").mkdir()
    for mirror in (dead_url, "http://127.0.0.1:9/no-mirror-here"):
        offline = cluster_at(tmp_path / "offline", mirror)
        shutil.rmtree(tmp_path / "offline" / "cache", ignore_errors=True)
        use_bundle(tmp_path / "bundle.tar", offline)
        for host in offline.hosts:
            for artifact in host_artifacts(offline, host):
                assert artifact.local_path is not None and sha256_file(artifact.local_path) == artifact.sha256
        images = cluster_images(offline)["w1"]
        assert [i.ref for i in images] == [PAUSE, COREDNS_IMAGE]  # the sandbox image, then the DNS addon's
        for image in images:
            assert image.local_path is not None and sha256_file(image.local_path) == image.sha256


# -- the CLI --------------------------------------------------------------------------------------------------


def test_cli_fetch_list_bundle_import(mirror_server, tmp_path, capsys):
    cluster = cluster_at(tmp_path, mirror_server.url)
    count = len(cluster_binaries(cluster)) + len(cluster_image_releases(cluster))
    inventory = str(cluster.inventory_path)
    assert run(["artifacts", "list", "-i", inventory]) == 0
    assert "kube-apiserver" in capsys.readouterr().out

    assert run(["artifacts", "fetch", "-i", inventory]) == 0
    out = capsys.readouterr().out
    assert "etcdctl" in out and PAUSE in out and f"{count} files verified" in out and f"mirror {mirror_server.url}" in out

    assert run(["artifacts", "list", "-i", inventory, "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    states = {f["state"] for h in listing["hosts"] for f in h["files"]}
    assert states == {"cached"} and listing["transfer"] == "push"

    assert run(["artifacts", "bundle", "-i", inventory, "-o", str(tmp_path / "b.tar")]) == 0
    capsys.readouterr()
    assert run(["artifacts", "import", str(tmp_path / "b.tar"), "--cache-dir", str(tmp_path / "c2")]) == 0
    assert f"imported {count} files" in capsys.readouterr().out

    assert run(["artifacts", "list", "-i", inventory, "--urls"]) == 0
    urls = capsys.readouterr().out.split()
    assert f"https://{API}" in urls and f"https://{ETCD_SUMS}" in urls
    assert all(url.startswith("https://") for url in urls)  # what `wget -x` can fetch: no image archives


def test_cli_reports_a_file_the_mirror_lacks(mirror_server, tmp_path, capsys):
    cluster = cluster_at(tmp_path, mirror_server.url, versions="crictl: 1.36.0\n", hosts="""\
  cp1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}
""")
    assert run(["artifacts", "fetch", "-i", str(cluster.inventory_path)]) == 1
    err = capsys.readouterr().err
    assert "error: crictl-v1.36.0-linux-amd64.tar.gz (crictl 1.36.0 linux/amd64): no checksum" in err
    assert "Traceback" not in err
