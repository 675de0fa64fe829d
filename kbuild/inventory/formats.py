"""Which kind of inventory a file is: kbuild's own, `inventory check --json` output, Ansible, or k0sctl."""

from __future__ import annotations

import re
from pathlib import Path

from kbuild.inventory.ansible.yamlfiles import load_ansible_yaml

INI_SUFFIXES = (".ini", ".cfg")
INI_SECTION = re.compile(r"^\s*\[[^\]]+\]\s*(?:[#;].*)?$", re.M)
K0SCTL_API = "k0sctl.k0sproject.io/"


def kind_of(file: Path, text: str) -> str:
    """"native", "check-json", "k0sctl" or "ansible" (INI, YAML or `--list` JSON)."""
    if file.suffix in INI_SUFFIXES:
        return "ansible"
    doc = load_ansible_yaml(text)  # lenient: an Ansible file may hold !vault values or repeated keys
    data = doc.data
    if not isinstance(data, dict):
        if file.suffix in (".yaml", ".yml", ".json"):
            return "native"  # not even a mapping: reported as a kbuild file would be
        return "ansible" if INI_SECTION.search(text) or data is None or isinstance(data, str) else "native"
    if str(data.get("apiVersion", "")).startswith(K0SCTL_API):
        return "k0sctl"
    inventory = data.get("inventory")
    if isinstance(inventory, dict) and "cluster" in inventory:
        return "check-json"
    if "cluster" in data or "hosts" in data:
        return "native"
    return "ansible"
