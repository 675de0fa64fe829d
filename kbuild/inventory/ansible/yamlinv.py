"""Ansible's YAML inventory format (with or without an `all:` root), read the way its `yaml` plugin reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kbuild.inventory.ansible import hostpatterns
from kbuild.inventory.ansible.data import Inventory, Origin, Var
from kbuild.inventory.translation import Locate
from kbuild.inventory.yamlsource import KeyPath, YamlDocument, dotted

SECTIONS = ("vars", "children", "hosts")


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def read_yaml_inventory(doc: YamlDocument, file: Path, inventory: Inventory) -> None:
    """Add one YAML source: every top-level key is a group (`all` being one of them)."""
    data = doc.data

    def origin(path: KeyPath) -> Origin:
        return Origin(file, doc.line_of(path), dotted(path))

    if not isinstance(data, dict) or not data:
        inventory.error(Origin(file, 1), "a YAML inventory must be a mapping of group names "
                                         f"(all, etcd, ...), got {_kind(data) if data else 'an empty file'}")
        return
    if data.get("plugin"):
        inventory.error(origin(("plugin",)), f"this configures the inventory plugin {data['plugin']!r}, which "
                                             "kbuild cannot run: save its hosts with `ansible-inventory -i "
                                             f"{file.name} --list > hosts.json` and use that file")
        return
    for name, body in data.items():
        _group(str(name), body, (str(name),), origin, inventory)


def _group(name: str, body: Any, path: KeyPath, origin: Locate, inventory: Inventory) -> str:
    if body is not None and not isinstance(body, dict):
        inventory.warn(origin(path), f"skipped: a group must be a mapping with hosts, children or vars, got "
                                     f"{_kind(body)} (Ansible skips it too)")
        return name
    inventory.group(name, origin(path))
    if body is None:
        return name
    body = dict(body)
    for section in SECTIONS:
        if isinstance(body.get(section), str):  # Ansible reads `children: etcd` as `children: {etcd: }`
            body[section] = {body[section]: None}
        if section in body and not isinstance(body[section], (dict, type(None))):
            hint = {"hosts": "write `hosts: {node1: }` or one `node1:` per line",
                    "children": "write `children: {etcd: }` or one `etcd:` per line",
                    "vars": "write `vars: {key: value}` or one `key: value` per line"}[section]
            inventory.error(origin(path + (section,)), f"must be a mapping, got {_kind(body[section])}: {hint}")
            return name
    for key, value in body.items():
        key = str(key)
        if key not in SECTIONS:
            inventory.warn(origin(path + (key,)), f"unknown key {key!r} in group {name!r} skipped (Ansible skips "
                                                  "it too): only hosts, children and vars are read")
            continue
        if value is None:
            continue
        if key == "vars":
            for var, var_value in value.items():
                inventory.set_group_var(name, str(var), var_value, origin(path + (key, str(var))))
        elif key == "children":
            for child, child_body in value.items():
                child_name = _group(str(child), child_body, path + (key, str(child)), origin, inventory)
                inventory.add_child(name, child_name, origin(path + (key, str(child))))
        else:
            for pattern, host_vars in value.items():
                _host(name, pattern, host_vars, path + (key, str(pattern)), origin, inventory)
    return name


def _host(group: str, pattern: Any, host_vars: Any, path: KeyPath, origin: Locate,
          inventory: Inventory) -> None:
    where = origin(path)
    if not isinstance(pattern, str):
        inventory.error(where, f"host name {pattern!r} must be a string: quote it")
        return
    if host_vars is not None and not isinstance(host_vars, dict):
        inventory.error(where, f"host {pattern!r}: its variables must be a mapping, got {_kind(host_vars)}")
        return
    name, port = hostpatterns.split_port(pattern)
    try:
        names = hostpatterns.expand(name)
    except hostpatterns.PatternError as exc:
        inventory.error(where, str(exc))
        return
    for host in names:
        inventory.add_host(host, group, where, port)
        for var, value in (host_vars or {}).items():
            inventory.hosts[host][str(var)] = Var(value, origin(path + (str(var),)))
