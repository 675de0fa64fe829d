"""The etcd gates of an upgrade: every other member healthy first, then the restarted member at its new version.

Who leads and which versions run are cluster facts (kbuild.plays.clusterfacts.etcd_status, etcd_version)."""

from __future__ import annotations

from kbuild.engine.facts import q
from kbuild.engine.runner import Gate
from kbuild.inventory import Cluster, Host
from kbuild.plays.etcd import ETCD_HEALTH_TIMEOUT, etcdctl, health_gate
from kbuild.plays.clusterfacts import etcd_status
from kbuild.plays.clusterfacts.version import Version
from kbuild.plays.etcd_ops.commands import client_url, member_names


def member_version_gate(cluster: Cluster, host: Host, version: Version) -> Gate:
    """The member on `host` answers and runs `version` (its own report, not its binary's)."""
    status = etcd_status.command(cluster, endpoints=client_url(host))
    wanted = f'"version":"{version}"'
    command = f"{status} | grep -q {q(wanted)}"
    return Gate(f"etcd member runs {version}", command=command, timeout=ETCD_HEALTH_TIMEOUT, always=True)


def healthy_gate(cluster: Cluster) -> Gate:
    """Every member healthy (after a member's restart): the etcd phase's gate, run even with nothing changed."""
    return health_gate(cluster, always=True)


def others_healthy_gate(cluster: Cluster, host: str) -> Gate | None:
    """Every other member healthy, checked before `host` is touched: so at most one member is ever down,
    and a member an earlier run left stopped can still be brought back. None for a single member."""
    others = ",".join(url for url, name in member_names(cluster).items() if name != host)
    if not others:
        return None
    return Gate("the other etcd members healthy", command=etcdctl(cluster, "endpoint", "health", endpoints=others),
                timeout=ETCD_HEALTH_TIMEOUT, interval=2.0, always=True)
