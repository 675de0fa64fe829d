"""A resolved Ansible inventory in kubespray's layout turned into a kbuild inventory document, every value traced.

The result is kbuild's own format (validated afterwards like any kbuild file); `origins` maps each
path in it to the Ansible variable and file:line it came from, so that a bad value is reported
under the name the user wrote, where they wrote it.
"""

from __future__ import annotations

import difflib
import getpass
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

from kbuild.errors import Problem
from kbuild.inventory.ansible import ResolvedInventory
from kbuild.inventory.ansible.connection import CONNECTION_VARS, Login, login
from kbuild.inventory.ansible.data import Var
from kbuild.inventory.ansible.kubespray_vars import (
    BASTION_GROUP,
    MAPPED,
    NETWORK_PLUGIN_NOTE,
    PROXY_MODES,
    ROLE_GROUPS,
    is_known,
    warning_for,
)
from kbuild.inventory.ansible.templating import Unresolved, has_template, resolve
from kbuild.inventory.ansible.yamlfiles import VaultValue
from kbuild.inventory.model import DNS_LABEL
from kbuild.inventory.translation import Origin, Traced, Translation
from kbuild.inventory.yamlsource import KeyPath

# Variables Ansible itself sets or that only steer Ansible: never a kbuild setting, never worth a warning.
ANSIBLE_OWN = frozenset({"inventory_file", "inventory_dir", "ansible_group_priority"})
HOST_VARS = frozenset({"ip", "access_ip", "node_labels", "node_taints"})


class _HostView:
    """One host's merged variables, with `{{ }}` references resolved and unusable values reported once."""

    def __init__(self, name: str, variables: dict[str, Var], out: Translation, reported: set[tuple[str, Origin]]):
        self.name = name
        self.vars = variables
        self.values: dict[str, Any] = {}
        for key, var in variables.items():
            value = var.value
            if isinstance(value, VaultValue):
                self._report(out, reported, key, var.origin, "encrypted with ansible-vault (!vault): kbuild cannot "
                                                            "decrypt it, so it is not used")
                continue
            if has_template(value):
                resolved = resolve(value, variables, name)
                if isinstance(resolved, Unresolved):
                    if key in CONNECTION_VARS or key in HOST_VARS or is_known(key):
                        self._report(out, reported, key, var.origin, f"{value!r} {resolved.reason}; it is not used")
                    else:
                        self.values[key] = value  # not a setting kbuild reads: kept only to be named as ignored
                    continue
                value = resolved
            self.values[key] = value

    @staticmethod
    def _report(out: Translation, reported: set[tuple[str, Origin]], key: str, origin: Origin, message: str) -> None:
        if (key, origin) not in reported:
            reported.add((key, origin))
            out.warn(key, origin, message)


def translate(inventory: ResolvedInventory, source: Path) -> Translation:
    out = Translation({"cluster": {}, "hosts": {}})
    reported: set[tuple[str, Origin]] = set()
    members = {h: inventory.groups_of(h) for h in inventory.hosts}
    views = {h: _HostView(h, inventory.host_vars(h), out, reported) for h in inventory.hosts}
    out.problems[:0] = inventory.inventory.problems  # reading the vars files above may have added some
    cluster_hosts = [h for h in inventory.hosts if any(g in ROLE_GROUPS for g in members[h])]
    if not cluster_hosts:
        out.error("", Origin(source), "no host is in a kubespray group (kube_control_plane, etcd, kube_node, or the "
                                      "older kube-master, kube-node): kbuild does not know which host does what")
        return out

    _cluster_settings(out, [views[h] for h in cluster_hosts], source)
    _bastion(out, inventory, views, members)
    logins_without_user: list[str] = []
    for name in cluster_hosts:
        roles = list(dict.fromkeys(ROLE_GROUPS[g] for g in ROLE_GROUPS if g in members[name]))
        _host(out, views[name], roles, inventory.inventory.host_origins[name], logins_without_user,
              reported)
    if logins_without_user:
        out.warn("ansible_user", Origin(source), f"not set for {', '.join(logins_without_user)}: Ansible logs in "
                                                 f"as your local user ({getpass.getuser()}), so kbuild does too")
    return out


