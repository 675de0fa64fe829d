"""Fact: `etcdctl member list -w json`, the cluster's membership as etcd records it.

etcd's MemberListResponse as JSON: header {cluster_id, member_id, raft_term}, members [{ID, name, peerURLs,
clientURLs, isLearner}]. A member added but never started has no name and no client URLs; IDs are JSON
numbers (hex strings with --hex, where 3.5 also spells clientURLs as "clientURLS"). Shared by 3.4-3.6."""

from __future__ import annotations

from dataclasses import dataclass

from kbuild.engine.session import Query
from kbuild.inventory import Cluster
from kbuild.plays.clusterfacts.jsonout import json_document, member_id
from kbuild.plays.etcd import etcdctl


@dataclass(frozen=True)
class Member:
    id: str  # hex
    name: str  # "" until the member first starts
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool


@dataclass(frozen=True)
class MemberList:
    cluster_id: str  # hex
    members: tuple[Member, ...]


def parse(text: str) -> MemberList:
    data = json_document(text, "members")
    if not isinstance(data, dict) or "header" not in data:
        raise ValueError(f"expected a member list: {text.strip()[:200]}")
    members = tuple(
        Member(member_id(m["ID"]), str(m.get("name", "")), tuple(m.get("peerURLs") or ()),
               tuple(m.get("clientURLs") or m.get("clientURLS") or ()), bool(m.get("isLearner", False)))
        for m in data.get("members") or ())
    return MemberList(member_id(data["header"]["cluster_id"]), members)


def command(cluster: Cluster, *, endpoints: str | None = None, timeout: str | None = None) -> str:
    """`timeout` overrides etcdctl's 5 s command timeout (a cluster still electing a leader needs longer)."""
    extra = (f"--command-timeout={timeout}",) if timeout else ()
    return etcdctl(cluster, "member", "list", "-w", "json", *extra, endpoints=endpoints)


def query(cluster: Cluster, *, endpoints: str | None = None) -> Query[MemberList]:
    return Query("etcd member list", command(cluster, endpoints=endpoints), parse)
