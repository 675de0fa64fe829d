"""Mirror locations: the official URL without its scheme, under a base URL or a directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.artifacts.catalogue import etcd_release
from kbuild.artifacts.errors import ArtifactConfigError
from kbuild.artifacts.images import image_release
from kbuild.artifacts.mirror import MIRROR_ONLY, Origin, mirror_relative_path
from tests.unit.supported import DEFAULTS, PAUSE, PAUSE_TAG

URL = etcd_release(DEFAULTS.etcd, "amd64").url
ETCD_PATH = f"github.com/etcd-io/etcd/releases/download/v{DEFAULTS.etcd}/etcd-v{DEFAULTS.etcd}-linux-amd64.tar.gz"
IMAGE = image_release(PAUSE, "amd64").url
IMAGE_PATH = f"images/registry.k8s.io/pause/{PAUSE_TAG}/linux-amd64.tar"


def test_relative_path_is_the_url_without_scheme():
    assert mirror_relative_path(URL) == URL.removeprefix("https://") == ETCD_PATH
    with pytest.raises(ValueError):
        mirror_relative_path("https://example.org/a/../../etc/passwd")
    with pytest.raises(ValueError):
        mirror_relative_path("ftp://example.org/x")


def test_official_origin_is_the_url_itself(tmp_path):
    origin = Origin.from_setting(None, tmp_path)
    assert origin.is_official and origin.location(URL) == URL == origin.host_url(URL)


def test_url_mirror(tmp_path):
    origin = Origin.from_setting("http://127.0.0.1:8080/base/", tmp_path)
    expected = f"http://127.0.0.1:8080/base/{ETCD_PATH}"
    assert origin.location(URL) == origin.url(URL) == origin.host_url(URL) == expected
    image = f"http://127.0.0.1:8080/base/{IMAGE_PATH}"
    assert origin.location(IMAGE) == origin.url(IMAGE) == origin.host_url(IMAGE) == image


def test_directory_mirror_relative_to_the_inventory(tmp_path):
    origin = Origin.from_setting("mirror", tmp_path)
    path = tmp_path / "mirror" / ETCD_PATH
    assert origin.location(URL) == str(path)
    assert origin.url(URL) == path.as_uri()
    assert origin.location(IMAGE) == str(tmp_path / "mirror" / IMAGE_PATH)
    assert Origin.from_setting(f"file://{tmp_path}/m", Path("/elsewhere")).directory == tmp_path / "m"
    with pytest.raises(ArtifactConfigError, match="hosts cannot read"):
        origin.host_url(URL)


def test_unknown_scheme_is_refused(tmp_path):
    with pytest.raises(ArtifactConfigError, match="unsupported scheme"):
        Origin.from_setting("ftp://mirror.example/", tmp_path)


def test_a_mirror_only_url_is_its_path_inside_the_mirror():
    assert IMAGE == f"{MIRROR_ONLY}{IMAGE_PATH}"
    assert mirror_relative_path(IMAGE) == IMAGE_PATH
    for escape in (f"{MIRROR_ONLY}/etc/passwd", f"{MIRROR_ONLY}images/../../etc/passwd"):
        with pytest.raises(ValueError, match="not a relative mirror path"):
            mirror_relative_path(escape)


def test_a_mirror_only_file_without_a_mirror_is_refused_with_what_to_do(tmp_path):
    origin = Origin.from_setting(None, tmp_path)
    for where in (origin.location, origin.url, origin.host_url):
        with pytest.raises(ArtifactConfigError, match=f"{IMAGE_PATH} exists only in mirrors and bundles, and "
                                                      "artifacts.mirror is not set") as caught:
            where(IMAGE)
        assert "artifacts.images.source: registry" in (caught.value.hint or "")
