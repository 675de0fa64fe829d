"""The test image's busybox: built from Debian's source package the way its busybox-static is, cached per machine.

Why not Debian's busybox-static itself: its ash drops, on start, every environment variable whose name is
not a shell identifier (`data-1=x`), so such a variable never reaches `env` or any other child. Upstream
keeps them since 1.28 ("ash: retain envvars with bad names in initial environment", commit 9c143ce);
Debian reverts that commit (debian/patches/revert-9c143ce52da1...patch) and brings the upstream behaviour back only
under its own option CONFIG_FEATURE_DI_ENV_HACK (temp-deb-installer-hack.patch), which it sets for the
installer's build (debian/config/pkg/udeb) and not for busybox-static. Kubernetes hands ConfigMap and
Secret keys such as `data-1` to containers as exactly such variables, and upstream's e2e tests read them
back with `sh -c env` in their busybox image, which is built from busybox.net's source and keeps them.

So: Debian's source of BUSYBOX_SOURCE_VERSION with all its patches, its busybox-static config with only the
options in CONFIG_CHANGES changed, configured and built as debian/rules does. Everything fetched is
verified before use: the suite's InRelease by gpgv against Debian's archive keyring, the Sources index by
the sha256 InRelease lists, the .dsc by the sha256 Sources lists, the tarballs by the .dsc's (dpkg-source
checks them again). The build is cached under <builds>/busybox-<version>-<key>/ (bin/busybox, the .config,
BUILD.json, build.log), keyed by the source version, the config changes and the compiler; like the Go
builds it is made in a temporary directory and renamed into place only when complete. The Debian mirror is
the lab image's (KBUILD_LAB_MIRROR, else deb.debian.org).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from debian import deb822

from kbuild.artifacts.checksums import sha256_file
from kbuild.artifacts.errors import DownloadError
from kbuild.artifacts.transport import Transport
from kbuild.lab.image import mirror_from_env
from tests.mirror import releases
from tests.mirror.errors import MirrorBuildError
from tests.mirror.gobuild import locked

Log = Callable[[str], None]
PACKAGE = "busybox"
FLAVOUR = "static"  # debian/config/pkg/static: the config of the busybox-static binary package
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
SOURCES_INDEX = "main/source/Sources.xz"
# The only changes to Debian's busybox-static config, each for a reason the module's docstring gives.
CONFIG_CHANGES: Mapping[str, str] = {
    # Keep environment variables whose names are not identifiers (data-1=...), as upstream busybox does.
    "CONFIG_FEATURE_DI_ENV_HACK": "y",
}
# Bump when the way the build is done changes in a way the key's inputs do not show.
RECIPE = 1


@dataclass(frozen=True)
class DebianSource:
    """A Debian source package at one version, as one suite's Sources index lists it."""

    package: str
    version: str  # 1:1.35.0-4+deb12u1
    suite: str  # bookworm

    @property
    def upstream(self) -> str:
        """1:1.35.0-4+deb12u1 -> 1.35.0 (no epoch, no Debian revision): what the image is tagged with."""
        return self.version.split(":", 1)[-1].rsplit("-", 1)[0]

    @property
    def unepoched(self) -> str:
        """1:1.35.0-4+deb12u1 -> 1.35.0-4+deb12u1, as the pool's file names spell it."""
        return self.version.split(":", 1)[-1]


SOURCE = DebianSource(PACKAGE, releases.BUSYBOX_SOURCE_VERSION, releases.BUSYBOX_SUITE)


@dataclass(frozen=True)
class BuiltBusybox:
    """A finished busybox build in the cache."""

    source: DebianSource
    directory: Path
    key: str
    seconds: float  # how long it took when it was made

    @property
    def binary(self) -> Path:
        return self.directory / "bin" / "busybox"


# -- the key --------------------------------------------------------------------------------------------


