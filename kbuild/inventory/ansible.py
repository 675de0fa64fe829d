"""Read an Ansible inventory (INI or YAML) laid out like kubespray's and translate it to kbuild's format.

Groups: `etcd`, `kube_control_plane` (or the older `kube-master`/`kube_master`), `kube_node`
(or `kube-node`), and `bastion` for a jump host. Host variables: `ip` (the cluster address),
`ansible_host`, `ansible_user`, `ansible_port`, `ansible_ssh_private_key_file`, `ansible_become`.
Cluster variables are taken from the inventory's `all`/`k8s_cluster` vars and from
`group_vars/{all,k8s_cluster}` next to it, using kubespray's names.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from kbuild.errors import Problem
from kbuild.inventory.yamlsource import YamlDocument

ROLE_GROUPS = {
    "etcd": "etcd",
    "kube_control_plane": "control-plane",
    "kube-master": "control-plane",
    "kube_master": "control-plane",
    "kube_node": "worker",
    "kube-node": "worker",
}
CLUSTER_GROUPS = ("all", "k8s_cluster", "k8s-cluster")
# kubespray variable -> (kbuild section, key path)
CLUSTER_VARS: dict[str, tuple[str, ...]] = {
    "kube_version": ("cluster", "versions", "kubernetes"),
    "etcd_version": ("cluster", "versions", "etcd"),
    "containerd_version": ("cluster", "versions", "containerd"),
    "runc_version": ("cluster", "versions", "runc"),
    "cni_version": ("cluster", "versions", "cni_plugins"),
    "crictl_version": ("cluster", "versions", "crictl"),
    "kube_service_addresses": ("cluster", "service_cidr"),
    "kube_pods_subnet": ("cluster", "pod_cidr"),
    "kube_network_node_prefix": ("cluster", "node_cidr_mask_size"),
    "kube_apiserver_port": ("cluster", "api_port"),
    "dns_domain": ("cluster", "cluster_domain"),
    "kube_proxy_mode": ("cluster", "proxy_mode"),
    "supplementary_addresses_in_ssl_keys": ("cluster", "extra_sans"),
    "etcd_data_dir": ("etcd", "data_dir"),
}
HOST_SSH_VARS = {
    "ansible_host": "host",
    "ansible_user": "user",
    "ansible_port": "port",
    "ansible_ssh_private_key_file": "key_file",
    "ansible_become": "become",
}


def looks_like_ini(path: Path, text: str) -> bool:
    if path.suffix in (".yaml", ".yml", ".json"):
        return False
    if path.suffix in (".ini", ".cfg"):
        return True
    return any(re.match(r"^\s*\[[^\]]+\]\s*$", line) for line in text.splitlines())


def looks_like_yaml(data: Any) -> bool:
    return isinstance(data, dict) and "all" in data and "cluster" not in data


class _Groups:
    """Ansible's group tree, flattened: hosts with their vars, groups with vars and children."""

    def __init__(self) -> None:
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.group_hosts: dict[str, list[str]] = {}
        self.group_vars: dict[str, dict[str, Any]] = {}
        self.children: dict[str, list[str]] = {}

    def add_host(self, group: str, host: str, variables: dict[str, Any] | None) -> None:
        self.host_vars.setdefault(host, {}).update(variables or {})
        self.group_hosts.setdefault(group, [])
        if host not in self.group_hosts[group]:
            self.group_hosts[group].append(host)

    def members(self, group: str, _seen: frozenset[str] = frozenset()) -> list[str]:
        if group in _seen:
            return []
        found = list(self.group_hosts.get(group, []))
        for child in self.children.get(group, []):
            found += [h for h in self.members(child, _seen | {group}) if h not in found]
        return found

    def groups_of(self, host: str) -> list[str]:
        names = set(self.group_hosts) | set(self.children) | set(self.group_vars)
        return sorted(g for g in names if host in self.members(g))


def from_ini(text: str, base: Path) -> YamlDocument:
    groups = _Groups()
    problems: list[Problem] = []
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.match(r"^\[([^\]:]+)(?::(vars|children))?\]$", line)
        if header:
            section, kind = header.group(1), header.group(2) or "hosts"
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            problems.append(Problem(f"[{section}]", f"cannot parse {line!r}: {exc}", number))
            continue
        if kind == "children":
            groups.children.setdefault(section, []).append(words[0])
        elif kind == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                problems.append(Problem(f"[{section}:vars]", f"expected key=value, got {line!r}", number))
                continue
            groups.group_vars.setdefault(section, {})[key.strip()] = _ini_value(value.strip())
        else:
            if re.search(r"\[\w+:\w+\]", words[0]):
                problems.append(Problem(f"[{section}]", f"host ranges like {words[0]!r} are not supported; "
                                                        "list each host on its own line", number))
                continue
            variables: dict[str, Any] = {}
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if not sep:
                    problems.append(Problem(f"[{section}]", f"expected key=value after the host name, "
                                                            f"got {word!r}", number))
                    continue
                variables[key] = _ini_value(value)
            groups.add_host(section, words[0], variables)
    return _translate(groups, base, problems)


