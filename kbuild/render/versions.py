"""The component minors a cluster renders for, resolved once from the inventory against kbuild.releases."""

from __future__ import annotations

from dataclasses import dataclass

from kbuild.errors import UsageError
from kbuild.inventory import Cluster
from kbuild.releases import ETCD, KUBERNETES, KubernetesMinor, Minor, UnsupportedRelease, check_supported, minor_of, show

__all__ = ["ClusterVersions", "Minor", "cluster_versions", "minor_of", "show"]


@dataclass(frozen=True)
class ClusterVersions:
    """The minors a cluster runs, checked against what kbuild knows how to render."""

    kubernetes: Minor
    etcd: Minor
    containerd: Minor
    profile: KubernetesMinor


def cluster_versions(cluster: Cluster) -> ClusterVersions:
    """Resolve the inventory's versions; a version kbuild has no tables for is a clear error.

    The inventory refuses such versions when it loads; this is for clusters built in code.
    """
    v = cluster.settings.versions
    for field in ("kubernetes", "etcd", "containerd"):
        try:
            check_supported(field, getattr(v, field))
        except UnsupportedRelease as exc:
            raise UsageError(f"cluster.versions.{field}: {exc}") from None
    kube = minor_of(v.kubernetes)
    assert kube in KUBERNETES and minor_of(v.etcd) in ETCD
    return ClusterVersions(kube, minor_of(v.etcd), minor_of(v.containerd), KUBERNETES[kube])
