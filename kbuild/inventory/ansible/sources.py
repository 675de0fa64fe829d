"""An inventory path (a file or a directory of them) read into one Inventory, in Ansible's order and formats."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from kbuild.inventory import textfile
from kbuild.inventory.ansible.data import Inventory, Origin
from kbuild.inventory.ansible.ini import read_ini
from kbuild.inventory.ansible.listjson import looks_like_list_output, read_list_output
from kbuild.inventory.ansible.yamlfiles import load_ansible_yaml
from kbuild.inventory.ansible.yamlinv import read_yaml_inventory

YAML_SUFFIXES = ("", ".yml", ".yaml", ".json")
# What Ansible skips in an inventory directory (INVENTORY_IGNORE_EXTS and the names it always skips).
IGNORED = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
                     r"(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$")


def read_inventory(path: Path) -> Inventory:
    """Parse `path` as Ansible would with `-i path`; problems are collected, never raised."""
    inventory = Inventory(sources=[path])
    root = Origin(path)
    inventory.group("all", root)
    inventory.group("ungrouped", root)
    inventory.add_child("all", "ungrouped", root)
    _read(path, inventory)
    reconcile(inventory)
    return inventory


def _read(path: Path, inventory: Inventory) -> None:
    if path.is_dir():
        for entry in sorted(path.iterdir(), key=lambda p: p.name):
            if not IGNORED.search(entry.name):
                _read(entry, inventory)
        return
    try:
        text = textfile.read_text(path, "Ansible inventory")
    except textfile.UnreadableFile as exc:
        inventory.error(Origin(path), exc.reason)
        return
    if text.startswith("#!"):
        inventory.error(Origin(path, 1), "an inventory script: kbuild does not run it; save what it prints with "
                                         f"`ansible-inventory -i {path.name} --list > hosts.json` and use that")
        return
    if path.suffix == ".toml":
        inventory.error(Origin(path), "TOML inventories are not read by kbuild: convert it to YAML or INI")
        return
    if path.suffix in YAML_SUFFIXES:
        doc = load_ansible_yaml(text)
        parsed_as_mapping = not any(p.severity == "error" for p in doc.problems) and isinstance(doc.data, dict)
        if parsed_as_mapping or path.suffix:  # a .yml that is no mapping is a YAML error, not INI
            for problem in doc.problems:
                inventory.problems.append(replace(problem, file=str(path)))
            if not any(p.severity == "error" for p in doc.problems):
                if looks_like_list_output(doc.data):
                    read_list_output(doc, path, inventory)
                else:
                    read_yaml_inventory(doc, path, inventory)
            return
    read_ini(text, path, inventory)


def reconcile(inventory: Inventory) -> None:
    """Ansible's last step: top-level groups become children of `all`; hosts in no group go to `ungrouped`."""
    parents = {child for group in inventory.groups.values() for child in group.children}
    for name, group in list(inventory.groups.items()):
        if name != "all" and name not in parents:
            inventory.add_child("all", name, group.origin)
    ungrouped = inventory.groups["ungrouped"]
    for host in inventory.hosts:
        direct = [g for g in inventory.groups.values() if host in g.hosts and g.name != "all"]
        if host in ungrouped.hosts and any(g.name != "ungrouped" for g in direct):
            ungrouped.hosts.remove(host)
        elif not direct:
            ungrouped.hosts.append(host)
        if host in inventory.groups:  # legal, but `bastion` the host and `bastion` the group are easily confused
            inventory.warn(inventory.host_origins[host], f"{host!r} names both a host and a group "
                                                         "(Ansible warns too)", place=host)
