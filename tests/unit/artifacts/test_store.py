"""Resolving files against a small fake mirror directory: checksums, pins, downloads, unpacking, offline runs."""

from __future__ import annotations

import pytest

from kbuild.artifacts.catalogue import component_binaries
from kbuild.artifacts.errors import ArtifactError, ChecksumError, NotFound
from kbuild.artifacts.mirror import mirror_relative_path
from kbuild.artifacts.store import ArtifactStore
from tests.unit.artifacts.helpers import content, make_cluster, sha, write_fake_mirror
from tests.unit.supported import DEFAULTS

ETCD = component_binaries("etcd", DEFAULTS.etcd, "amd64")
KUBELET = component_binaries("kubernetes", DEFAULTS.kubernetes, "amd64")[3]
ETCD_TARBALL = f"etcd-v{DEFAULTS.etcd}-linux-amd64"
assert KUBELET.name == "kubelet"


def store_for(tmp_path, checksums: str = "", offline: bool = False) -> ArtifactStore:
    cluster = make_cluster(tmp_path, artifacts=f"mirror: mirror\ncache_dir: cache\n{checksums}")
    return ArtifactStore.for_cluster(cluster, offline=offline)


def test_single_file_release(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [KUBELET])
    store = store_for(tmp_path)
    found, path = store.ensure_binary(KUBELET)
    assert path.read_bytes() == content(KUBELET) and found == sha(content(KUBELET))
    assert store.stats.downloaded == [("kubelet", len(content(KUBELET)))]


def test_archive_members_become_single_cached_files(tmp_path):
    write_fake_mirror(tmp_path / "mirror", ETCD)
    store = store_for(tmp_path)
    for binary in ETCD:
        found, path = store.ensure_binary(binary)
        assert path.read_bytes() == content(binary) and found == sha(content(binary))
    assert len(store.stats.downloaded) == 1  # one archive, unpacked once


def test_second_store_uses_the_cache_only(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [*ETCD, KUBELET])
    first = store_for(tmp_path)
    for binary in [*ETCD, KUBELET]:
        first.ensure_binary(binary)
    (tmp_path / "mirror").rename(tmp_path / "gone")
    again = store_for(tmp_path)
    assert [again.ensure_binary(b)[0] for b in [*ETCD, KUBELET]] == [sha(content(b)) for b in [*ETCD, KUBELET]]
    assert again.stats.downloaded == [] and again.stats.checksum_files == 0


def test_mismatch_is_refused_and_nothing_cached(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [KUBELET])
    (tmp_path / "mirror" / mirror_relative_path(KUBELET.release.url)).write_bytes(b"tampered")
    store = store_for(tmp_path)
    with pytest.raises(ChecksumError) as caught:
        store.ensure_binary(KUBELET)
    message = str(caught.value)
    assert f"kubelet (kubernetes {DEFAULTS.kubernetes} linux/amd64): checksum mismatch" in message
    assert f"expected sha256 {sha(content(KUBELET))}" in message and f"found {sha(b'tampered')}" in message
    assert "nothing was installed" in message and "hint:" in message
    assert store.cache.get(sha(b"tampered")) is None
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_missing_checksum_file_is_refused(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [KUBELET], checksums=False)
    with pytest.raises(ChecksumError, match=r"no checksum: .*kubelet\.sha256 does not exist"):
        store_for(tmp_path).ensure_binary(KUBELET)


def test_checksum_file_without_the_entry_is_refused(tmp_path):
    write_fake_mirror(tmp_path / "mirror", ETCD)
    sums = tmp_path / "mirror" / mirror_relative_path(ETCD[0].release.checksum_url)
    sums.write_text(f"{'a' * 64}  {ETCD_TARBALL.replace('amd64', 'arm64')}.tar.gz\n")
    with pytest.raises(ChecksumError, match=f"does not list {ETCD_TARBALL}.tar.gz"):
        store_for(tmp_path).ensure_binary(ETCD[0])


def test_a_pin_replaces_a_missing_checksum_file(tmp_path):
    written = write_fake_mirror(tmp_path / "mirror", [KUBELET], checksums=False)
    store = store_for(tmp_path, checksums=f"checksums:\n  kubelet: {sha(written[KUBELET.release.url])}\n")
    assert store.ensure_binary(KUBELET)[0] == sha(content(KUBELET))


def test_a_wrong_pin_without_published_checksum_fails_on_the_download(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [KUBELET], checksums=False)
    store = store_for(tmp_path, checksums=f"checksums:\n  kubelet: {'c' * 64}\n")
    with pytest.raises(ChecksumError, match="pinned in the inventory as kubelet"):
        store.ensure_binary(KUBELET)


def test_a_pin_disagreeing_with_the_published_checksum_is_refused(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [KUBELET])
    store = store_for(tmp_path, checksums=f"checksums:\n  {KUBELET.release.url}: {'c' * 64}\n")
    with pytest.raises(ChecksumError, match="disagrees with the published checksum"):
        store.ensure_binary(KUBELET)
    assert store.stats.downloaded == []


def test_a_file_missing_from_the_mirror(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [KUBELET])
    (tmp_path / "mirror" / mirror_relative_path(KUBELET.release.url)).unlink()
    with pytest.raises(NotFound, match="no such file in the mirror directory"):
        store_for(tmp_path).ensure_binary(KUBELET)


def test_an_archive_without_the_member(tmp_path):
    write_fake_mirror(tmp_path / "mirror", ETCD[:2])  # no etcdutl inside
    with pytest.raises(ArtifactError, match=f"the archive has no {ETCD_TARBALL}/etcdutl"):
        store_for(tmp_path).ensure_binary(ETCD[2])


def test_offline_uses_only_the_cache(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [KUBELET, *ETCD])
    with pytest.raises(ArtifactError, match="may not download"):
        store_for(tmp_path, offline=True).ensure_binary(KUBELET)
    store_for(tmp_path).ensure_binary(KUBELET)
    offline = store_for(tmp_path, offline=True)
    assert offline.ensure_binary(KUBELET)[0] == sha(content(KUBELET))
    assert offline.cached_binary(ETCD[0]) == (None, None)


def test_each_checksum_file_is_read_once_per_release(tmp_path):
    write_fake_mirror(tmp_path / "mirror", [*ETCD, KUBELET])
    store = store_for(tmp_path)
    for binary in [*ETCD, KUBELET]:
        store.ensure_binary(binary)
    assert store.stats.checksum_files == 2


def test_a_wrong_checksum_file_fixed_in_the_mirror_is_picked_up(tmp_path):
    written = write_fake_mirror(tmp_path / "mirror", [KUBELET])
    sums = tmp_path / "mirror" / mirror_relative_path(KUBELET.release.checksum_url)
    sums.write_text("d" * 64)
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        store_for(tmp_path).ensure_binary(KUBELET)
    sums.write_text(sha(written[KUBELET.release.url]))
    assert store_for(tmp_path).ensure_binary(KUBELET)[0] == sha(content(KUBELET))
