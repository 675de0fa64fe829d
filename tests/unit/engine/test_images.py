"""ContainerImage: its fact, what differs, and its import run for real against a ctr stand-in on a local fake host."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kbuild.engine.resources import ContainerImage
from kbuild.engine.resources import images as images_module
from kbuild.engine.resources.images import ImageFact
from kbuild.engine.runner import HostStatus, Plan
from tests.mirror.server import MirrorServer
from tests.unit.artifacts.helpers import oci_archive

REF = "kbuild.test/app:1.0"
SOCKET = "/run/containerd/containerd.sock"

# What ctr does for kbuild, as far as the resource uses it: `images ls -q name==REF` prints the names it
# has, `images import --platform=P FILE` adds the image named in the archive's index.json. State is a
# file of image names; every call is logged.
CTR = r"""#!/bin/sh
state="$CTR_STATE"; mkdir -p "$state"; touch "$state/images"
echo "$*" >> "$state/calls"
for arg; do case $arg in --address=*|--namespace=*) shift ;; *) break ;; esac; done
[ "$1" = images ] || { echo "ctr stand-in: unsupported $*" >&2; exit 2; }
case $2 in
  ls) [ "$3" = -q ] || exit 2; grep -xF "${4#name==}" "$state/images" || true ;;
  import) [ -f "$4" ] || { echo "ctr: $4: no such file" >&2; exit 1; }
          tar -xOf "$4" index.json | sed -n 's/.*"io.containerd.image.name":"\([^"]*\)".*/\1/p' >> "$state/images"
          sort -u -o "$state/images" "$state/images" ;;
  *) echo "ctr stand-in: unsupported $*" >&2; exit 2 ;;