def _agreed(out: Translation, views: list[_HostView], name: str) -> tuple[Any, Origin] | None:
    """A cluster-wide variable's one value over the cluster's hosts; an error when hosts disagree."""
    seen: dict[str, tuple[str, Any, Origin]] = {}
    for view in views:
        if name in view.values:
            seen.setdefault(json.dumps(view.values[name], sort_keys=True, default=str),
                            (view.name, view.values[name], view.vars[name].origin))
    if not seen:
        return None
    if len(seen) > 1:
        first, *others = seen.values()
        detail = "; ".join(f"{v!r} for {h} ({o})" for h, v, o in (first, *others))
        out.error(name, first[2], f"differs between hosts ({detail}): kbuild applies one value to the whole cluster")
        return None
    _, value, origin = next(iter(seen.values()))
    return value, origin


def _cluster_settings(out: Translation, views: list[_HostView], source: Path) -> None:
    names = sorted({k for v in views for k in v.values})
    unread: list[str] = []
    for name in names:
        if name in CONNECTION_VARS or name in HOST_VARS or name in ANSIBLE_OWN:
            continue  # per host: read in _host
        if name in MAPPED or name in _SPECIAL:
            agreed = _agreed(out, views, name)
            if agreed is not None:
                (_mapped if name in MAPPED else _SPECIAL[name])(out, name, *agreed, views)
            continue
        # Not a kbuild setting: one warning for each place it is written.
        places = {v.vars[name].origin: v.values[name] for v in views if name in v.values}
        for origin, value in places.items():
            note = warning_for(name, value)
            if note:
                out.warn(name, origin, f"{value}: {note}" if isinstance(value, (str, int, float)) else note)
            elif not is_known(name):
                unread.append(f"{name} ({origin})")
    if unread:
        out.problems.append(Problem("", "not settings kbuild reads, so ignored: " + ", ".join(unread),
                                    severity="warning", file=str(source)))
    if "name" not in out.native["cluster"]:
        folder = re.sub(r"[^a-z0-9-]+", "-", source.resolve().parent.name.lower() if source.is_file()
                        else source.resolve().name.lower()).strip("-")[:63].strip("-")
        out.set(("cluster", "name"), folder or "cluster", "the inventory's folder name", Origin(source))


