"""The test image's busybox: the one in the built mirror keeps environment variables whose names are not shell
identifiers (what upstream's e2e busybox does, and Debian's busybox-static does not); the source package is found
and verified, or the build stops with one clear line and leaves nothing in the cache."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from tests.mirror import busybox
from tests.mirror.builder import Mirror
from tests.mirror.busybox import DebianSource
from tests.mirror.errors import MirrorBuildError

# Names Kubernetes hands to containers from ConfigMap keys and envFrom prefixes in its conformance tests.
NOT_IDENTIFIERS = {"data-1": "value-1", "1-data": "x", "$_-data": "y", "#@!data": "z", "p.q": "r"}


def image_file(archive: Path, member: str) -> bytes:
    """A file of the single layer of an OCI layout archive, found as a runtime would: index -> manifest -> layer."""
    with tarfile.open(archive) as tar:
        def blob(digest: str) -> bytes:
            return tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}").read()  # type: ignore[union-attr]

        [entry] = json.loads(tar.extractfile("index.json").read())["manifests"]  # type: ignore[union-attr]
        [layer] = json.loads(blob(entry["digest"]))["layers"]
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer["digest"])))) as rootfs:
            return rootfs.extractfile(member).read()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def image_busybox(built_mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox binary exactly as the mirror's test image holds it."""
    path = tmp_path_factory.mktemp("image") / "busybox"
    path.write_bytes(image_file(built_mirror.root / built_mirror.images[built_mirror.test_image]["path"],
                                "bin/busybox"))
    path.chmod(0o755)
    return path


