"""The API resources the apiserver stand-in serves: storage keys, discovery documents, table rows."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    key: str  # etcd key segment under /registry, as the real apiserver names it
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, "namespaces", ("ns",), ("status",)),
    Resource("", "v1", "nodes", "Node", False, "minions", ("no",), ("status",)),
    Resource("", "v1", "pods", "Pod", True, "pods", ("po",), ("status", "eviction")),
    Resource("", "v1", "services", "Service", True, "services/specs", ("svc",), ("status",)),
    Resource("", "v1", "endpoints", "Endpoints", True, "services/endpoints", ("ep",)),
    Resource("", "v1", "configmaps", "ConfigMap", True, "configmaps", ("cm",)),
    Resource("", "v1", "secrets", "Secret", True, "secrets"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccounts", ("sa",)),
    Resource("", "v1", "events", "Event", True, "events", ("ev",)),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True, "leases"),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, "clusterroles"),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, "clusterrolebindings"),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True, "roles"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, "rolebindings"),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, "endpointslices"),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, "poddisruptionbudgets", ("pdb",), ("status",)),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, "daemonsets", ("ds",), ("status",)),
    Resource("apps", "v1", "deployments", "Deployment", True, "deployments", ("deploy",), ("status",)),
    # reviews are answered, never stored
    Resource("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, ""),
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ""),
)


def find(group: str, version: str, plural: str) -> Resource | None:
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def groups() -> list[str]:
    seen: list[str] = []
    for r in RESOURCES:
        if r.group and r.group not in seen:
            seen.append(r.group)
    return seen


def resource_list(group: str, version: str) -> dict | None:
    items = [r for r in RESOURCES if r.group == group and r.version == version]
    if not items:
        return None
    out = []
    for r in items:
        out.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced, "kind": r.kind,
                    "verbs": _VERBS, "shortNames": list(r.short_names) or None, "storageVersionHash": ""})
        for sub in r.subresources:
            kind = "Eviction" if sub == "eviction" else r.kind
            verbs = ["create"] if sub == "eviction" else ["get", "patch", "update"]
            entry = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs}
            if sub == "eviction":
                entry.update(group="policy", version="v1")
            out.append(entry)
    for entry in out:
        if entry.get("shortNames") is None:
            entry.pop("shortNames", None)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": items[0].group_version, "resources": out}


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group(name: str) -> dict:
    versions = sorted({r.version for r in RESOURCES if r.group == name})
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list() -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group(g) for g in groups()]}


# -- server-side printing (kubectl asks for meta.k8s.io Table) --------------------------------------


def human_age(created: str, now: float | None = None) -> str:
    """kube's duration.HumanDuration, enough for an Age column."""
    try:
        then = time.mktime(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except (TypeError, ValueError):
        return "<unknown>"
    secs = max(0, int((now or time.time()) - then))
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _node_row(obj: dict) -> list:
    conds = {c.get("type"): c.get("status") for c in obj.get("status", {}).get("conditions") or []}
    ready = conds.get("Ready")
    status = "Ready" if ready == "True" else ("Unknown" if ready is None else "NotReady")
    if obj.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = obj.get("metadata", {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    version = obj.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
    return [obj["metadata"]["name"], status, ",".join(roles) or "<none>",
            human_age(obj["metadata"].get("creationTimestamp")), version]


def _col(name: str, typ: str = "string", fmt: str = "", priority: int = 0) -> dict:
    return {"name": name, "type": typ, "format": fmt, "description": name, "priority": priority}


def table(res: Resource, items: list[dict], resource_version: str) -> dict:
    if res.plural == "nodes":
        cols = [_col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version")]
        rows = [_node_row(o) for o in items]
    elif res.plural == "namespaces":
        cols = [_col("Name", fmt="name"), _col("Status"), _col("Age")]
        rows = [[o["metadata"]["name"], o.get("status", {}).get("phase", "Active"),
                 human_age(o["metadata"].get("creationTimestamp"))] for o in items]
    else:
        cols = [_col("Name", fmt="name"), _col("Age")]
        rows = [[o["metadata"]["name"], human_age(o["metadata"].get("creationTimestamp"))] for o in items]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": cols,
        "rows": [
            {"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                        "metadata": o.get("metadata", {})}}
            for cells, o in zip(rows, items, strict=True)
        ],
    }


# -- OpenAPI v3: just enough for kubectl to find server-side field validation on each kind ------------


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_root() -> dict:
    gvs = sorted({(r.group, r.version) for r in RESOURCES})
    return {"paths": {_gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=standin"} for g, v in gvs}}


def openapi_v3_gv(group: str, version: str, git_version: str) -> dict | None:
    items = [r for r in RESOURCES if r.group == group and r.version == version]
    if not items:
        return None
    paths = {}
    field_validation = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for r in items:
        base = "/" + _gv_path(group, version) + ("/namespaces/{namespace}" if r.namespaced else "") + f"/{r.plural}"
        gvk = {"group": group, "version": version, "kind": r.kind}
        op = {"parameters": [field_validation], "x-kubernetes-group-version-kind": gvk,
              "responses": {"200": {"description": "OK"}}}
        paths[base] = {"post": op}
        paths[base + "/{name}"] = {"put": op, "patch": op}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": git_version}, "paths": paths,
            "components": {"schemas": {}}}
