"""Upstream's conformance tests, built for the lab (`python -m tests.mirror build --conformance`).

What goes in, all for kbuild's default Kubernetes release:

    e2e.test     `go test -c` of k8s.io/kubernetes/test/e2e, stamped with the release's version as upstream's
                 build is (so it reports v1.37.2 and checks the server against it)
    ginkgo       github.com/onsi/ginkgo/v2/ginkgo at the version k8s.io/kubernetes requires
    images       under exactly the names the e2e framework asks for (test/utils/image/manifest.go):
                   agnhost            k8s.io/kubernetes/test/images/agnhost, stamped with the tag the framework
                                      expects, on a Debian base with the tools its Dockerfile installs
                                      (dig, curl, nc, ss, iperf, socat) and the CoreDNS the mirror builds
                   glibc-dns-testing  the same Debian base (glibc's resolver, dig) and CoreDNS
                   busybox            the mirror's busybox test image (tests.mirror.busybox), renamed
                 the pause image is the mirror's own (the cluster's sandbox image is the one e2e expects).

The Go builds are cached like the mirror's (tests.mirror.gobuild, by module, version, Go version and
flags), the Debian base by its suite and packages, and the whole set under a key of both and of this
file, in <cache>/conformance/<key>/ (CONFORMANCE.json says what is where).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.mirror import images, releases
from tests.mirror.builder import Mirror, ensure_mirror
from tests.mirror.errors import MirrorBuildError
from tests.mirror.gobuild import BuildCache, Built, GoBuild
from tests.mirror.gotool import GoTool

Log = Callable[[str], None]
HERE = Path(__file__).resolve()
KUBERNETES = "k8s.io/kubernetes"
GINKGO = "github.com/onsi/ginkgo/v2"
MANIFEST_GO = "test/utils/image/manifest.go"
# The images this build provides, by the framework's name for each; the rest of its list cannot be built here.
PROVIDED = ("agnhost", "busybox", "glibc-dns-testing")
# What agnhost's Dockerfile installs from Alpine, from Debian: bind-tools, curl, netcat-openbsd, iproute2,
# iperf, socat (bash and util-linux are in the base).
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("bind9-dnsutils", "curl", "iperf", "iproute2", "netcat-openbsd", "socat")
BASE_MIRROR = "http://deb.debian.org/debian"
# Documentation and caches: megabytes no test reads.
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt",
           "var/lib/apt/lists", "var/log")
# agnhost's Dockerfile: the user and group a SupplementalGroups test expects in the image.
AGNHOST_USERS = (b"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n",
                 b"user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n")


@dataclass(frozen=True)
class Conformance:
    """A finished conformance build: its directory and CONFORMANCE.json."""

    root: Path
    manifest: dict

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def e2e_test(self) -> Path:
        return self.root / "bin" / "e2e.test"

    @property
    def ginkgo(self) -> Path:
        return self.root / "bin" / "ginkgo"

    @property
    def images(self) -> dict[str, Path]:
        """Image reference -> its OCI archive (a .sha256 beside each), for artifacts.images.files."""
        return {ref: self.root / path for ref, path in self.manifest["images"].items()}


# -- what the e2e framework expects ------------------------------------------------------------------------


def e2e_image_refs(manifest_go: str, where: str) -> dict[str, str]:
    """The framework's name -> full reference for each PROVIDED image, read from manifest.go's config table."""
    registry = re.search(r'PromoterE2eRegistry:\s*"([^"]+)"', manifest_go)
    found = {name: tag for name, tag in re.findall(
        r'configs\[\w+\]\s*=\s*Config\{list\.PromoterE2eRegistry,\s*"([^"]+)",\s*"([^"]+)"\}', manifest_go)
        if name in PROVIDED}
    missing = [name for name in PROVIDED if name not in found]
    if registry is None or missing:
        raise MirrorBuildError(f"{where}: no {'registry' if registry is None else ', '.join(missing)} in the "
                               "e2e image table; the framework's image list changed: update tests.mirror.conformance")
    return {name: f"{registry.group(1)}/{name}:{tag}" for name, tag in found.items()}


def required_version(gomod: dict, module: str, where: str) -> str:
    """The version of `module` a go.mod (as `go mod edit -json` gives it) requires."""
    for require in gomod.get("Require") or []:
        if require.get("Path") == module:
            return require["Version"]
    raise MirrorBuildError(f"{where} requires no {module}: cannot tell which version to build")


def go_builds(version: str, agnhost_tag: str, ginkgo_version: str) -> list[GoBuild]:
    """e2e.test (stamped as the release's binaries are), agnhost (stamped with its image tag) and ginkgo."""
    return [
        GoBuild("e2e.test", version, (KUBERNETES,), {"e2e.test": f"{KUBERNETES}/test/e2e"},
                stamp=releases._kubernetes_stamp, test=True),
        GoBuild("agnhost", version, (KUBERNETES,), {"agnhost": f"{KUBERNETES}/test/images/agnhost"},
                stamp=lambda _: {"main.Version": agnhost_tag}),
        GoBuild("ginkgo", ginkgo_version, (GINKGO,), {"ginkgo": f"{GINKGO}/ginkgo"}),
    ]


# -- the Debian base of agnhost and glibc-dns-testing --------------------------------------------------------


def base_key() -> str:
    blob = json.dumps({"suite": BASE_SUITE, "packages": sorted(BASE_PACKAGES), "trimmed": TRIMMED, "arch": "amd64",
                       "variant": "minbase"}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_base(cache: Path, log: Log) -> Path:
    """The debootstrap'ed Debian tree, made once (in a temporary directory renamed into place when complete)."""
    target = cache / f"{BASE_SUITE}-{base_key()}"
    if (target / "rootfs.json").is_file():
        return target / "rootfs"
    if shutil.which("debootstrap") is None:
        raise MirrorBuildError("debootstrap is not installed: the agnhost and glibc-dns-testing images are made "
                               "from a Debian tree; apt-get install debootstrap and run again")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache, prefix=f".{target.name}."))
    try:
        log(f"debootstrap {BASE_SUITE} with {', '.join(BASE_PACKAGES)} for the e2e images (about two minutes)")
        argv = ["debootstrap", "--variant=minbase", "--arch=amd64", "--components=main",
                f"--include={','.join(BASE_PACKAGES)}", BASE_SUITE, str(work / "rootfs"), BASE_MIRROR]
        with (work / "debootstrap.log").open("w") as out:
            code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        if code != 0:
            lines = (work / "debootstrap.log").read_text().strip().splitlines()
            kept = cache / f"{target.name}.failed.log"
            shutil.copy(work / "debootstrap.log", kept)
            raise MirrorBuildError(f"debootstrap of {BASE_SUITE} failed (exit {code}): "
                                   f"{lines[-1] if lines else 'no output'} (full log: {kept})")
        for part in TRIMMED:
            shutil.rmtree(work / "rootfs" / part, ignore_errors=True)
        (work / "rootfs.json").write_text(json.dumps({"suite": BASE_SUITE, "packages": BASE_PACKAGES,
                                                      "mirror": BASE_MIRROR}, indent=2))
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / "rootfs"


