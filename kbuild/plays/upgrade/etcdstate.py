"""The running etcd cluster as an upgrade needs it: who leads, which version each member and the cluster run."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kbuild import layout
from kbuild.engine.facts import q
from kbuild.engine.runner import Gate
from kbuild.inventory import Cluster, Host
from kbuild.pki.certlist import remote_path
from kbuild.plays.etcd import ETCD_HEALTH_TIMEOUT, etcdctl, health_gate
from kbuild.plays.etcd_ops.commands import client_url, member_names
from kbuild.plays.upgrade.versions import Version


@dataclass(frozen=True)
class Member:
    host: str  # inventory name, or the endpoint when no host has that address
    leader: bool
    version: Version | None


def parse_endpoint_status(text: str, hosts_by_endpoint: dict[str, str]) -> list[Member]:
    """`etcdctl endpoint status --cluster -w json` (the same shape in 3.4 and 3.5) -> members."""
    members = []
    for entry in json.loads(text):
        status = entry["Status"]
        endpoint = entry["Endpoint"]
        members.append(Member(hosts_by_endpoint.get(endpoint, endpoint),
                              status.get("leader") == status["header"]["member_id"],
                              Version.find(status.get("version", ""))))
    return members


def parse_cluster_version(text: str) -> Version | None:
    """etcd's /version: {"etcdserver":"3.5.1","etcdcluster":"3.5.0"} -> the cluster version."""
    try:
        return Version.find(json.loads(text).get("etcdcluster", ""))
    except ValueError:
        return None


def endpoints(cluster: Cluster) -> dict[str, str]:
    return member_names(cluster)


def status_command(cluster: Cluster, urls: str | None = None) -> str:
    """Every member's status (`urls`: only those endpoints, comma-separated)."""
    if urls:
        return etcdctl(cluster, "endpoint", "status", "-w", "json", endpoints=urls)
    return etcdctl(cluster, "endpoint", "status", "--cluster", "-w", "json")


def version_command() -> str:
    return (f"curl -fsS --max-time 5 --cacert {remote_path('etcd-ca.crt')} "
            f"--cert {remote_path('etcd-healthcheck-client.crt')} --key {remote_path('etcd-healthcheck-client.key')} "
            f"https://127.0.0.1:{layout.ETCD_CLIENT_PORT}/version")


def member_version_gate(cluster: Cluster, host: Host, version: Version) -> Gate:
    """The member on `host` answers and runs `version` (its own report, not its binary's)."""
    status = etcdctl(cluster, "endpoint", "status", "-w", "json", endpoints=client_url(host))
    wanted = f'"version":"{version}"'
    command = f"{status} | grep -q {q(wanted)}"
    return Gate(f"etcd member runs {version}", command=command, timeout=ETCD_HEALTH_TIMEOUT, always=True)


def healthy_gate(cluster: Cluster) -> Gate:
    """Every member healthy (after a member's restart): the etcd phase's gate, run even with nothing changed."""
    return health_gate(cluster, always=True)


def others_healthy_gate(cluster: Cluster, host: str) -> Gate | None:
    """Every other member healthy, checked before `host` is touched: so at most one member is ever down,
    and a member an earlier run left stopped can still be brought back. None for a single member."""
    others = ",".join(url for url, name in endpoints(cluster).items() if name != host)
    if not others:
        return None
    return Gate("the other etcd members healthy", command=etcdctl(cluster, "endpoint", "health", endpoints=others),
                timeout=ETCD_HEALTH_TIMEOUT, interval=2.0, always=True)
