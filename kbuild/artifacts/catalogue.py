"""The component catalogue: official release URLs, checksum files, archive layouts, and which host gets what.

Everything here is pure data derived from (component, version, arch); nothing touches the network.
The names follow the upstream release pages exactly, so a mirror made with `wget -x` from the
official URLs works unchanged (see kbuild.artifacts.mirror).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from kbuild import components as table
from kbuild.inventory.cluster import Host
from kbuild.inventory.model import Versions
from kbuild.layout import BIN_DIR, CNI_BIN_DIR

ARCHES = ("amd64", "arm64")

# Component name -> field of the inventory's `cluster.versions`.
VERSION_FIELDS = {
    "kubernetes": "kubernetes",
    "etcd": "etcd",
    "containerd": "containerd",
    "runc": "runc",
    "cni-plugins": "cni_plugins",
    "crictl": "crictl",
}
COMPONENTS = tuple(VERSION_FIELDS)

# Restarting its unit is what makes a service's new binary take effect. Client tools (kubectl, etcdctl,
# crictl, ctr), runc and CNI plugins are executed afresh each time, so nothing restarts for them; the shim
# is started per container by containerd, so new containers pick up a new one.
SERVICES = {c.name: (c.name,) for c in table.COMPONENTS if c.service}


@dataclass(frozen=True)
class Release:
    """One file as published upstream: a single binary or a .tar.gz of binaries, and its checksum file."""

    component: str
    version: str
    arch: str
    url: str  # the official download URL (mirror:PATH for files only mirrors have); the cache index key
    checksum_url: str  # the official checksum file that lists this file's sha256
    archive: bool
    image: str | None = None  # for a container image archive: the image's reference

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def label(self) -> str:
        if self.image:
            return f"image {self.image} (linux/{self.arch})"
        return f"{self.filename} ({self.component} {self.version} linux/{self.arch})"


@dataclass(frozen=True)
class Binary:
    """One executable a host receives, and where it comes from."""

    component: str
    name: str
    release: Release
    member: str | None  # path inside release's archive; None when the release file is the binary
    remote_path: PurePosixPath
    services: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        return self.release.version

    @property
    def arch(self) -> str:
        return self.release.arch

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.component, self.name, self.version, self.arch)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.component} {self.version} linux/{self.arch})"


# -- official releases ------------------------------------------------------------------------------


def _github(repo: str, version: str) -> str:
    return f"https://github.com/{repo}/releases/download/v{version}/"


def kubernetes_release(name: str, version: str, arch: str) -> Release:
    """dl.k8s.io publishes every binary on its own, each with a NAME.sha256 holding just the hash."""
    url = f"https://dl.k8s.io/release/v{version}/bin/linux/{arch}/{name}"
    return Release("kubernetes", version, arch, url, f"{url}.sha256", archive=False)


def etcd_release(version: str, arch: str) -> Release:
    base = _github("etcd-io/etcd", version)
    return Release("etcd", version, arch, f"{base}etcd-v{version}-linux-{arch}.tar.gz", f"{base}SHA256SUMS", True)


def containerd_release(version: str, arch: str) -> Release:
    url = f"{_github('containerd/containerd', version)}containerd-{version}-linux-{arch}.tar.gz"
    return Release("containerd", version, arch, url, f"{url}.sha256sum", archive=True)


def runc_release(version: str, arch: str) -> Release:
    base = _github("opencontainers/runc", version)
    return Release("runc", version, arch, f"{base}runc.{arch}", f"{base}runc.sha256sum", archive=False)


def cni_plugins_release(version: str, arch: str) -> Release:
    url = f"{_github('containernetworking/plugins', version)}cni-plugins-linux-{arch}-v{version}.tgz"
    return Release("cni-plugins", version, arch, url, f"{url}.sha256", archive=True)


def crictl_release(version: str, arch: str) -> Release:
    url = f"{_github('kubernetes-sigs/cri-tools', version)}crictl-v{version}-linux-{arch}.tar.gz"
    return Release("crictl", version, arch, url, f"{url}.sha256", archive=True)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# etcdutl (offline snapshot status/restore, defrag) split out of etcdctl in 3.5; etcdctl's offline
# commands are deprecated there and gone in 3.6. Whoever picks the offline tool goes by this.
ETCDUTL_SINCE = (3, 5)


def etcd_files(version: str) -> tuple[str, ...]:
    names = table.release_binaries("etcd")
    return names if _version_tuple(version)[:2] >= ETCDUTL_SINCE else tuple(n for n in names if n != "etcdutl")


def component_binaries(component: str, version: str, arch: str) -> tuple[Binary, ...]:
    """Every binary kbuild installs from `component` at `version` for `arch`, in a stable order."""
    if arch not in ARCHES:
        raise ValueError(f"unsupported architecture {arch!r}; supported: {', '.join(ARCHES)}")

    def binary(name: str, release: Release, member: str | None, directory: PurePosixPath = BIN_DIR) -> Binary:
        return Binary(component, name, release, member, directory / name, SERVICES.get(name, ()))

    if component == "kubernetes":
        names = table.release_binaries("kubernetes")
        return tuple(binary(n, kubernetes_release(n, version, arch), None) for n in names)
    if component == "etcd":
        release = etcd_release(version, arch)
        return tuple(binary(n, release, f"etcd-v{version}-linux-{arch}/{n}") for n in etcd_files(version))
    if component == "containerd":
        release = containerd_release(version, arch)
        return tuple(binary(n, release, f"bin/{n}") for n in table.release_binaries("containerd"))
    if component == "runc":
        return (binary("runc", runc_release(version, arch), None),)
    if component == "cni-plugins":
        release = cni_plugins_release(version, arch)
        # The official tarball is made with `tar -C bin .`, so its members read ./bridge etc.
        return tuple(binary(n, release, f"./{n}", CNI_BIN_DIR) for n in table.release_binaries("cni-plugins"))
    if component == "crictl":
        return (binary("crictl", crictl_release(version, arch), "crictl"),)
    raise ValueError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}")


# -- which host gets what ---------------------------------------------------------------------------

def role_binaries(role: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(release, binaries) a phase installs, by release in catalogue order (the component table says which)."""
    rows = table.of_role(role)
    wanted = ((release, tuple(n for c in rows if c.release == release for n in c.binaries)) for release in COMPONENTS)
    return tuple((release, names) for release, names in wanted if names)