def _mapped(out: Translation, name: str, value: Any, origin: Origin, views: list[_HostView]) -> None:
    path = MAPPED[name]
    if name == "kube_proxy_mode" and value not in PROXY_MODES:
        close = difflib.get_close_matches(str(value), PROXY_MODES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; kbuild supports {', '.join(PROXY_MODES)}"
        out.error(name, origin, f"{value!r} is not a kube-proxy mode{hint}")
        return
    if name == "supplementary_addresses_in_ssl_keys":
        if not isinstance(value, list):
            out.error(name, origin, f"must be a list of names and addresses, got {value!r}")
            return
        value = [str(v) for v in value] + out.native["cluster"].get("extra_sans", [])
    if name == "upstream_dns_servers" and not isinstance(value, list):
        out.error(name, origin, f"must be a list of addresses, got {value!r}")
        return
    if path[-2:] == ("kube-apiserver", "service-node-port-range"):
        value = str(value)
    out.set(path, value, name, origin)


def _cluster_name(out: Translation, name: str, value: Any, origin: Origin, views: list[_HostView]) -> None:
    if isinstance(value, str) and DNS_LABEL.match(value):
        out.set(("cluster", "name"), value, "cluster_name", origin)


def _load_balancer(out: Translation, name: str, value: Any, origin: Origin, views: list[_HostView]) -> None:
    if not isinstance(value, dict) or not value.get("address"):
        out.error("loadbalancer_apiserver", origin, f"must be a mapping with address (and port), got {value!r}")
        return
    domain = _agreed(out, views, "apiserver_loadbalancer_domain_name")
    host = str(domain[0]) if domain else str(value["address"])
    port = value.get("port")
    out.set(("cluster", "api_endpoint"), f"{host}:{port}" if port else host, "loadbalancer_apiserver", origin)
    if domain:
        out.native["cluster"].setdefault("extra_sans", [])
        if str(value["address"]) not in out.native["cluster"]["extra_sans"]:
            out.native["cluster"]["extra_sans"].append(str(value["address"]))


def _domain_name(out: Translation, name: str, value: Any, origin: Origin, views: list[_HostView]) -> None:
    sans = out.native["cluster"].setdefault("extra_sans", [])
    if str(value) not in sans:
        sans.append(str(value))
        out.origins.setdefault(("cluster", "extra_sans"), Traced("apiserver_loadbalancer_domain_name", origin))


def _network_plugin(out: Translation, name: str, value: Any, origin: Origin, views: list[_HostView]) -> None:
    if str(value) in ("cni", "none"):
        out.set(("cluster", "cni"), "none", "kube_network_plugin", origin)
    else:
        out.warn("kube_network_plugin", origin, f"{value}: {value} {NETWORK_PLUGIN_NOTE}")


def _dns_mode(out: Translation, name: str, value: Any, origin: Origin, views: list[_HostView]) -> None:
    if str(value) == "none":
        out.set(("cluster", "addons", "coredns", "enabled"), False, "dns_mode", origin)
    elif str(value) != "coredns":
        out.warn("dns_mode", origin, f"{value}: kbuild deploys CoreDNS alone (dns_mode: coredns)")


_SPECIAL = {
    "cluster_name": _cluster_name,
    "loadbalancer_apiserver": _load_balancer,
    "apiserver_loadbalancer_domain_name": _domain_name,
    "kube_network_plugin": _network_plugin,
    "dns_mode": _dns_mode,
}


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
        return True
    except ValueError:
        return False


def _bastion(out: Translation, inventory: ResolvedInventory, views: dict[str, _HostView],
             members: dict[str, list[str]]) -> None:
    bastions = [h for h in inventory.hosts if BASTION_GROUP in members[h]]
    if not bastions:
        return
    view = views[bastions[0]]
    jump = login(view.name, view.vars, view.values)
    origin = inventory.inventory.host_origins[view.name]
    if len(bastions) > 1:
        out.warn("bastion", origin, f"{len(bastions)} hosts in the bastion group; kbuild jumps through the first, "
                                    f"{view.name}")
    bastion: dict[str, Any] = {"host": jump.host}
    if jump.port != 22:
        bastion["port"] = jump.port
    if "user" in jump.origins:
        bastion["user"] = jump.user
    if jump.key_file:
        bastion["key_file"] = jump.key_file
    out.set(("ssh", "bastion"), bastion, "bastion", origin)


def _host(out: Translation, view: _HostView, roles: list[str], origin: Origin, no_user: list[str],
          reported: set[tuple[str, Origin]]) -> None:
    name, values = view.name, view.values
    path: KeyPath = ("hosts", name)
    out.set(path + ("roles",), roles, "groups", origin)
    how = login(name, view.vars, values)
    for variable, where, message in how.errors:
        out.error(variable, where, f"{name}: {message}")
    for variable, where, message in how.warnings:
        if (variable, where) not in reported:  # a group's variable: said once, not once per host
            reported.add((variable, where))
            out.warn(variable, where, message)
    address = _address(view, how)
    if address is None:
        out.error(name, origin, f"host {name} has no address: set `ip` (the address the cluster uses); "
                                f"ansible_host {how.host!r} is not an IP address, and kbuild does not guess")
    else:
        variable, value = address
        out.set(path + ("address",), str(value), variable, view.vars[variable].origin if variable in view.vars
                else origin)
    if how.host != name and (address is None or how.host != str(address[1])):
        out.set(path + ("ssh", "host"), how.host, *how.origins["host"])
    if "user" in how.origins:
        out.set(path + ("ssh", "user"), how.user, *how.origins["user"])
    else:
        out.set(path + ("ssh", "user"), how.user, "ansible_user not set: your local user, as Ansible", origin)
        no_user.append(name)
    if "port" in how.origins:
        out.set(path + ("ssh", "port"), how.port, *how.origins["port"])
    if "key_file" in how.origins:
        out.set(path + ("ssh", "key_file"), how.key_file, *how.origins["key_file"])
    if "become" in how.origins:
        out.set(path + ("ssh", "become"), how.become, *how.origins["become"])
    for variable, key in (("node_labels", "labels"), ("node_taints", "taints")):
        if variable in values:
            value = values[variable]
            if key == "labels" and isinstance(value, dict):
                value = {str(k): str(v) for k, v in value.items()}
            out.set(path + (key,), value, variable, view.vars[variable].origin)


def _address(view: _HostView, how: Login) -> tuple[str, Any] | None:
    """kubespray's order: `ip`, then `access_ip`, then the SSH address when it is an IP address."""
    for variable in ("ip", "access_ip"):
        if view.values.get(variable) is not None:
            return variable, view.values[variable]
    if _is_ip(how.host):
        return how.origins.get("host", ("inventory_hostname",))[0], how.host
    return None
