"""Build the test artifact mirror from source: every cluster binary from its published Go module, the official layout.

What goes in (linux/amd64; versions in tests.mirror.releases, kbuild's defaults among them):

    kubernetes    kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl
                  (k8s.io/kubernetes, two minors), as dl.k8s.io serves them: each binary with NAME.sha256
    etcd          etcd, etcdctl, etcdutl (two minors): etcd-vX-linux-amd64.tar.gz + SHA256SUMS
    containerd    containerd-X-linux-amd64.tar.gz (bin/...) + .sha256sum
    runc          runc.amd64 (static, seccomp) + runc.sha256sum
    CNI plugins   cni-plugins-linux-amd64-vX.tgz (./bridge, ...) + .sha256
    crictl        crictl-vX-linux-amd64.tar.gz + .sha256
    images        the pause image of each Kubernetes release (build/pause/linux/pause.c), CoreDNS, and a
                  busybox test image (busybox built from Debian's source: tests.mirror.busybox), as OCI
                  archives where kbuild looks for images in a mirror (kbuild.artifacts.images) with a
                  .sha256 beside each

The slow part, compiling, is cached per build (module, version, Go version, flags: see
tests.mirror.gobuild; busybox by source version, config and compiler: tests.mirror.busybox), so a
mirror for new inputs costs only the builds that changed; the mirror itself is cached under a key
of every build and of the packing code. Both are made in a temporary directory and renamed into
place when complete.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kbuild.artifacts.catalogue import (
    cni_plugins_release,
    containerd_release,
    crictl_release,
    etcd_release,
    kubernetes_release,
    runc_release,
)
from kbuild.artifacts.images import image_release
from kbuild.artifacts.mirror import mirror_relative_path as mirror_path
from tests.mirror import images, releases
from tests.mirror.busybox import BuiltBusybox, ensure_busybox
from tests.mirror.errors import MirrorBuildError
from tests.mirror.gobuild import BuildCache, Built, GoBuild
from tests.mirror.gotool import GoTool
from tests.mirror.pack import MirrorWriter, sums, targz

ARCH = "amd64"
HERE = Path(__file__).resolve().parent
# The code that decides what the packed mirror looks like; a change to any of it repacks.
PACKING_SOURCES = ("builder.py", "images.py", "pack.py", "releases.py")
# Two builds at once: the link step of one and the module downloads of another overlap the
# compile of the big one; more would only share the same two cores.
PARALLEL_BUILDS = 2

Log = Callable[[str], None]


@dataclass(frozen=True)
class Mirror:
    """A built mirror directory and what it holds (MANIFEST.json at its root)."""

    root: Path
    manifest: Mapping[str, object]

    @property
    def kubernetes_versions(self) -> tuple[str, ...]:
        return tuple(self.manifest["kubernetes_versions"])  # type: ignore[arg-type]

    @property
    def etcd_versions(self) -> tuple[str, ...]:
        return tuple(self.manifest["etcd_versions"])  # type: ignore[arg-type]

    @property
    def files(self) -> Mapping[str, str]:
        """Mirror-relative path -> sha256 of every file served."""
        return self.manifest["files"]  # type: ignore[return-value]

    @property
    def images(self) -> Mapping[str, Mapping[str, str]]:
        """Image reference -> {path, sha256, manifest_digest, config_digest}."""
        return self.manifest["images"]  # type: ignore[return-value]

    def tool(self, name: str) -> Path:
        """A client binary of kbuild's default release to run here: kubectl, etcdctl, etcdutl, crictl."""
        return Path(self.manifest["tools"][name])  # type: ignore[index]

    @property
    def test_image(self) -> str:
        """The reference of the busybox test image (pods in tests run it, never pulling)."""
        return str(self.manifest["test_image"])


# -- cache location ---------------------------------------------------------------------------------------


def cache_root() -> Path:
    """$KBUILD_TEST_MIRROR_CACHE, else /var/cache/kbuild/test-mirror when writable, else ~/.cache/kbuild/test-mirror."""
    override = os.environ.get("KBUILD_TEST_MIRROR_CACHE")
    if override:
        return Path(override)
    system = Path("/var/cache/kbuild/test-mirror")
    try:
        system.mkdir(parents=True, exist_ok=True)
        if os.access(system, os.W_OK):
            return system
    except OSError:
        pass
    return Path.home() / ".cache" / "kbuild" / "test-mirror"