def component_version(versions: Versions, component: str) -> str | None:
    """The version the inventory asks for; None means the component is not installed (opt-in ones)."""
    value = getattr(versions, VERSION_FIELDS[component], None)
    return str(value) if value else None


def host_binaries(versions: Versions, host: Host) -> list[Binary]:
    """The binaries `host` needs for its roles, without duplicates, in role then catalogue order."""
    wanted: list[Binary] = []
    seen: set[tuple[str, str, str, str]] = set()
    for role in table.ROLES:
        if not table.host_has_role(host, role):
            continue
        for component, names in role_binaries(role):
            version = component_version(versions, component)
            if version is None:
                continue
            for binary in component_binaries(component, version, host.arch):
                if binary.name in names and binary.key not in seen:
                    seen.add(binary.key)
                    wanted.append(binary)
    return wanted


def unique_binaries(groups: Iterable[Iterable[Binary]]) -> list[Binary]:
    """Binaries across hosts, each once (same component, name, version and arch)."""
    result: dict[tuple[str, str, str, str], Binary] = {}
    for group in groups:
        for binary in group:
            result.setdefault(binary.key, binary)
    return list(result.values())


def release_binaries(release: Release) -> tuple[Binary, ...]:
    """Every binary kbuild takes from `release` (so one pass over an archive unpacks them all)."""
    return tuple(b for b in component_binaries(release.component, release.version, release.arch)
                 if b.release == release)