def test_the_image_shell_keeps_variables_whose_names_are_not_identifiers(image_busybox: Path) -> None:
    # As the ConfigMap and Secret "consumable via the environment" conformance tests run it: `sh -c env`.
    result = subprocess.run(["env", "-i", "data-1=x", str(image_busybox), "sh", "-c", "env"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "data-1=x" in result.stdout.splitlines()
    # And every name the envFrom test makes with its prefixes, to a child of a child.
    env = [f"{name}={value}" for name, value in NOT_IDENTIFIERS.items()]
    result = subprocess.run(["env", "-i", *env, str(image_busybox), "sh", "-c", "sh -c env"],
                            capture_output=True, text=True, check=False)
    assert set(env) <= set(result.stdout.splitlines()), result.stdout


def test_the_image_is_tagged_with_the_busybox_it_holds(built_mirror: Mirror, image_busybox: Path) -> None:
    banner = subprocess.run([str(image_busybox)], capture_output=True, text=True, check=False).stdout
    assert built_mirror.test_image == f"kbuild.test/busybox:{busybox.SOURCE.upstream}"
    assert banner.startswith(f"BusyBox v{busybox.SOURCE.upstream} (Debian {busybox.SOURCE.version}, kbuild")
    assert built_mirror.manifest["busybox_source"]["version"] == busybox.SOURCE.version


# -- versions and the key -------------------------------------------------------------------------------------


def test_upstream_version_drops_epoch_and_debian_revision() -> None:
    assert DebianSource("busybox", "1:1.35.0-4+deb12u1", "bookworm").upstream == "1.35.0"
    assert DebianSource("busybox", "1:1.35.0-4+deb12u1", "bookworm").unepoched == "1.35.0-4+deb12u1"
    assert DebianSource("busybox", "1:1.37.0-6", "trixie").upstream == "1.37.0"


def test_the_key_follows_source_config_and_toolchain() -> None:
    source = DebianSource("busybox", "1:1.35.0-4+deb12u1", "bookworm")
    key = busybox.build_key(source, {"CONFIG_FEATURE_DI_ENV_HACK": "y"}, "gcc 12.2.0, glibc 2.36")
    assert key == busybox.build_key(source, {"CONFIG_FEATURE_DI_ENV_HACK": "y"}, "gcc 12.2.0, glibc 2.36")
    assert len({key,
                busybox.build_key(DebianSource("busybox", "1:1.35.0-5", "bookworm"),
                                  {"CONFIG_FEATURE_DI_ENV_HACK": "y"}, "gcc 12.2.0, glibc 2.36"),
                busybox.build_key(source, {}, "gcc 12.2.0, glibc 2.36"),
                busybox.build_key(source, {"CONFIG_FEATURE_DI_ENV_HACK": "y"}, "gcc 14.2.0, glibc 2.41")}) == 4


# -- the config ---------------------------------------------------------------------------------------------


def test_config_changes_set_options_debian_names_and_nothing_else() -> None:
    shipped = "CONFIG_ASH=y\n# CONFIG_FEATURE_DI_ENV_HACK is not set\nCONFIG_STATIC=y\n"
    assert busybox.adjusted_config(shipped, {"CONFIG_FEATURE_DI_ENV_HACK": "y"}, "pkg/static") == (
        "CONFIG_ASH=y\nCONFIG_FEATURE_DI_ENV_HACK=y\nCONFIG_STATIC=y\n")
    with pytest.raises(MirrorBuildError, match="pkg/static has no CONFIG_FEATURE_DI_ENV_HACK: Debian's config changed"):
        busybox.adjusted_config("CONFIG_ASH=y\n", {"CONFIG_FEATURE_DI_ENV_HACK": "y"}, "pkg/static")


# -- the archive's indexes ------------------------------------------------------------------------------------

RELEASE = textwrap.dedent("""\
    Origin: Debian
    Suite: oldstable
    Codename: bookworm
    SHA256:
     92d11a035571df011f06f28c61cb9825130ef1d92abb2f2e0525e8674dc44af8  9491888 main/source/Sources.xz
     c5a2379970764ac50e167f75909655c552602c1a4d7018c0907b3e30d8dc9de4 12729667 main/source/Sources.gz
    """)


def test_the_sources_index_checksum_comes_from_the_suite_asked_for() -> None:
    assert busybox.index_checksum(RELEASE, "bookworm", "main/source/Sources.xz") == (
        "92d11a035571df011f06f28c61cb9825130ef1d92abb2f2e0525e8674dc44af8", 9491888)
    with pytest.raises(MirrorBuildError, match="names suite 'oldstable' .* a wrong or stale mirror"):
        busybox.index_checksum(RELEASE, "trixie", "main/source/Sources.xz")
    with pytest.raises(MirrorBuildError, match="lists no sha256 for contrib/source/Sources.xz"):
        busybox.index_checksum(RELEASE, "bookworm", "contrib/source/Sources.xz")


def sources_paragraph(package: str, version: str) -> str:
    return textwrap.dedent(f"""\
        Package: {package}
        Version: {version}
        Directory: pool/main/b/{package}
        Checksums-Sha256:
         {'a' * 64} 2321 {package}_{version.split(':')[-1]}.dsc
        """)


def test_the_source_entry_is_the_exact_version_or_the_error_lists_what_is_there() -> None:
    text = "\n".join([sources_paragraph("busybox-w32", "1:1.35.0-4+deb12u1"),
                      sources_paragraph("busybox", "1:1.35.0-3"), sources_paragraph("busybox", "1:1.35.0-4+deb12u1")])
    entry = busybox.source_entry(text, DebianSource("busybox", "1:1.35.0-4+deb12u1", "bookworm"))
    assert busybox.checksums(entry, "Sources") == {"busybox_1.35.0-4+deb12u1.dsc": ("a" * 64, 2321)}
    with pytest.raises(MirrorBuildError, match=r"bookworm's Sources index has no busybox 1:1.36.1-1 \(it lists: "
                                               r"1:1.35.0-3, 1:1.35.0-4\+deb12u1\); set BUSYBOX_SOURCE_VERSION"):
        busybox.source_entry(text, DebianSource("busybox", "1:1.36.1-1", "bookworm"))


def test_a_file_whose_checksum_differs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "busybox_1.35.0.orig.tar.bz2"
    path.write_bytes(b"not the tarball")
    with pytest.raises(MirrorBuildError, match=r"busybox_1.35.0.orig.tar.bz2 has sha256 [0-9a-f]{64} \(15 bytes\) "
                                               r"but the .dsc lists f{64} \(15 bytes\): not using it"):
        busybox.verify(path, ("f" * 64, 15), "the .dsc")


def test_an_archive_whose_inrelease_is_not_signed_by_debian_is_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (archive / "dists/bookworm").mkdir(parents=True)
    (archive / "dists/bookworm/InRelease").write_text(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + RELEASE +
        "-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n")
    builds = tmp_path / "builds"
    with pytest.raises(MirrorBuildError, match="InRelease of bookworm fails gpgv against "
                                               "/usr/share/keyrings/debian-archive-keyring.gpg"):
        busybox.ensure_busybox(builds, lambda _: None, archive=str(archive))
    assert [p.name for p in builds.iterdir()] == [".busybox.lock"]


def test_a_mirror_without_the_suite_says_which_file_it_lacks(tmp_path: Path) -> None:
    with pytest.raises(MirrorBuildError, match=r"cannot download .*/dists/bookworm/InRelease.*KBUILD_LAB_MIRROR"):
        busybox.fetch_source(busybox.SOURCE, tmp_path / "source", lambda _: None, archive=str(tmp_path / "empty"))