def _packing_digest() -> str:
    digest = hashlib.sha256()
    for name in PACKING_SOURCES:
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes())
    return digest.hexdigest()


# -- entry point ------------------------------------------------------------------------------------------


def ensure_mirror(*, force: bool = False, log: Log = lambda line: print(line, file=sys.stderr),
                  root: Path | None = None) -> Mirror:
    """The built mirror for the current inputs, building what is missing first (serialised by a lock file)."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    go = GoTool.find()
    # busybox compiles in a minute or two (C, no Go): beside the Go builds rather than after them.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="busybox-build") as pool:
        busybox_future = pool.submit(ensure_busybox, root / "builds", log)
        builds = build_all(BuildCache(root / "builds", go, log), releases.all_builds(), log)
    busybox = busybox_future.result()
    key = hashlib.sha256(json.dumps({
        "packing": _packing_digest(), "builds": sorted(b.key for b in builds.values()),
        "busybox": busybox.key, "arch": ARCH,
    }, sort_keys=True).encode()).hexdigest()[:16]
    target = root / key
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # CI's prebuild and a test session must not pack twice at once
        if not force and (target / "MANIFEST.json").is_file():
            return Mirror(target, json.loads((target / "MANIFEST.json").read_text()))
        log(f"packing the test mirror in {target} (key {key})")
        work = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
        try:
            manifest = pack_mirror(work, builds, go, busybox)
            manifest["key"] = key
            manifest["build_seconds"] = {f"{b.build.name} {b.build.version}": b.seconds for b in builds.values()}
            manifest["build_seconds"][f"busybox {busybox.source.version}"] = busybox.seconds
            manifest["go"] = go.version
            (work / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            if target.exists():
                shutil.rmtree(target)
            os.replace(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _prune(root, keep=key, builds=[*builds.values(), busybox])
    log(f"test mirror ready in {time.monotonic() - started:.0f} s: {target}")
    return Mirror(target, manifest)


def build_all(cache: BuildCache, wanted: list[GoBuild], log: Log) -> dict[tuple[str, str], Built]:
    """Every build, PARALLEL_BUILDS at a time; the first failure (naming its module) is raised after the rest end."""
    with ThreadPoolExecutor(max_workers=PARALLEL_BUILDS, thread_name_prefix="go-build") as pool:
        futures = {(b.name, b.version): pool.submit(cache.ensure, b) for b in wanted}
    errors = [f.exception() for f in futures.values() if f.exception() is not None]
    if errors:
        first = errors[0]
        raise first if isinstance(first, MirrorBuildError) else MirrorBuildError(str(first))
    return {k: f.result() for k, f in futures.items()}


def _prune(root: Path, keep: str, builds: list[Built | BuiltBusybox]) -> None:
    # Mirrors and builds of older inputs are hundreds of MiB each and never used again on this checkout.
    for path in root.iterdir():
        if path.is_dir() and re.fullmatch(r"[0-9a-f]{16}", path.name) and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
    used = {b.directory.name for b in builds}
    builds_dir = root / "builds"
    for path in builds_dir.iterdir():
        if path.is_dir() and not path.name.startswith(".") and path.name not in used:
            shutil.rmtree(path, ignore_errors=True)


# -- packing -----------------------------------------------------------------------------------------------


def pack_mirror(dest: Path, builds: Mapping[tuple[str, str], Built], go: GoTool, busybox: BuiltBusybox
                ) -> dict[str, object]:
    """Write the whole mirror into `dest` from finished builds; return its manifest."""
    writer = MirrorWriter(dest)

    def built(name: str, version: str) -> Built:
        return builds[(name, f"v{version}")]

    for version in releases.KUBERNETES_VERSIONS:
        kube = built("kubernetes", version)
        for name in releases.KUBERNETES_COMMANDS:
            writer.add_with_sha256_file(mirror_path(kubernetes_release(name, version, ARCH).url),
                                        kube.binary(name).read_bytes())

    for version in releases.ETCD_VERSIONS:
        etcd = built("etcd", version)
        release = etcd_release(version, ARCH)
        top = f"etcd-v{version}-linux-{ARCH}"
        tarball = targz([(f"{top}/{n}", etcd.binary(n).read_bytes()) for n in ("etcd", "etcdctl", "etcdutl")],
                        directories=[top])
        writer.add(mirror_path(release.url), tarball)
        writer.add(mirror_path(release.checksum_url), sums([(release.filename, tarball)]))

    defaults = releases.DEFAULTS
    containerd = built("containerd", defaults.containerd)
    release = containerd_release(defaults.containerd, ARCH)
    tarball = targz([(f"bin/{n}", containerd.binary(n).read_bytes()) for n in releases.CONTAINERD_COMMANDS],
                    directories=["bin"])
    writer.add(mirror_path(release.url), tarball)
    writer.add(mirror_path(release.checksum_url), sums([(release.filename, tarball)]))

    release = runc_release(defaults.runc, ARCH)
    runc = built("runc", defaults.runc).binary("runc").read_bytes()
    writer.add(mirror_path(release.url), runc)
    writer.add(mirror_path(release.checksum_url), sums([(release.filename, runc)]))

    cni = built("cni-plugins", defaults.cni_plugins)
    release = cni_plugins_release(defaults.cni_plugins, ARCH)
    tarball = targz([(f"./{n}", cni.binary(n).read_bytes()) for n in sorted(cni.build.binaries)], directories=["."])
    writer.add(mirror_path(release.url), tarball)
    writer.add(mirror_path(release.checksum_url), sums([(release.filename, tarball)]))

    assert defaults.crictl is not None
    release = crictl_release(defaults.crictl, ARCH)
    tarball = targz([("crictl", built("crictl", defaults.crictl).binary("crictl").read_bytes())])
    writer.add(mirror_path(release.url), tarball)
    writer.add(mirror_path(release.checksum_url), sums([(release.filename, tarball)]))

    archives = _images(builds, go, busybox)
    for archive in archives:
        path = mirror_path(image_release(archive.ref, ARCH).url)
        writer.add_with_sha256_file(path, archive.data)
    test_image = next(a.ref for a in archives if a.ref.startswith("kbuild.test/busybox:"))
    return {
        "arch": ARCH,
        "kubernetes_versions": sorted(releases.KUBERNETES_VERSIONS, key=_version_key),
        "etcd_versions": sorted(releases.ETCD_VERSIONS, key=_version_key),
        "containerd_version": defaults.containerd,
        "runc_version": defaults.runc,
        "cni_plugins_version": defaults.cni_plugins,
        "crictl_version": defaults.crictl,
        "coredns_version": releases.COREDNS_VERSION,
        "images": {a.ref: {"path": mirror_path(image_release(a.ref, ARCH).url), "sha256": writer.files[
            mirror_path(image_release(a.ref, ARCH).url)], "manifest_digest": a.manifest_digest,
            "config_digest": a.config_digest} for a in archives},
        "test_image": test_image,
        "tools": {"kubectl": str(built("kubernetes", defaults.kubernetes).binary("kubectl")),
                  **{n: str(built("etcd", defaults.etcd).binary(n)) for n in ("etcdctl", "etcdutl")},
                  "crictl": str(built("crictl", defaults.crictl).binary("crictl"))},
        "busybox_source": {"package": busybox.source.package, "version": busybox.source.version,
                           "suite": busybox.source.suite, "build": busybox.directory.name},
        "files": writer.files,
    }


def _images(builds: Mapping[tuple[str, str], Built], go: GoTool, busybox: BuiltBusybox) -> list[images.ImageArchive]:
    result: dict[str, images.ImageArchive] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for version in releases.KUBERNETES_VERSIONS:
            module_dir = Path(go.download("k8s.io/kubernetes", f"v{version}")["Dir"])
            pause_dir = Path(scratch) / f"pause-{version}"
            pause_dir.mkdir()
            archive = images.pause_image(module_dir, pause_dir)
            result.setdefault(archive.ref, archive)
        coredns = builds[("coredns", f"v{releases.COREDNS_VERSION}")]
        archive = images.coredns_image(coredns.binary("coredns"), releases.COREDNS_VERSION)
        result[archive.ref] = archive
        archive = images.busybox_image(busybox.binary, busybox.source.upstream)
        result[archive.ref] = archive
    return list(result.values())


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))
