"""The releases kbuild supports: which minors of each component, and what each Kubernetes minor needs.

The one place these facts live: the inventory refuses anything else at `inventory check`, the
renderer and the upgrade policy read their tables from here. A minor is listed while upstream
supports it (Kubernetes: the three newest minors; etcd: the two newest minors kbuild knows;
containerd: 2.x, since Kubernetes 1.35 was the last to support containerd 1.x).
"""

from __future__ import annotations

from dataclasses import dataclass

Minor = tuple[int, int]


def minor_of(version: str) -> Minor:
    """'1.37.2' -> (1, 37); the version has already been checked to be X.Y.Z."""
    major, minor, *_ = version.lstrip("v").split(".")
    return int(major), int(minor)


def patch_of(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in version.lstrip("v").split("."))
    return major, minor, patch


def show(minor: Minor) -> str:
    return f"{minor[0]}.{minor[1]}"


@dataclass(frozen=True)
class KubernetesMinor:
    """What one Kubernetes minor needs that its flag list cannot say."""

    pause_image: str  # the sandbox image this release builds (build/pause/Makefile TAG; what kubeadm pins)


# Sources: build/pause/Makefile of each release's k8s.io/kubernetes module (3.10.1 in 1.35, 3.10.2 from 1.36).
KUBERNETES: dict[Minor, KubernetesMinor] = {
    (1, 35): KubernetesMinor("registry.k8s.io/pause:3.10.1"),
    (1, 36): KubernetesMinor("registry.k8s.io/pause:3.10.2"),
    (1, 37): KubernetesMinor("registry.k8s.io/pause:3.10.2"),
}
# One CoreDNS for every supported minor (CoreDNS reads the stable discovery and core APIs): the release
# kubeadm 1.37 deploys (cmd/kubeadm/app/constants).
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.14.6"
ETCD: tuple[Minor, ...] = ((3, 5), (3, 6))
CONTAINERD_MAJORS: tuple[int, ...] = (2,)
# runc before 1.1.12 lets a container escape through a leaked working directory (CVE-2024-21626).
RUNC_OLDEST = (1, 1, 12)


class UnsupportedRelease(ValueError):
    """A version kbuild refuses, with the versions it would take instead."""


def check_supported(component: str, version: str) -> None:
    """Raise UnsupportedRelease unless kbuild supports `version` of `component` (inventory field names)."""
    minor = minor_of(version)
    if component == "kubernetes" and minor not in KUBERNETES:
        raise UnsupportedRelease(f"Kubernetes {show(minor)} is not supported (upstream supports "
                                 f"{', '.join(show(m) for m in KUBERNETES)}); use one of those")
    if component == "etcd" and minor not in ETCD:
        raise UnsupportedRelease(f"etcd {show(minor)} is not supported; use etcd {' or '.join(show(m) for m in ETCD)}")
    if component == "containerd" and minor[0] not in CONTAINERD_MAJORS:
        raise UnsupportedRelease(f"containerd {version} is not supported: Kubernetes 1.36 and later need "
                                 "containerd 2.x")
    if component == "runc" and patch_of(version) < RUNC_OLDEST:
        raise UnsupportedRelease(f"runc {version} has CVE-2024-21626 (fixed in 1.1.12); use a current runc")
