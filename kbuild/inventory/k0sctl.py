"""A k0sctl.yaml (apiVersion k0sctl.k0sproject.io/v1beta1, kind Cluster) as a kbuild inventory document.

Roles: controller -> etcd + control-plane (k0s controllers run etcd), worker -> worker,
controller+worker and single -> all three. spec.k0s.config is k0s's ClusterConfig: its api and
network sections map to kbuild's cluster settings; what kbuild cannot do is a warning.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from pathlib import Path
from typing import Any

from kbuild.inventory.ansible.yamlfiles import load_ansible_yaml
from kbuild.inventory.model import DNS_LABEL, DNS_NAME
from kbuild.inventory.translation import Locate, Origin, Translation
from kbuild.inventory.yamlsource import KeyPath, dotted
from kbuild.releases import minor_of

ROLES = {
    "controller": ["etcd", "control-plane"],
    "worker": ["worker"],
    "controller+worker": ["etcd", "control-plane", "worker"],
    "single": ["etcd", "control-plane", "worker"],
}
K0S_VERSION = re.compile(r"^v?(\d+\.\d+\.\d+)(?:\+k0s\.\d+)?$")
# Host keys with no kbuild equivalent, and what kbuild does instead.
HOST_WARNINGS = {
    "hooks": "kbuild runs no hooks; run such commands with `kbuild exec` before or after",
    "files": "kbuild uploads no extra files; images go in artifacts.images, anything else is yours to copy",
    "environment": "kbuild sets no environment for its services",
    "uploadBinary": "kbuild always uploads the binaries from the controller (artifacts.transfer: push)",
    "k0sBinaryPath": "kbuild installs the upstream Kubernetes binaries, not k0s",
    "os": "kbuild detects the host's OS itself",
    "dataDir": "kbuild uses its fixed paths (etcd.data_dir for etcd's data)",
    "privateInterface": "set the address (privateAddress) instead",
    "noTaints": "kbuild puts no taint on control planes that are workers",
    "winRM": "kbuild reaches hosts over SSH only",
    "localhost": "kbuild reaches hosts over SSH, the controller too",
    "openSSH": "kbuild uses its own SSH client (paramiko); write the address, user and key under ssh",
}
KUBELET_ARGS = "--kubelet-extra-args"


def translate(file: Path, text: str) -> Translation:
    doc = load_ansible_yaml(text)
    out = Translation({"cluster": {}, "hosts": {}})
    data: Any = doc.data

    def origin(path: KeyPath) -> Origin:
        return Origin(file, doc.line_of(path), dotted(path))

    def mapping(path: KeyPath) -> dict[str, Any]:
        """The mapping at `path` ({} when absent); anything else is an error naming the place."""
        value: Any = data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return {}
        if not isinstance(value, dict):
            out.error(dotted(path), origin(path), f"must be a mapping, got {type(value).__name__}")
            return {}
        return value

    if data.get("kind") != "Cluster":
        out.error("kind", origin(("kind",)), f"{data.get('kind')!r}: kbuild reads k0sctl files of kind Cluster")
        return out
    spec = mapping(("spec",))
    name = str(mapping(("metadata",)).get("name") or "")
    if DNS_LABEL.match(name):
        out.set(("cluster", "name"), name, "metadata.name", origin(("metadata", "name")))
    else:
        folder = re.sub(r"[^a-z0-9-]+", "-", file.resolve().parent.name.lower()).strip("-")[:63].strip("-")
        out.set(("cluster", "name"), folder or "cluster", "the file's folder name", Origin(file))
        if name:
            out.warn("metadata.name", origin(("metadata", "name")),
                     f"{name!r} is not a DNS label; the cluster is named {out.native['cluster']['name']!r}")

    k0s = mapping(("spec", "k0s"))
    version = k0s.get("version")
    kube_minor = None
    if version is not None:
        match = K0S_VERSION.match(str(version))
        if match:
            out.set(("cluster", "versions", "kubernetes"), match.group(1), "spec.k0s.version",
                    origin(("spec", "k0s", "version")))
            kube_minor = minor_of(match.group(1))
        else:
            out.error("spec.k0s.version", origin(("spec", "k0s", "version")),
                      f"{version!r} is not a k0s version like 1.37.2+k0s.0")
    for key in ("versionChannel", "dynamicConfig"):
        if k0s.get(key):
            out.warn(f"spec.k0s.{key}", origin(("spec", "k0s", key)), "not used: kbuild installs the version in "
                                                                       "cluster.versions and has no dynamic config")
    base = ("spec", "k0s", "config", "spec")
    _cluster_config(out, {key: mapping(base + (key,)) for key in ("api", "network", "storage")},
                    mapping(base), origin)
    if any(p.severity == "error" for p in out.problems):
        return out

    hosts = spec.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        out.error("spec.hosts", origin(("spec", "hosts")), "must be a list of hosts, with at least one")
        return out
    counters: dict[str, int] = {}
    for index, host in enumerate(hosts):
        _host(out, host, ("spec", "hosts", str(index)), counters, kube_minor, origin)
    return out


def _cluster_config(out: Translation, sections: dict[str, dict[str, Any]], config: dict[str, Any],
                    origin: Locate) -> None:
    base = ("spec", "k0s", "config", "spec")
    api = sections["api"]
    if api.get("externalAddress"):
        port = api.get("port")
        value = f"{api['externalAddress']}:{port}" if port else str(api["externalAddress"])
        out.set(("cluster", "api_endpoint"), value, "api.externalAddress", origin(base + ("api", "externalAddress")))
    elif api.get("port"):
        out.set(("cluster", "api_port"), api["port"], "api.port", origin(base + ("api", "port")))
    if api.get("sans"):
        sans = api["sans"] if isinstance(api["sans"], list) else [api["sans"]]
        out.set(("cluster", "extra_sans"), [str(s) for s in sans], "api.sans", origin(base + ("api", "sans")))
    network = sections["network"]
    for key, target in (("podCIDR", "pod_cidr"), ("serviceCIDR", "service_cidr"), ("clusterDomain", "cluster_domain")):
        if network.get(key):
            out.set(("cluster", target), str(network[key]), f"network.{key}", origin(base + ("network", key)))
    provider = network.get("provider")
    if provider == "custom":
        out.set(("cluster", "cni"), "none", "network.provider", origin(base + ("network", "provider")))
    elif provider:
        out.warn("network.provider", origin(base + ("network", "provider")),
                 f"{provider}: {provider} is not installed by kbuild; the pod network is the bridge CNI")
    proxy = network.get("kubeProxy") if isinstance(network.get("kubeProxy"), dict) else {}
    if proxy.get("mode"):
        out.set(("cluster", "proxy_mode"), proxy["mode"], "network.kubeProxy.mode",
                origin(base + ("network", "kubeProxy", "mode")))
    if proxy.get("disabled"):
        out.warn("network.kubeProxy.disabled", origin(base + ("network", "kubeProxy", "disabled")),
                 "kbuild always runs kube-proxy")
    storage = sections["storage"]
    if storage.get("type") and storage["type"] != "etcd":
        out.warn("storage.type", origin(base + ("storage", "type")), f"{storage['type']}: kbuild runs etcd")
    for key in sorted(set(config) - {"api", "network", "storage"}):
        out.warn(key, origin(base + (key,)), "not used: kbuild has no such setting (see its cluster section)")


def _host(out: Translation, host: Any, path: KeyPath, counters: dict[str, int], kube_minor: Any,
          origin: Locate) -> None:
    if not isinstance(host, dict):
        out.error(dotted(path), origin(path), "a host must be a mapping with ssh and role")
        return
    role = host.get("role")
    if role not in ROLES:
        out.error("role", origin(path + ("role",)), f"{role!r} is not a k0sctl role: controller, worker, "
                                                    "controller+worker or single")
        return
    ssh = host.get("ssh")
    if not isinstance(ssh, dict) or not ssh.get("address"):
        out.error("ssh.address", origin(path + ("ssh",)), "the host needs ssh.address (kbuild reaches hosts over SSH)")
        return
    name = str(host.get("hostname") or "")
    if not name:
        kind = "controller" if role != "worker" else "worker"
        counters[kind] = counters.get(kind, 0) + 1
        name = f"{kind}-{counters[kind]}"
    elif not DNS_NAME.match(name):
        out.error("hostname", origin(path + ("hostname",)), f"{name!r} is not a valid node name (a DNS subdomain)")
        return
    target: KeyPath = ("hosts", name)
    out.set(target + ("roles",), ROLES[role], "role", origin(path + ("role",)))
    ssh_address = str(ssh["address"])
    if host.get("privateAddress"):
        out.set(target + ("address",), str(host["privateAddress"]), "privateAddress",
                origin(path + ("privateAddress",)))
        out.set(target + ("ssh", "host"), ssh_address, "ssh.address", origin(path + ("ssh", "address")))
    elif _is_ip(ssh_address):
        out.set(target + ("address",), ssh_address, "ssh.address", origin(path + ("ssh", "address")))
    else:
        out.error("ssh.address", origin(path + ("ssh", "address")), f"{ssh_address!r} is a name: set privateAddress "
                                                                    "to the host's IP address (kbuild does not guess)")
        return
    for key, field in (("user", "user"), ("port", "port"), ("keyPath", "key_file")):
        if ssh.get(key) is not None:
            out.set(target + ("ssh", field), ssh[key], f"ssh.{key}", origin(path + ("ssh", key)))
    if "user" not in ssh:  # k0sctl's default user is root, kbuild's too; said so in the file
        out.set(target + ("ssh", "user"), "root", "ssh.user (k0sctl's default)", origin(path + ("ssh",)))
    bastion = ssh.get("bastion")
    if bastion is not None and not (isinstance(bastion, dict) and bastion.get("address")):
        out.error("ssh.bastion", origin(path + ("ssh", "bastion")), "must be a mapping with address (and user, "
                                                                    "port, keyPath)")
    elif bastion is not None:
        converted = {"host": str(bastion["address"])}
        for key, field in (("user", "user"), ("port", "port"), ("keyPath", "key_file")):
            if bastion.get(key) is not None:
                converted[field] = bastion[key]
        out.set(target + ("ssh", "bastion"), converted, "ssh.bastion", origin(path + ("ssh", "bastion")))
    if ssh.get("hostKey"):
        out.warn("ssh.hostKey", origin(path + ("ssh", "hostKey")), "not used: kbuild records host keys on first "
                                                                   "contact (ssh.host_key_policy)")
    for key, note in HOST_WARNINGS.items():
        if host.get(key):
            out.warn(key, origin(path + (key,)), f"{name}: {note}")
    flags = host.get("installFlags") or []
    if not isinstance(flags, list):
        out.error("installFlags", origin(path + ("installFlags",)), "must be a list of flags")
        return
    for flag in flags:
        _install_flag(out, str(flag), target, kube_minor, origin(path + ("installFlags",)))


def _install_flag(out: Translation, flag: str, target: KeyPath, kube_minor: Any, where: Origin) -> None:
    """k0s install flags: labels and taints, and kubelet flags inside --kubelet-extra-args, have a kbuild place."""
    name, _, value = flag.partition("=")
    value = value.strip("\"'")
    if name == "--labels":
        labels = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        out.set(target + ("labels",), labels, "installFlags --labels", where)
    elif name == "--taints":
        out.set(target + ("taints",), [t for t in value.split(",") if t], "installFlags --taints", where)
    elif name == KUBELET_ARGS:
        # Imported here: kbuild.render imports the artifact catalogue, which imports this package.
        from kbuild.render.flagdata import known_flags

        known = known_flags("kubelet", kube_minor) if kube_minor else None
        for arg in shlex.split(value):
            flag_name, _, flag_value = arg.removeprefix("--").partition("=")
            if known is not None and flag_name not in known:
                out.warn("installFlags", where, f"{KUBELET_ARGS}: the kubelet has no flag --{flag_name}; dropped")
                continue
            out.set(target + ("extra_flags", "kubelet", flag_name), flag_value or "true",
                    f"installFlags {KUBELET_ARGS}", where)
    else:
        out.warn("installFlags", where, f"{flag}: a k0s flag with no kbuild equivalent; dropped")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False
