"""The content-addressed cache: verified writes only, damaged blobs dropped, index entries."""

from __future__ import annotations

import io
import os

import pytest

from kbuild.artifacts import cache as cache_module
from kbuild.artifacts.cache import Cache, Mismatch, default_cache_dir
from tests.unit.artifacts.helpers import sha


def test_add_and_get(tmp_path):
    cache = Cache(tmp_path)
    found, path = cache.add_stream(io.BytesIO(b"hello"))
    assert found == sha(b"hello") and path == cache.blob_path(found)
    assert path.read_bytes() == b"hello" and cache.get(found) == path
    assert cache.get("0" * 64) is None


def test_a_mismatch_keeps_nothing(tmp_path):
    cache = Cache(tmp_path)
    with pytest.raises(Mismatch) as caught:
        cache.add_stream(io.BytesIO(b"evil"), expected=sha(b"good"))
    assert caught.value.found == sha(b"evil")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_damaged_blob_is_removed_not_used(tmp_path):
    cache = Cache(tmp_path)
    found, path = cache.add_stream(io.BytesIO(b"hello"))
    os.chmod(path, 0o644)
    path.write_bytes(b"jello")  # same size: only the hash (and ctime) tells
    assert cache.get(found) is None
    assert not path.exists()


def test_an_unchanged_blob_is_not_rehashed(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    found, _ = cache.add_stream(io.BytesIO(b"hello"))
    calls = []
    monkeypatch.setattr(cache_module, "sha256_file", lambda p: calls.append(p) or sha(p.read_bytes()))
    assert cache.get(found) is not None and cache.get(found) is not None
    assert calls == []
    (tmp_path / "stamps" / found).unlink()
    assert cache.get(found) is not None and len(calls) == 1  # re-verified once, stamped again
    assert cache.get(found) is not None and len(calls) == 1


def test_refs(tmp_path):
    cache = Cache(tmp_path)
    assert cache.ref("release x") is None
    cache.set_ref("release x", verified="a" * 64)
    assert cache.ref("release x") == {"key": "release x", "verified": "a" * 64}
    next(iter((tmp_path / "refs").iterdir())).write_text("{broken")
    assert cache.ref("release x") is None


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "kbuild" / "artifacts"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert str(default_cache_dir()).endswith(".cache/kbuild/artifacts")