def from_yaml(data: dict[str, Any], base: Path) -> YamlDocument:
    groups = _Groups()
    problems: list[Problem] = []

    def walk(name: str, body: Any, path: str) -> None:
        if body is None:
            return
        if not isinstance(body, dict):
            problems.append(Problem(path, "an Ansible group must be a mapping (hosts, children, vars)"))
            return
        for host, variables in (body.get("hosts") or {}).items():
            groups.add_host(name, str(host), variables if isinstance(variables, dict) else {})
        groups.group_vars.setdefault(name, {}).update(body.get("vars") or {})
        for child, child_body in (body.get("children") or {}).items():
            groups.children.setdefault(name, []).append(str(child))
            walk(str(child), child_body, f"{path}.children.{child}")

    walk("all", data.get("all"), "all")
    return _translate(groups, base, problems)


def _ini_value(value: str) -> Any:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _group_vars_files(base: Path, problems: list[Problem]) -> dict[str, Any]:
    """kubespray keeps cluster settings in group_vars/ beside the inventory; read them in precedence order.

    A file that is not plain YAML (an ansible-vault file, say) is skipped with a warning naming it, so
    that nobody wonders why a setting in it had no effect.
    """
    merged: dict[str, Any] = {}
    for group in CLUSTER_GROUPS:
        candidates = [base / "group_vars" / f"{group}.yml", base / "group_vars" / f"{group}.yaml"]
        folder = base / "group_vars" / group
        if folder.is_dir():
            candidates += sorted(folder.glob("*.yml")) + sorted(folder.glob("*.yaml"))
        for file in candidates:
            if file.is_file():
                try:
                    content = yaml.safe_load(file.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) else "not plain YAML"
                    problems.append(Problem(str(file.relative_to(base)), f"not read ({reason}); its settings are "
                                            "ignored: decrypt it or set them in the inventory", severity="warning"))
                    continue
                if isinstance(content, dict):
                    merged.update(content)
    return merged


def _translate(groups: _Groups, base: Path, problems: list[Problem]) -> YamlDocument:
    cluster_vars = _group_vars_files(base, problems)
    for group in CLUSTER_GROUPS:
        cluster_vars.update(groups.group_vars.get(group, {}))

    native: dict[str, Any] = {"cluster": {"name": _cluster_name(cluster_vars, base)}, "hosts": {}}
    for var, path in CLUSTER_VARS.items():
        value = cluster_vars.get(var)
        if value is None or (isinstance(value, str) and "{{" in value):
            continue  # a Jinja expression only Ansible can evaluate; kbuild's default applies
        if var == "kube_proxy_mode" and value not in ("iptables", "nftables", "ipvs"):
            continue
        target = native
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    balancer = cluster_vars.get("loadbalancer_apiserver")
    if isinstance(balancer, dict) and balancer.get("address"):
        port = balancer.get("port")
        native["cluster"]["api_endpoint"] = f"{balancer['address']}:{port}" if port else str(balancer["address"])

    bastions = groups.members("bastion")
    if bastions:
        b = _effective_vars(groups, bastions[0])
        bastion: dict[str, Any] = {"host": str(b.get("ansible_host", bastions[0]))}
        if b.get("ansible_port") is not None:
            bastion["port"] = b["ansible_port"]
        if b.get("ansible_user") is not None:
            bastion["user"] = b["ansible_user"]
        native["ssh"] = {"bastion": bastion}

    for host in groups.host_vars:  # a dict: inventory order
        roles = [role for group, role in ROLE_GROUPS.items() if host in groups.members(group)]
        roles = list(dict.fromkeys(roles))
        if not roles:
            continue  # not part of the Kubernetes cluster (a bastion, a load balancer, ...)
        variables = _effective_vars(groups, host)
        spec: dict[str, Any] = {"roles": roles}
        address = variables.get("ip") or variables.get("access_ip") or variables.get("ansible_host")
        if address is None:
            problems.append(Problem(f"hosts.{host}", "needs an address: set `ip` (or `ansible_host`) for it"))
            continue
        spec["address"] = str(address)
        ssh = {key: variables[var] for var, key in HOST_SSH_VARS.items() if variables.get(var) is not None}
        if ssh.get("host") == spec["address"]:
            del ssh["host"]
        if ssh:
            spec["ssh"] = ssh
        native["hosts"][host] = spec
    if not native["hosts"]:
        problems.append(Problem("", "no host is in the etcd, kube_control_plane or kube_node groups"))
    return YamlDocument(native, problems=problems)


def _effective_vars(groups: _Groups, host: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for group in ["all", *[g for g in groups.groups_of(host) if g != "all"]]:
        merged.update(groups.group_vars.get(group, {}))
    merged.update(groups.host_vars.get(host, {}))
    return merged


def _cluster_name(variables: dict[str, Any], base: Path) -> str:
    name = variables.get("kbuild_cluster_name")
    if isinstance(name, str) and name:
        return name
    # kubespray's `cluster_name` is a DNS domain (cluster.local), so the inventory's folder names the
    # cluster, as in inventory/<name>/hosts.yaml.
    folder = re.sub(r"[^a-z0-9-]+", "-", base.resolve().name.lower()).strip("-")
    return folder[:63] or "cluster"
