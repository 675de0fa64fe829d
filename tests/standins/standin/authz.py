"""Authorization like the real apiserver's chain: privileged group, Node authorizer (+NodeRestriction), RBAC."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MASTERS = "system:masters"
NODES = "system:nodes"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"

VALID_MODES = ("AlwaysAllow", "AlwaysDeny", "ABAC", "Webhook", "RBAC", "Node")


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)


@dataclass
class Attributes:
    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


def forbidden_message(user: User, a: Attributes) -> str:
    if not a.resource_request:
        return f'forbidden: User "{user.name}" cannot {a.verb} path "{a.path}"'
    res = a.resource + (f"/{a.subresource}" if a.subresource else "")
    what = f'{a.resource} "{a.name}"' if a.name else a.resource
    scope = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return (f'{what} is forbidden: User "{user.name}" cannot {a.verb} resource "{res}" '
            f'in API group "{a.api_group}" {scope}')


def node_name(user: User) -> str | None:
    if NODES in user.groups and user.name.startswith("system:node:"):
        return user.name[len("system:node:"):]
    return None


def node_restriction(user: User, a: Attributes) -> str | None:
    """What NodeRestriction (with the Node authorizer) refuses a kubelet: touching another node's objects."""
    me = node_name(user)
    if me is None or not a.resource_request:
        return None
    writes = a.verb in ("create", "update", "patch", "delete")
    if a.resource == "nodes" and a.api_group == "" and writes and a.name != me:
        return f'nodes "{a.name}" is forbidden: node "{me}" is not allowed to modify node "{a.name}"'
    if a.resource == "leases" and a.namespace == "kube-node-lease" and writes and a.name != me:
        return f'leases.coordination.k8s.io "{a.name}" is forbidden: can only access node lease with the same name as the requesting node'
    return None


def _node_authorizer(user: User, a: Attributes) -> bool | None:
    me = node_name(user)
    if me is None:
        return None
    if not a.resource_request:
        return None
    read = a.verb in ("get", "list", "watch")
    if a.api_group == "" and a.resource == "nodes":
        return read or a.name == me or a.verb == "create"
    if a.api_group == "coordination.k8s.io" and a.resource == "leases" and a.namespace == "kube-node-lease":
        return a.name == me or a.verb in ("create", "list", "watch")
    if a.api_group == "" and a.resource in ("pods", "services", "endpoints") and read:
        return True
    if a.api_group == "" and a.resource == "events":
        return a.verb in ("create", "patch", "update")
    if a.api_group in ("authorization.k8s.io", "authentication.k8s.io") and a.verb == "create":
        return a.resource in ("subjectaccessreviews", "tokenreviews")
    return None


def _rule_matches(rule: dict, a: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and a.verb not in verbs:
        return False
    if not a.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == a.path or (url.endswith("*") and a.path.startswith(url[:-1])):
                return True
        return False
    groups = rule.get("apiGroups")
    if groups is None or ("*" not in groups and a.api_group not in groups):
        return False
    full = a.resource + (f"/{a.subresource}" if a.subresource else "")
    resources = rule.get("resources") or []
    if not ("*" in resources or full in resources or (a.subresource and f"*/{a.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def _subject_matches(subject: dict, user: User) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        return user.name == f"system:serviceaccount:{subject.get('namespace')}:{name}"
    return False


def rbac_allows(user: User, a: Attributes, policy: Policy) -> bool:
    for binding in policy.cluster_role_bindings:
        if any(_subject_matches(s, user) for s in binding.get("subjects") or []):
            role = policy.cluster_roles.get(binding.get("roleRef", {}).get("name"), {})
            if any(_rule_matches(r, a) for r in role.get("rules") or []):
                return True
    if a.namespace:
        for binding in policy.role_bindings.get(a.namespace, []):
            if any(_subject_matches(s, user) for s in binding.get("subjects") or []):
                ref = binding.get("roleRef", {})
                role = (policy.cluster_roles.get(ref.get("name"), {}) if ref.get("kind") == "ClusterRole"
                        else policy.roles.get((a.namespace, ref.get("name")), {}))
                if any(_rule_matches(r, a) for r in role.get("rules") or []):
                    return True
    return False


@dataclass
class Policy:
    cluster_roles: dict[str, dict] = field(default_factory=dict)
    cluster_role_bindings: list[dict] = field(default_factory=list)
    roles: dict[tuple[str, str], dict] = field(default_factory=dict)
    role_bindings: dict[str, list[dict]] = field(default_factory=dict)


def authorize(user: User, a: Attributes, modes: list[str], policy_loader) -> bool:
    """True if some authorizer in the chain allows; the privileged group always does."""
    if MASTERS in user.groups:
        return True
    policy: Policy | None = None
    for mode in modes:
        if mode == "AlwaysAllow":
            return True
        if mode == "AlwaysDeny":
            return False
        if mode == "Node":
            decision = _node_authorizer(user, a)
            if decision is not None:
                if decision:
                    return True
                continue
        if mode == "RBAC":
            if policy is None:
                policy = policy_loader()
            if rbac_allows(user, a, policy):
                return True
    return False


# -- bootstrap policy (a subset of the real one, same names) ---------------------------------------

_BOOTSTRAP_META = {"annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
                   "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}
_READ = ["get", "list", "watch"]


def _role(name: str, rules: list[dict]) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, **json.loads(json.dumps(_BOOTSTRAP_META))}, "rules": rules}


def _binding(name: str, role: str, subjects: list[dict]) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, **json.loads(json.dumps(_BOOTSTRAP_META))},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}


def _group(name: str) -> dict:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}


def _user(name: str) -> dict:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}


def bootstrap_policy() -> tuple[list[dict], list[dict]]:
    leases = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}
    events = {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]}
    read_all = {"apiGroups": ["*"], "resources": ["*"], "verbs": _READ}
    roles = [
        _role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _role("system:basic-user", [{"apiGroups": ["authorization.k8s.io"],
                                      "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}]),
        _role("system:discovery", [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                                        "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                                    "verbs": ["get"]}]),
        _role("system:public-info-viewer", [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                                             "verbs": ["get"]}]),
        _role("system:kube-controller-manager", [leases, events, read_all,
                                                 {"apiGroups": [""], "resources": ["nodes", "nodes/status", "pods", "pods/status",
                                                                                   "serviceaccounts", "secrets", "endpoints",
                                                                                   "configmaps", "namespaces"],
                                                  "verbs": ["create", "update", "patch", "delete"]}]),
        _role("system:kube-scheduler", [leases, events, read_all,
                                        {"apiGroups": [""], "resources": ["pods/binding", "bindings"], "verbs": ["create"]},
                                        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch", "update"]}]),
        _role("system:node-proxier", [events, {"apiGroups": [""], "resources": ["nodes", "services", "endpoints"], "verbs": _READ},
                                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ}]),
    ]
    bindings = [
        _binding("cluster-admin", "cluster-admin", [_group(MASTERS)]),
        _binding("system:basic-user", "system:basic-user", [_group(AUTHENTICATED)]),
        _binding("system:discovery", "system:discovery", [_group(AUTHENTICATED)]),
        _binding("system:public-info-viewer", "system:public-info-viewer", [_group(AUTHENTICATED), _group(UNAUTHENTICATED)]),
        _binding("system:kube-controller-manager", "system:kube-controller-manager", [_user("system:kube-controller-manager")]),
        _binding("system:kube-scheduler", "system:kube-scheduler", [_user("system:kube-scheduler")]),
        _binding("system:node-proxier", "system:node-proxier", [_user("system:kube-proxy")]),
    ]
    return roles, bindings
