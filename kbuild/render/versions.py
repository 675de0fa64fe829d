"""The component versions kbuild renders for, and what differs between their minors (one table each)."""

from __future__ import annotations

from dataclasses import dataclass

from kbuild.errors import UsageError
from kbuild.inventory import Cluster

Minor = tuple[int, int]


def minor_of(version: str) -> Minor:
    """'1.33.5' -> (1, 33); the inventory has already checked the X.Y.Z form."""
    major, minor, *_ = version.lstrip("v").split(".")
    return int(major), int(minor)


def show(minor: Minor) -> str:
    return f"{minor[0]}.{minor[1]}"


@dataclass(frozen=True)
class KubernetesProfile:
    """What one Kubernetes minor needs that the flag tables cannot say."""

    pause_image: str  # the sandbox image kubeadm pins for this minor
    # apiVersion of the AuthenticationConfiguration that may restrict anonymous auth to health
    # endpoints (KEP-4633: beta in 1.32, GA in 1.34 together with the v1 API); None: the minor
    # cannot, so anonymous auth is switched off with --anonymous-auth=false instead.
    authentication_config_api: str | None


# Sources: kubeadm's pinned pause versions (3.10 up to 1.33, 3.10.1 from 1.34); KEP-4633 and
# KEP-3331 milestones for the authentication configuration.
KUBERNETES: dict[Minor, KubernetesProfile] = {
    (1, 31): KubernetesProfile("registry.k8s.io/pause:3.10", None),
    (1, 32): KubernetesProfile("registry.k8s.io/pause:3.10", "apiserver.config.k8s.io/v1beta1"),
    (1, 33): KubernetesProfile("registry.k8s.io/pause:3.10", "apiserver.config.k8s.io/v1beta1"),
    (1, 34): KubernetesProfile("registry.k8s.io/pause:3.10.1", "apiserver.config.k8s.io/v1"),
}

ETCD_MINORS: tuple[Minor, ...] = ((3, 4), (3, 5), (3, 6))

# containerd 1.x reads config version 2; 2.x introduced version 3 (and still converts 2).
CONTAINERD_CONFIG_VERSION: dict[int, int] = {1: 2, 2: 3}
CONTAINERD_OLDEST: Minor = (1, 6)


@dataclass(frozen=True)
class ClusterVersions:
    """The minors a cluster runs, checked against what kbuild knows how to render."""

    kubernetes: Minor
    etcd: Minor
    containerd: Minor
    profile: KubernetesProfile

    @property
    def containerd_config_version(self) -> int:
        return CONTAINERD_CONFIG_VERSION[self.containerd[0]]


def cluster_versions(cluster: Cluster) -> ClusterVersions:
    """Resolve the inventory's versions; a version kbuild has no tables for is a clear error."""
    v = cluster.settings.versions
    kube, etcd, ctrd = minor_of(v.kubernetes), minor_of(v.etcd), minor_of(v.containerd)
    if kube not in KUBERNETES:
        known = ", ".join(show(m) for m in KUBERNETES)
        raise UsageError(f"cluster.versions.kubernetes: kbuild has no flag tables for Kubernetes {show(kube)}",
                         hint=f"use one of {known}")
    if etcd not in ETCD_MINORS:
        known = ", ".join(show(m) for m in ETCD_MINORS)
        raise UsageError(f"cluster.versions.etcd: kbuild has no flag tables for etcd {show(etcd)}",
                         hint=f"use one of {known}")
    if ctrd < CONTAINERD_OLDEST or ctrd[0] not in CONTAINERD_CONFIG_VERSION:
        raise UsageError(f"cluster.versions.containerd: containerd {v.containerd} is not supported",
                         hint="use containerd 1.6, 1.7 or 2.x")
    return ClusterVersions(kube, etcd, ctrd, KUBERNETES[kube])