esac
"""


class Containerd:
    """The ctr stand-in installed on a fake host, and what it holds."""

    def __init__(self, host) -> None:
        self.state = host.root / "containerd"
        self.ctr = host.root / "bin" / "ctr"
        self.ctr.write_text(CTR)
        self.ctr.chmod(0o755)
        host.env["CTR_STATE"] = str(self.state)

    def images(self) -> list[str]:
        path = self.state / "images"
        return path.read_text().splitlines() if path.exists() else []

    def forget(self, ref: str) -> None:
        (self.state / "images").write_text("".join(f"{i}\n" for i in self.images() if i != ref))

    def imports(self) -> list[str]:
        path = self.state / "calls"
        return [c for c in path.read_text().splitlines() if " images import " in c] if path.exists() else []


@pytest.fixture
def containerd(host, tmp_path, monkeypatch) -> Containerd:
    monkeypatch.setattr(images_module, "STAMP_DIR", str(tmp_path / "image-stamps"))  # not the real /var/lib/kbuild
    return Containerd(host)


def archive(tmp_path: Path, ref: str = REF, name: str = "pause.tar") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(oci_archive(ref))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def pushed(containerd: Containerd, path: Path, sha: str, ref: str = REF) -> ContainerImage:
    return ContainerImage(ref, sha, ctr=str(containerd.ctr), address=SOCKET, source=path)


def apply(host, *resources):
    runner, _, _ = host.runner()
    return runner.apply("node", {"h1": Plan(list(resources))})["h1"]


# -- fact, changes, construction ------------------------------------------------------------------------


def test_the_fact_is_whether_containerd_lists_the_image_and_the_stamp():
    image = ContainerImage(REF, "a" * 64, ctr="/usr/local/bin/ctr", address=SOCKET, url="http://m/x.tar")
    assert image.parse_fact(f"listed=yes\nstamp={'a' * 64}\n") == ImageFact(True, "a" * 64)
    assert image.parse_fact("listed=no\nstamp=\n") == ImageFact(False, "")
    assert image.parse_fact("listed=yes\nstamp=  \n") == ImageFact(True, "")


def test_an_image_is_imported_when_missing_or_from_another_archive_only():
    image = ContainerImage(REF, "a" * 64, ctr="/usr/local/bin/ctr", address=SOCKET, url="http://m/x.tar")
    assert image.changes(ImageFact(False, "a" * 64)) == ["import"]  # removed, or the content store was wiped
    assert image.changes(ImageFact(True, "b" * 64)) == ["import (another archive)"]
    assert image.changes(ImageFact(True, "")) == ["import (another archive)"]  # imported by someone else
    assert image.changes(ImageFact(True, "a" * 64)) == []


def test_an_image_needs_exactly_one_source(tmp_path):
    with pytest.raises(ValueError, match="needs exactly one of a local archive or a URL"):
        ContainerImage(REF, "a" * 64, ctr="ctr", address=SOCKET)
    with pytest.raises(ValueError, match="needs exactly one of a local archive or a URL"):
        ContainerImage(REF, "a" * 64, ctr="ctr", address=SOCKET, source=tmp_path / "x.tar", url="http://m/x.tar")


def test_each_reference_has_its_own_key_and_stamp():
    one = ContainerImage(REF, "a" * 64, ctr="ctr", address=SOCKET, url="http://m/x.tar")
    other = ContainerImage("kbuild.test/app:2.0", "a" * 64, ctr="ctr", address=SOCKET, url="http://m/x.tar")
    assert (one.key, other.key) == (f"image:{REF}", "image:kbuild.test/app:2.0")
    assert one.stamp_file != other.stamp_file
    assert one.stamp_file.startswith(images_module.STAMP_DIR + "/")


# -- the import, run for real ------------------------------------------------------------------------


def test_a_pushed_archive_is_imported_into_k8s_io_once(host, containerd, tmp_path):
    path, sha = archive(tmp_path)
    image = pushed(containerd, path, sha)
    assert apply(host, image).status is HostStatus.CHANGED
    assert containerd.images() == [REF]
    [call] = containerd.imports()
    assert call.startswith(f"--address={SOCKET} --namespace=k8s.io images import --platform=linux/amd64 ")
    assert Path(image.stamp_file).read_text() == f"{sha}\n"
    assert apply(host, image).status is HostStatus.OK  # listed, same archive: nothing to do
    assert len(containerd.imports()) == 1


def test_an_image_gone_from_containerd_is_imported_again(host, containerd, tmp_path):
    path, sha = archive(tmp_path)
    apply(host, pushed(containerd, path, sha))
    containerd.forget(REF)
    assert apply(host, pushed(containerd, path, sha)).status is HostStatus.CHANGED
    assert containerd.images() == [REF] and len(containerd.imports()) == 2


def test_another_archive_for_the_same_reference_is_imported(host, containerd, tmp_path):
    first, sha = archive(tmp_path)
    apply(host, pushed(containerd, first, sha))
    second = tmp_path / "rebuilt.tar"
    second.write_bytes(first.read_bytes() + b"\0" * 1024)  # tar readers stop at the end blocks
    new_sha = hashlib.sha256(second.read_bytes()).hexdigest()
    image = pushed(containerd, second, new_sha)
    assert apply(host, image).status is HostStatus.CHANGED
    assert Path(image.stamp_file).read_text() == f"{new_sha}\n" and len(containerd.imports()) == 2


def test_an_archive_with_the_wrong_checksum_is_never_imported(host, containerd, tmp_path):
    path, _ = archive(tmp_path)
    image = pushed(containerd, path, "0" * 64)
    out = apply(host, image)
    assert out.status is HostStatus.FAILED and "checksum mismatch" in (out.message or "")
    assert containerd.imports() == [] and not Path(image.stamp_file).exists()


def test_an_archive_holding_another_image_fails_and_records_nothing(host, containerd, tmp_path):
    path, sha = archive(tmp_path, ref="kbuild.test/app:2.0")
    image = pushed(containerd, path, sha)
    out = apply(host, image)
    assert out.status is HostStatus.FAILED and f"the archive holds no image named {REF}" in (out.message or "")
    assert not Path(image.stamp_file).exists()


def test_a_pulled_archive_is_downloaded_verified_and_imported(host, containerd, tmp_path):
    (tmp_path / "mirror").mkdir()
    path, sha = archive(tmp_path / "mirror")
    with MirrorServer(tmp_path / "mirror") as server:
        image = ContainerImage(REF, sha, ctr=str(containerd.ctr), address=SOCKET, platform="linux/arm64",
                               url=f"{server.url}/{path.name}")
        assert apply(host, image).status is HostStatus.CHANGED
        assert server.requests == [f"/{path.name}"]
    assert containerd.images() == [REF]
    assert "--platform=linux/arm64" in containerd.imports()[0]