def tree_entries(root: Path) -> Iterator[images.Entry]:
    """A directory tree as layer entries: files (hard links as copies), directories and symlinks, in a stable
    order; device nodes, sockets and FIFOs are left out (the runtime gives a container its /dev)."""
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        base = Path(directory)
        relative = base.relative_to(root)
        if str(relative) != ".":
            yield images.Entry(str(relative), kind="dir", mode=base.lstat().st_mode & 0o7777)
        for name in sorted(files) + [d for d in dirs if (base / d).is_symlink()]:
            path, stat = base / name, (base / name).lstat()
            member = str(relative / name) if str(relative) != "." else name
            if path.is_symlink():
                yield images.Entry(member, kind="symlink", target=os.readlink(path))
            elif path.is_file():
                yield images.Entry(member, path.read_bytes(), mode=stat.st_mode & 0o7777, uid=stat.st_uid)
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]


def _with_lines(root: Path, name: str, extra: bytes) -> images.Entry:
    return images.Entry(name, (root / name).read_bytes() + extra, mode=0o644)


def agnhost_image(ref: str, base: Path, agnhost: Path, coredns: Path, porter: Path) -> images.ImageArchive:
    """As agnhost's Dockerfile builds it: /agnhost (and /agnhost-2), /coredns, /uploads, porter's key pair (from
    the module's test/images/agnhost/porter), the image's own user and group; entrypoint /agnhost, command pause."""
    passwd, group = AGNHOST_USERS
    entries = [e for e in tree_entries(base) if e.path not in ("etc/passwd", "etc/group")]
    entries += [_with_lines(base, "etc/passwd", passwd), _with_lines(base, "etc/group", group),
                images.Entry("agnhost", agnhost.read_bytes()), images.Entry("agnhost-2", kind="symlink",
                                                                             target="agnhost"),
                images.Entry("coredns", coredns.read_bytes()), images.Entry("uploads", kind="dir"),
                *(images.Entry(name, (porter / name).read_bytes(), mode=0o644)
                  for name in ("localhost.crt", "localhost.key"))]
    return images.image_archive(ref, entries, entrypoint=["/agnhost"], cmd=["pause"])


