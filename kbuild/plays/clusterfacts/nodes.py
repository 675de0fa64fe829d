"""Fact: `kubectl get nodes -o json`, the Nodes registered in the API: Ready, cordoned, kubelet version."""

from __future__ import annotations

from dataclasses import dataclass

from kbuild.engine.session import Query
from kbuild.plays.clusterfacts.jsonout import json_document
from kbuild.plays.clusterfacts.version import Version
from kbuild.plays.control_plane import kubectl


@dataclass(frozen=True)
class Node:
    name: str
    ready: bool  # the Ready condition is True
    unschedulable: bool  # cordoned
    kubelet_version: str = ""  # as the kubelet posted it ('v1.36.3'); "" before it did
    annotations: frozenset[str] = frozenset()  # the annotation keys

    @property
    def kubelet(self) -> Version | None:
        return Version.find(self.kubelet_version) if self.kubelet_version else None


def parse(text: str) -> dict[str, Node]:
    """Node name -> its state; ValueError (saying what came) for output that is not a NodeList."""
    data = json_document(text, "items")
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError(f"expected a NodeList: {text.strip()[:200]}")
    found = {}
    for item in data["items"]:
        meta, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
        found[meta["name"]] = Node(
            name=meta["name"], ready=conditions.get("Ready") == "True", unschedulable=bool(spec.get("unschedulable")),
            kubelet_version=str((status.get("nodeInfo") or {}).get("kubeletVersion", "")),
            annotations=frozenset(meta.get("annotations") or ()))
    return found


COMMAND = kubectl("get", "nodes", "-o", "json")
QUERY = Query("kubectl get nodes", COMMAND, parse)
