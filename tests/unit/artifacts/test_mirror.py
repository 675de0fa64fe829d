"""Mirror locations: the official URL without its scheme, under a base URL or a directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.artifacts.errors import ArtifactConfigError
from kbuild.artifacts.mirror import Origin, mirror_relative_path

URL = "https://github.com/etcd-io/etcd/releases/download/v3.5.1/etcd-v3.5.1-linux-amd64.tar.gz"


def test_relative_path_is_the_url_without_scheme():
    assert mirror_relative_path(URL) == URL.removeprefix("https://")
    with pytest.raises(ValueError):
        mirror_relative_path("https://example.org/a/../../etc/passwd")
    with pytest.raises(ValueError):
        mirror_relative_path("ftp://example.org/x")


def test_official_origin_is_the_url_itself(tmp_path):
    origin = Origin.from_setting(None, tmp_path)
    assert origin.is_official and origin.location(URL) == URL == origin.host_url(URL)


def test_url_mirror(tmp_path):
    origin = Origin.from_setting("http://127.0.0.1:8080/base/", tmp_path)
    expected = "http://127.0.0.1:8080/base/github.com/etcd-io/etcd/releases/download/v3.5.1/etcd-v3.5.1-linux-amd64.tar.gz"
    assert origin.location(URL) == origin.url(URL) == origin.host_url(URL) == expected


def test_directory_mirror_relative_to_the_inventory(tmp_path):
    origin = Origin.from_setting("mirror", tmp_path)
    path = tmp_path / "mirror/github.com/etcd-io/etcd/releases/download/v3.5.1/etcd-v3.5.1-linux-amd64.tar.gz"
    assert origin.location(URL) == str(path)
    assert origin.url(URL) == path.as_uri()
    assert Origin.from_setting(f"file://{tmp_path}/m", Path("/elsewhere")).directory == tmp_path / "m"
    with pytest.raises(ArtifactConfigError, match="hosts cannot read"):
        origin.host_url(URL)


def test_unknown_scheme_is_refused(tmp_path):
    with pytest.raises(ArtifactConfigError, match="unsupported scheme"):
        Origin.from_setting("ftp://mirror.example/", tmp_path)
