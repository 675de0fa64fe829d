"""What runs where: component versions read from the binaries on each host (one probe per host)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from kbuild import layout
from kbuild.engine.runner import HostStatus
from kbuild.engine.session import Query
from kbuild.errors import ExitCode, KbuildError
from kbuild.inventory import Cluster, Host
from kbuild.plays.clusterfacts import installed
from kbuild.plays.clusterfacts.installed import HostVersions, Installed
from kbuild.plays.clusterfacts.version import Version
from kbuild.plays.phases import Context

__all__ = ["BY_NAME", "COMPONENTS", "Component", "HostVersions", "Installed", "Version", "cluster_target", "detect",
           "host_components", "probe_script"]

@dataclass(frozen=True)
class Component:
    """A long-running component kbuild upgrades: its binary, its unit, and which inventory version it follows."""

    name: str
    follows: str  # field of cluster.versions: kubernetes | etcd | containerd
    role: str  # etcd | control-plane | node: which hosts run it

    @property
    def binary(self) -> str:
        return str(layout.binary_path(self.name))

    @property
    def service(self) -> str:
        return self.name


COMPONENTS = (
    Component("etcd", "etcd", "etcd"),
    Component("kube-apiserver", "kubernetes", "control-plane"),
    Component("kube-controller-manager", "kubernetes", "control-plane"),
    Component("kube-scheduler", "kubernetes", "control-plane"),
    Component("containerd", "containerd", "node"),
    Component("kubelet", "kubernetes", "node"),
    Component("kube-proxy", "kubernetes", "node"),
)
BY_NAME = {c.name: c for c in COMPONENTS}


def host_components(host: Host) -> list[Component]:
    has = {"etcd": host.is_etcd, "control-plane": host.is_control_plane, "node": host.runs_kubelet}
    return [c for c in COMPONENTS if has[c.role]]


def probe_script(host: Host, known: dict[str, tuple[str, str]] | None = None) -> str:
    """The installed-components fact's script for the components `host` runs (see clusterfacts.installed)."""
    return installed.command((installed.Probed(c.name, c.binary, c.service) for c in host_components(host)), known)


def detect(ctx: Context, hosts: list[Host], known: dict[str, dict[str, tuple[str, str]]] | None = None
           ) -> dict[str, HostVersions]:
    """Probe `hosts` in parallel (one round trip each); an unreachable or failing host is an error,
    since an upgrade decided without knowing every host's versions could break the skew policy."""
    queries = {h.name: Query("reading component versions", probe_script(h, (known or {}).get(h.name)),
                             functools.partial(installed.parse, h.name)) for h in hosts}
    results, outcomes = ctx.session.gather("upgrade-versions", queries, summary=HostVersions.describe,
                                           describe="component versions from the binaries on every host")
    bad = {n: o for n, o in outcomes.items() if n not in results}
    if bad:
        lines = [f"  {n}: {o.status.value}: {(o.message or '').strip()}" for n, o in bad.items()]
        error = KbuildError("cannot read the versions running on every host, so no upgrade can be planned:\n"
                            + "\n".join(lines),
                            hint=f"make every host reachable ({ctx.cluster.command('ping')}) and run again")
        if any(o.status is HostStatus.UNREACHABLE for o in bad.values()):
            error.exit_code = ExitCode.UNREACHABLE  # the README's table: an unreachable host is exit 4
        raise error
    return results


def cluster_target(cluster: Cluster) -> dict[str, Version]:
    """The version each component should run, from the (possibly --to-adjusted) inventory."""
    v = cluster.settings.versions
    follows = {"kubernetes": Version.parse(v.kubernetes), "etcd": Version.parse(v.etcd),
               "containerd": Version.parse(v.containerd)}
    return {c.name: follows[c.follows] for c in COMPONENTS}
