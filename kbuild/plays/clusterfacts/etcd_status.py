"""Fact: `etcdctl endpoint status -w json`, each member's own view of the cluster (ID, leader, revision, version).

The shape is etcd's StatusResponse marshalled as JSON: 3.4 and 3.5 print header, version, dbSize, leader,
raftIndex, raftTerm, raftAppliedIndex, dbSizeInUse; 3.6 adds storageVersion, dbSizeQuota and downgradeInfo.
IDs are JSON numbers (uint64, often past 2**63), or hex strings with --hex; fields at their zero value are
left out. An endpoint etcdctl cannot reach is missing from the list (and the exit code is 1)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kbuild.engine.session import Query
from kbuild.inventory import Cluster
from kbuild.plays.clusterfacts.jsonout import json_document, member_id
from kbuild.plays.etcd import etcdctl


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str  # the client URL etcdctl asked (IPv6 in brackets)
    cluster_id: str  # hex, as etcdctl prints IDs in tables
    member_id: str
    leader_id: str  # "0": the member knows no leader
    revision: int
    raft_term: int
    raft_index: int
    db_size: int
    version: str  # the member's server version, as it reports it
    name: str = ""  # the inventory host at that endpoint, once `named` has looked it up

    @property
    def is_leader(self) -> bool:
        return self.member_id == self.leader_id


def parse(text: str) -> tuple[EndpointStatus, ...]:
    """Every endpoint's status; ValueError (saying what came) for output that is not a status list."""
    data = json_document(text, "Endpoint")
    if not isinstance(data, list):
        raise ValueError(f"expected a list of endpoints: {text.strip()[:200]}")
    found = []
    for entry in data:
        status = entry["Status"]
        header = status.get("header") or {}
        found.append(EndpointStatus(
            endpoint=str(entry["Endpoint"]), cluster_id=member_id(header.get("cluster_id", 0)),
            member_id=member_id(header["member_id"]), leader_id=member_id(status.get("leader", 0)),
            revision=int(header.get("revision", 0)), raft_term=int(header.get("raft_term", 0)),
            raft_index=int(status.get("raftIndex", 0)), db_size=int(status.get("dbSize", 0)),
            version=str(status.get("version", "")),
        ))
    return tuple(found)


def named(statuses: tuple[EndpointStatus, ...], names_by_endpoint: dict[str, str]) -> list[EndpointStatus]:
    """Each status with the inventory name of its endpoint's host (the endpoint itself when no host has it)."""
    return [dataclasses.replace(s, name=names_by_endpoint.get(s.endpoint, s.endpoint)) for s in statuses]


def command(cluster: Cluster, *, endpoints: str | None = None, every_member: bool = False) -> str:
    """The local member's status; `endpoints`: those (comma-separated); `every_member`: all the cluster lists."""
    scope = ("--cluster",) if every_member else ()
    return etcdctl(cluster, "endpoint", "status", *scope, "-w", "json", endpoints=endpoints)


def query(cluster: Cluster, *, endpoints: str | None = None, every_member: bool = False
          ) -> Query[tuple[EndpointStatus, ...]]:
    return Query("etcd endpoint status", command(cluster, endpoints=endpoints, every_member=every_member), parse)
