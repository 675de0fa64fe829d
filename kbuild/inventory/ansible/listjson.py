"""The JSON that `ansible-inventory --list` (or an inventory script) prints, read back as an inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kbuild.inventory.ansible.data import Inventory, Origin, Var
from kbuild.inventory.yamlsource import KeyPath, YamlDocument, dotted


def looks_like_list_output(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("_meta"), dict)


def read_list_output(doc: YamlDocument, file: Path, inventory: Inventory) -> None:
    data: dict[str, Any] = doc.data

    def origin(path: KeyPath) -> Origin:
        return Origin(file, doc.line_of(path), dotted(path))

    def names(value: Any, path: KeyPath) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            inventory.error(origin(path), "must be a list of names")
            return []
        return value

    for group, body in data.items():
        if group == "_meta":
            continue
        inventory.group(group, origin((group,)))
        if isinstance(body, list):  # the oldest script format: a group is its list of hosts
            body = {"hosts": body}
        if not isinstance(body, dict):
            inventory.error(origin((group,)), "a group must be a mapping with hosts, children and vars")
            continue
        for host in names(body.get("hosts"), (group, "hosts")):
            inventory.add_host(host, group, origin((group, "hosts")))
        variables = body.get("vars") or {}
        if not isinstance(variables, dict):
            inventory.error(origin((group, "vars")), "must be a mapping of variables")
            variables = {}
        for key, value in variables.items():
            inventory.set_group_var(group, str(key), value, origin((group, "vars", str(key))))
    # Children after every group exists: the output lists groups in any order.
    for group, body in data.items():
        if group != "_meta" and isinstance(body, dict):
            for child in names(body.get("children"), (group, "children")):
                inventory.add_child(group, child, origin((group, "children")))

    hostvars = data["_meta"].get("hostvars") or {}
    if not isinstance(hostvars, dict):
        inventory.error(origin(("_meta", "hostvars")), "must be a mapping of host name to variables")
        return
    for host, variables in hostvars.items():
        path = ("_meta", "hostvars", str(host))
        if not isinstance(variables, dict):
            inventory.error(origin(path), "must be a mapping of variables")
            continue
        if host not in inventory.hosts:
            inventory.add_host(str(host), "ungrouped", origin(path))
        for key, value in variables.items():
            inventory.hosts[str(host)][str(key)] = Var(value, origin(path + (str(key),)))
