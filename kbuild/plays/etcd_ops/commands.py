"""etcd command lines (etcdctl/etcdutl on a host) and parsers for their JSON output; pure functions."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from kbuild import layout
from kbuild.artifacts.catalogue import ETCDUTL_SINCE
from kbuild.errors import KbuildError
from kbuild.inventory import Cluster, Host
from kbuild.inventory.cluster import format_host
from kbuild.plays.etcd import etcdctl
from kbuild.render.facts import Facts

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


def _json_object(text: str, key: str | None = None) -> Any:
    """The JSON document in a tool's output, which may carry log lines (JSON too) around it: the first
    list, or the first object that has `key`."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith(("{", "[")):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, list) or key is None or (isinstance(data, dict) and key in data):
            return data
    raise ValueError(f"no JSON in the output: {text.strip()[:300] or '(empty)'}")


def parse_snapshot_status(text: str) -> SnapshotStatus:
    data = _json_object(text, "revision")
    try:
        return SnapshotStatus(int(data["hash"]), int(data["revision"]), int(data["totalKey"]), int(data["totalSize"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"unexpected snapshot status output ({exc}): {text.strip()[:300]}") from None


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    cluster_id: str  # hex, as etcdctl prints member IDs in tables
    member_id: str
    leader_id: str
    revision: int
    raft_term: int
    raft_index: int
    db_size: int
    version: str

    @property
    def is_leader(self) -> bool:
        return self.member_id == self.leader_id


def parse_endpoint_status(text: str) -> list[EndpointStatus]:
    """`etcdctl endpoint status -w json` (3.4 and 3.5 share the shape)."""
    found = []
    for entry in _json_object(text, "Endpoint"):
        status = entry["Status"]
        header = status["header"]
        found.append(EndpointStatus(
            endpoint=entry["Endpoint"], cluster_id=f"{int(header['cluster_id']):x}",
            member_id=f"{int(header['member_id']):x}", leader_id=f"{int(status.get('leader', 0)):x}",
            revision=int(header.get("revision", 0)), raft_term=int(header.get("raft_term", 0)),
            raft_index=int(status.get("raftIndex", 0)), db_size=int(status.get("dbSize", 0)),
            version=str(status.get("version", "")),
        ))
    return found


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool


def parse_member_list(text: str) -> tuple[str, list[Member]]:
    """`etcdctl member list -w json` -> (cluster ID, members). An unstarted member has no name yet."""
    data = _json_object(text, "members")
    members = [Member(f"{int(m['ID']):x}", m.get("name", ""), tuple(m.get("peerURLs", [])),
                      tuple(m.get("clientURLs", [])), bool(m.get("isLearner", False)))
               for m in data.get("members", [])]
    return f"{int(data['header']['cluster_id']):x}", members