def compiler() -> str:
    """What the binary depends on besides the source and config: gcc's version and the static glibc linked in."""
    try:
        gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, check=False).stdout.strip()
    except FileNotFoundError:
        raise MirrorBuildError("gcc is not installed: busybox is compiled for the test image; "
                               "apt-get install gcc libc6-dev make") from None
    return f"gcc {gcc}, {os.confstr('CS_GNU_LIBC_VERSION')}"


def build_key(source: DebianSource, changes: Mapping[str, str], toolchain: str) -> str:
    blob = json.dumps({"recipe": RECIPE, "package": source.package, "version": source.version,
                       "suite": source.suite, "flavour": FLAVOUR, "config": dict(sorted(changes.items())),
                       "toolchain": toolchain}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- reading the archive's indexes (pure) -----------------------------------------------------------------


def index_checksum(release_text: str, suite: str, path: str) -> tuple[str, int]:
    """The sha256 and size the (verified) Release text lists for `path`; it must be the suite asked for."""
    release = deb822.Release(release_text)
    if suite not in (release.get("Codename"), release.get("Suite")):
        raise MirrorBuildError(f"the archive's InRelease for {suite} is signed but names suite "
                               f"{release.get('Suite')!r} ({release.get('Codename')!r}): a wrong or stale mirror")
    for entry in release.get("SHA256", []):
        if entry["name"] == path:
            return entry["sha256"], int(entry["size"])
    raise MirrorBuildError(f"the InRelease of {suite} lists no sha256 for {path}")


def source_entry(sources_text: str, source: DebianSource) -> deb822.Sources:
    """The Sources paragraph of `source` at exactly its version; an error names the versions listed instead."""
    head = f"Package: {source.package}\n"
    found = [deb822.Sources(p) for p in sources_text.split("\n\n") if p.lstrip("\n").startswith(head)]
    for paragraph in found:
        if paragraph["Version"] == source.version:
            return paragraph
    listed = ", ".join(p["Version"] for p in found) or "none"
    raise MirrorBuildError(f"{source.suite}'s Sources index has no {source.package} {source.version} (it lists: "
                           f"{listed}); set BUSYBOX_SOURCE_VERSION in tests/mirror/releases.py to one it lists")


def checksums(paragraph: deb822.Deb822, where: str) -> dict[str, tuple[str, int]]:
    """File name -> (sha256, size) from a Sources paragraph's or a .dsc's Checksums-Sha256."""
    entries = paragraph.get("Checksums-Sha256") or []
    if not entries:
        raise MirrorBuildError(f"{where} lists no Checksums-Sha256: cannot verify the source package")
    return {e["name"]: (e["sha256"], int(e["size"])) for e in entries}


def verify(path: Path, expected: tuple[str, int], where: str) -> None:
    """`path` has the sha256 and size `where` lists, or the build stops naming both."""
    digest = sha256_file(path)
    size = path.stat().st_size
    if (digest, size) != expected:
        raise MirrorBuildError(f"{path.name} has sha256 {digest} ({size} bytes) but {where} lists "
                               f"{expected[0]} ({expected[1]} bytes): not using it")


def adjusted_config(shipped: str, changes: Mapping[str, str], where: str) -> str:
    """Debian's config text with each option in `changes` set; every one must be an option Debian's config names."""
    lines = shipped.splitlines()
    for option, value in changes.items():
        at = [i for i, line in enumerate(lines) if line == f"# {option} is not set" or line.startswith(f"{option}=")]
        if not at:
            raise MirrorBuildError(f"{where} has no {option}: Debian's config changed; review CONFIG_CHANGES in "
                                   "tests/mirror/busybox.py")
        lines[at[0]] = f"{option}={value}"
    return "\n".join(lines) + "\n"


# -- fetching -------------------------------------------------------------------------------------------------


class _Fetcher:
    """Files of one Debian mirror into one directory, by their path under the mirror."""

    def __init__(self, archive: str, dest: Path) -> None:
        self.archive = archive.rstrip("/")
        self.dest = dest
        self.transport = Transport(timeout=60, progress=False)

    def get(self, relative: str) -> Path:
        url = f"{self.archive}/{relative}"
        path = self.dest / relative.rsplit("/", 1)[-1]
        try:
            with path.open("wb") as sink:
                self.transport.fetch(url, sink, label=path.name)
        except DownloadError as exc:
            # exc.message without kbuild's hint, which is about an inventory's artifacts.mirror, not this.
            raise MirrorBuildError(f"{exc.message} (the busybox source comes from this Debian mirror; set "
                                   "KBUILD_LAB_MIRROR to another one)") from None
        return path


def fetch_source(source: DebianSource, dest: Path, log: Log, archive: str | None = None) -> Path:
    """Download and verify `source`'s .dsc and tarballs into `dest`; return the .dsc."""
    if not KEYRING.is_file():
        raise MirrorBuildError(f"{KEYRING} is missing: it verifies Debian's archive; apt-get install "
                               "debian-archive-keyring gpgv")
    dest.mkdir(parents=True, exist_ok=True)
    fetch = _Fetcher(archive or mirror_from_env(), dest)
    log(f"fetching Debian's {source.package} {source.version} source from {fetch.archive} ({source.suite})")
    inrelease = fetch.get(f"dists/{source.suite}/InRelease")
    verified = dest / "Release"
    try:
        result = subprocess.run(["gpgv", "--keyring", str(KEYRING), "--output", str(verified), str(inrelease)],
                                capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MirrorBuildError("gpgv is not installed: it verifies Debian's archive; apt-get install gpgv") from None
    if result.returncode != 0:
        raise MirrorBuildError(f"{inrelease.name} of {source.suite} fails gpgv against {KEYRING}: "
                               f"{result.stderr.strip()[-300:]}")
    expected = index_checksum(verified.read_text(), source.suite, SOURCES_INDEX)
    index = fetch.get(f"dists/{source.suite}/{SOURCES_INDEX}")
    verify(index, expected, f"{source.suite}'s InRelease")
    entry = source_entry(lzma.decompress(index.read_bytes()).decode("utf-8"), source)
    listed = checksums(entry, f"{source.suite}'s Sources entry of {source.package}")
    dsc_name = f"{source.package}_{source.unepoched}.dsc"
    if dsc_name not in listed:
        raise MirrorBuildError(f"{source.suite}'s Sources entry of {source.package} lists no {dsc_name}")
    dsc = fetch.get(f"{entry['Directory']}/{dsc_name}")
    verify(dsc, listed[dsc_name], f"{source.suite}'s Sources index")
    for name, expected_file in checksums(deb822.Dsc(dsc.read_text()), dsc_name).items():
        verify(fetch.get(f"{entry['Directory']}/{name}"), expected_file, dsc_name)
    return dsc


# -- building ----------------------------------------------------------------------------------------------


class _Steps:
    """Commands of one build, their output appended to build.log; a failure names the step and keeps the log."""

    def __init__(self, log_path: Path, failed_log: Path) -> None:
        self.log_path = log_path
        self.failed_log = failed_log

    def run(self, argv: list[str], what: str, *, cwd: Path | None = None, stdin: str | None = None) -> None:
        env = {**os.environ, "KCONFIG_NOTIMESTAMP": "1", "LC_ALL": "C"}
        with self.log_path.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            try:
                code = subprocess.run(argv, cwd=cwd, env=env, input=stdin, text=True, stdout=out,
                                      stderr=subprocess.STDOUT, check=False).returncode
            except FileNotFoundError:
                raise MirrorBuildError(f"{what}: {argv[0]} is not installed (apt-get install dpkg-dev make gcc "
                                       "libc6-dev bzip2)") from None
        if code != 0:
            shutil.copy(self.log_path, self.failed_log)
            lines = self.log_path.read_text().strip().splitlines()
            raise MirrorBuildError(f"{what} failed (exit {code}): {lines[-1] if lines else 'no output'} "
                                   f"(full log: {self.failed_log})")


def build(source: DebianSource, dsc: Path, work: Path, steps: _Steps) -> tuple[Path, Path]:
    """Unpack, configure and compile as debian/rules does for its static flavour; return the binary and .config."""
    tree = work / "tree"  # dpkg-source also puts the orig tarball beside it, in `work`
    # dpkg-source checks the tarballs against the .dsc and applies debian/patches; it warns that it cannot check
    # the .dsc's own signature (the uploader's key is not in the archive keyring), which the archive's chain did.
    steps.run(["dpkg-source", "-x", str(dsc), str(tree)], f"unpacking {dsc.name} (dpkg-source)")
    shipped = tree / "debian/config/pkg" / FLAVOUR
    wanted = adjusted_config(shipped.read_text(), CONFIG_CHANGES, f"debian/config/pkg/{FLAVOUR}")
    out = work / "build"
    out.mkdir()
    # debian/rules: the OS's overrides first (empty for Linux), then the flavour's config, then oldconfig; on
    # Linux the result must equal the flavour's config, or an option moved (there: upstream's; here also ours).
    (out / ".config").write_text((tree / "debian/config/os/linux").read_text() + wanted)
    make = ["make", "-C", str(out), "-f", str(tree / "Makefile"), f"KBUILD_SRC={tree}"]
    steps.run([*make, "silentoldconfig"], "configuring busybox", stdin="\n" * 4096)
    got = (out / ".config").read_text()
    if got != wanted:
        diff = "".join(difflib.unified_diff(wanted.splitlines(True), got.splitlines(True), "wanted", "oldconfig"))
        raise MirrorBuildError(f"busybox's oldconfig changed the adjusted busybox-static config (an option "
                               f"depends on something unset?):\n{diff[:1500]}")
    # Debian's CFLAGS add dpkg-buildflags' hardening on top of busybox's own (-Os); the test image's binary
    # keeps busybox's own, so the build depends on no dpkg-dev version or build path. The extra version stands
    # where the build date would (a banner that is the same on every build).
    steps.run(["make", "-C", str(out), f"-j{os.cpu_count() or 1}", "all",
               f"BB_EXTRA_VERSION=Debian {source.version}, kbuild test build"], "compiling busybox")
    return out / "busybox", out / ".config"


def ensure_busybox(root: Path, log: Log, *, source: DebianSource = SOURCE, archive: str | None = None
                   ) -> BuiltBusybox:
    """The cached busybox build of `source`, made first if it is not there (serialised by a lock file)."""
    key = build_key(source, CONFIG_CHANGES, compiler())
    target = root / f"{source.package}-{source.unepoched}-{key}"
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f".{source.package}.lock"):
        if (target / "BUILD.json").is_file():
            return BuiltBusybox(source, target, key, json.loads((target / "BUILD.json").read_text())["seconds"])
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}."))
        try:
            steps = _Steps(work / "build.log", root / f"{target.name}.failed.log")
            scratch = work / "scratch"
            dsc = fetch_source(source, scratch / "source", log, archive)
            log(f"building busybox from {dsc.name} ({FLAVOUR} config with {', '.join(CONFIG_CHANGES)})")
            binary, config = build(source, dsc, scratch, steps)
            (work / "bin").mkdir()
            os.replace(binary, work / "bin" / "busybox")
            os.replace(config, work / "config")
            shutil.rmtree(scratch)
            seconds = round(time.monotonic() - started, 1)
            (work / "BUILD.json").write_text(json.dumps({
                "package": source.package, "version": source.version, "suite": source.suite, "flavour": FLAVOUR,
                "config_changes": dict(CONFIG_CHANGES), "toolchain": compiler(), "seconds": seconds,
            }, indent=2, sort_keys=True))
            os.replace(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log(f"built busybox {source.version} in {seconds:.0f} s")
        return BuiltBusybox(source, target, key, seconds)
