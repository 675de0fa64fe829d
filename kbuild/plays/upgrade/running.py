"""What runs where: component versions read from the binaries on each host (one probe per host)."""

from __future__ import annotations

import functools

from kbuild import components as table
from kbuild import layout
from kbuild.components import Component
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

# The long-running components an upgrade moves, in start order (the component table's), and by name.
COMPONENTS = table.upgraded()
BY_NAME = {c.name: c for c in COMPONENTS}


def host_components(host: Host) -> list[Component]:
    roles = table.host_roles(host)
    return [c for c in COMPONENTS if c.role in roles]


def probe_script(host: Host, known: dict[str, tuple[str, str]] | None = None) -> str:
    """The installed-components fact's script for the components `host` runs (see clusterfacts.installed)."""
    probed = (installed.Probed(c.name, str(layout.binary_path(c.name)), c.name) for c in host_components(host))
    return installed.command(probed, known)


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
    return {c.name: follows[c.release] for c in COMPONENTS}