def glibc_dns_image(ref: str, base: Path, coredns: Path) -> images.ImageArchive:
    """As glibc-dns-testing's Dockerfile builds it: Debian with dnsutils, and /coredns."""
    entries = [*tree_entries(base), images.Entry("coredns", coredns.read_bytes())]
    return images.image_archive(ref, entries, entrypoint=[], cmd=["/bin/sh"])


def renamed(archive_path: Path, ref: str) -> images.ImageArchive:
    """An OCI layout archive with its image named `ref` instead (same manifest, config and layer)."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    manifest_digest = config_digest = ""
    with tarfile.open(archive_path) as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            if info.name == "index.json":
                index = json.loads(data)
                entry = index["manifests"][0]
                entry["annotations"] = {"io.containerd.image.name": ref,
                                        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}
                manifest_digest = entry["digest"]
                data = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
                info.size = len(data)
            members.append((info, data))
    with tarfile.open(archive_path) as tar:
        manifest = json.loads(tar.extractfile(f"blobs/sha256/{manifest_digest[7:]}").read())  # type: ignore[union-attr]
        config_digest = manifest["config"]["digest"]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return images.ImageArchive(ref, out.getvalue(), manifest_digest, config_digest)


# -- the whole set -------------------------------------------------------------------------------------------


def ensure_conformance(mirror: Mirror | None = None, *, root: Path, log: Log) -> Conformance:
    """The conformance build for kbuild's default Kubernetes release, made first where it is missing."""
    mirror = mirror or ensure_mirror(log=log, root=root)
    go = GoTool.find()
    version = f"v{releases.DEFAULTS.kubernetes}"
    module = go.download(KUBERNETES, version)
    module_dir = Path(module["Dir"])
    refs = e2e_image_refs((module_dir / MANIFEST_GO).read_text(), f"{KUBERNETES}@{version}/{MANIFEST_GO}")
    ginkgo_version = required_version(go.read_gomod(Path(module["GoMod"])), GINKGO, f"{KUBERNETES}@{version}")
    cache = BuildCache(root / "conformance" / "builds", go, log)
    built: dict[str, Built] = {}
    for build in go_builds(version, refs["agnhost"].rsplit(":", 1)[1], ginkgo_version):
        built[build.name] = cache.ensure(build)
    key = hashlib.sha256(json.dumps({"builds": sorted(b.key for b in built.values()), "base": base_key(),
                                     "mirror": mirror.manifest["key"], "code": hashlib.sha256(HERE.read_bytes()
                                                                                              ).hexdigest()},
                                    sort_keys=True).encode()).hexdigest()[:16]
    target = root / "conformance" / key
    if (target / "CONFORMANCE.json").is_file():
        return Conformance(target, json.loads((target / "CONFORMANCE.json").read_text()))
    base = ensure_base(root / "conformance" / "rootfs", log)
    # The mirror's own CoreDNS build (cached with the mirror's builds), as the images' /coredns.
    coredns = BuildCache(root / "builds", go, log).ensure(releases.coredns(releases.COREDNS_VERSION)).binary("coredns")
    log(f"packing the e2e images in {target}")
    work = Path(tempfile.mkdtemp(dir=root / "conformance", prefix=f".{key}."))
    try:
        (work / "bin").mkdir()
        (work / "images").mkdir()
        for name, binary in (("e2e.test", built["e2e.test"].binary("e2e.test")),
                             ("ginkgo", built["ginkgo"].binary("ginkgo"))):
            os.link(binary, work / "bin" / name)
        archives = [agnhost_image(refs["agnhost"], base, built["agnhost"].binary("agnhost"), coredns,
                                  module_dir / "test/images/agnhost/porter"),
                    glibc_dns_image(refs["glibc-dns-testing"], base, coredns),
                    renamed(mirror.root / mirror.images[mirror.test_image]["path"], refs["busybox"])]
        placed = {}
        for archive in archives:
            name = archive.ref.rsplit("/", 1)[1].replace(":", "-") + ".tar"
            (work / "images" / name).write_bytes(archive.data)
            (work / "images" / f"{name}.sha256").write_text(hashlib.sha256(archive.data).hexdigest() + "\n")
            placed[archive.ref] = f"images/{name}"
        manifest = {"version": version, "key": key, "ginkgo": ginkgo_version, "images": placed,
                    "go": go.version, "build_seconds": {n: b.seconds for n, b in built.items()}}
        (work / "CONFORMANCE.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"conformance build ready: {target}")
    return Conformance(target, manifest)

