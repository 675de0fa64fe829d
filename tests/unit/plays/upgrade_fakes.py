"""Test data for the upgrade tests: the versions the hosts of a cluster report, as the survey would find them."""

from __future__ import annotations

from kbuild.plays.upgrade.running import HostVersions, Installed, Version
from tests.unit.supported import CONTAINERD, ETCD_PREVIOUS, KUBE_PREVIOUS


def observed(cluster, kube=KUBE_PREVIOUS, etcd=ETCD_PREVIOUS, containerd=CONTAINERD,
             overrides=None) -> dict[str, HostVersions]:
    """Every component each host's roles give it, running at these versions (default: the releases the upgrade
    tests start from, the previous minors); overrides: (host, component) -> Installed."""
    result = {}
    for host in cluster.hosts:
        comps = {}
        if host.is_etcd:
            comps["etcd"] = Installed("etcd", Version.parse(etcd), True)
        if host.is_control_plane:
            for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
                comps[c] = Installed(c, Version.parse(kube), True)
        if host.runs_kubelet:
            comps["containerd"] = Installed("containerd", Version.parse(containerd), True)
            for c in ("kubelet", "kube-proxy"):
                comps[c] = Installed(c, Version.parse(kube), True)
        for (h, c), installed in (overrides or {}).items():
            if h == host.name:
                comps[c] = installed
        result[host.name] = HostVersions(host.name, comps)
    return result
