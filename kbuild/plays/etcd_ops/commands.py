"""etcd command lines (etcdctl/etcdutl on a host) and the snapshot status parser; pure functions.

The endpoint status and member list are cluster facts: kbuild.plays.clusterfacts.etcd_status, etcd_members."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from kbuild import layout
from kbuild.artifacts.catalogue import ETCDUTL_SINCE
from kbuild.errors import KbuildError
from kbuild.inventory import Cluster, Host
from kbuild.inventory.cluster import format_host
from kbuild.plays.clusterfacts.jsonout import json_document
from kbuild.plays.etcd import etcdctl
from kbuild.render.host_values import Facts

# Saving and reading a large snapshot takes longer than the 5 s a health check gets.
SNAPSHOT_TIMEOUT = "1800s"


def version_tuple(version: str) -> tuple[int, int]:
    parts = version.strip().lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise KbuildError(f"cannot read the etcd version {version!r}") from None


def snapshot_tool(version: str) -> str:
    """The offline snapshot tool of an etcd version: etcdutl from 3.5 (etcdctl's offline commands are
    deprecated there and gone in 3.6), etcdctl before."""
    return "etcdutl" if version_tuple(version) >= ETCDUTL_SINCE else "etcdctl"


def tool_path(tool: str) -> str:
    return str(layout.binary_path(tool))


def client_url(host: Host) -> str:
    return f"https://{format_host(str(host.address))}:{layout.ETCD_CLIENT_PORT}"


def peer_url(host: Host) -> str:
    return f"https://{format_host(str(host.address))}:{layout.ETCD_PEER_PORT}"


def all_endpoints(cluster: Cluster) -> str:
    return ",".join(client_url(h) for h in cluster.etcd_hosts)


def member_names(cluster: Cluster) -> dict[str, str]:
    """Each member's client URL, as etcdctl reports it (IPv6 in brackets), to its host's name."""
    return {client_url(h): h.name for h in cluster.etcd_hosts}


def initial_cluster(cluster: Cluster) -> str:
    """Exactly what the etcd unit's --initial-cluster says (the same Facts property renders both)."""
    return Facts(cluster, cluster.etcd_hosts[0]).etcd_initial_cluster


def ctl(cluster: Cluster, *args: str, endpoints: str | None = None, timeout: str | None = None) -> str:
    """etcdctl with the healthcheck client certificate; `timeout` overrides its 5 s command timeout."""
    extra = (f"--command-timeout={timeout}",) if timeout else ()
    return etcdctl(cluster, *args, *extra, endpoints=endpoints)


def snapshot_status(tool: str, path_word: str) -> str:
    """`snapshot status` as JSON: hash, revision, totalKey, totalSize (3.4 and 3.5 print the same shape).

    `path_word` is already a shell word (quoted by the caller, or a "$variable")."""
    return f"ETCDCTL_API=3 {tool_path(tool)} snapshot status {path_word} --write-out=json"


def restore_token(cluster: Cluster, stamp: str) -> str:
    """A new cluster token per restore: the restored cluster gets a new ID, so a member that still holds
    the old data can never join it by mistake."""
    return f"{cluster.name}-etcd-restore-{stamp}"


# How far a restore moves etcd's revision past the snapshot's (Kubernetes' documented value). Every client
# of the apiserver (kubelets, kube-proxy, controllers, informers) resumes its watches at the last revision it
# saw, which is past the snapshot's: without the bump, the restored etcd would hand out those revisions again
# and the watches would silently miss every change until it caught up -- kubelets never see new pods.
# With it, and the old revisions marked compacted, every watch is told to relist and sees the restored state.
RESTORE_REVISION_BUMP = 1_000_000_000


def restored_revision(snapshot_revision: int) -> int:
    """The revision a member serves right after restoring a snapshot taken at `snapshot_revision`."""
    return snapshot_revision + RESTORE_REVISION_BUMP


def snapshot_restore(cluster: Cluster, host: Host, *, tool: str, snapshot: str, data_dir: str, token: str) -> str:
    """Restore `snapshot` into `data_dir` (which must not exist) as member `host` of the inventory's cluster,
    its revision bumped and the revisions before marked compacted (see RESTORE_REVISION_BUMP)."""
    args = [
        f"ETCDCTL_API=3 {tool_path(tool)} snapshot restore {shlex.quote(snapshot)}",
        f"--bump-revision={RESTORE_REVISION_BUMP}",
        "--mark-compacted",
        f"--name={shlex.quote(host.name)}",
        f"--initial-cluster={shlex.quote(initial_cluster(cluster))}",
        f"--initial-advertise-peer-urls={shlex.quote(peer_url(host))}",
        f"--initial-cluster-token={shlex.quote(token)}",
        f"--data-dir={shlex.quote(data_dir)}",
    ]
    return " ".join(args)


# -- parsing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_keys: int
    total_size: int


def parse_snapshot_status(text: str) -> SnapshotStatus:
    data = json_document(text, "revision")
    try:
        return SnapshotStatus(int(data["hash"]), int(data["revision"]), int(data["totalKey"]), int(data["totalSize"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unexpected snapshot status output ({exc}): {text.strip()[:300]}") from None
