"""Ansible inventories (INI, YAML, directories, `ansible-inventory --list` JSON) read as Ansible reads them.

sources.py parses (ini.py, yamlinv.py, listjson.py), precedence.py merges each host's variables
(with varsfiles.py for group_vars/ and host_vars/), templating.py resolves `{{ var }}`,
connection.py turns variables into how to log in, kubespray.py into kbuild's cluster settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kbuild.inventory.ansible.data import Inventory, Var
from kbuild.inventory.ansible.precedence import Resolver
from kbuild.inventory.ansible.sources import read_inventory


@dataclass
class ResolvedInventory:
    """An Ansible inventory with group membership and every host's variables resolved."""

    inventory: Inventory
    resolver: Resolver

    @property
    def hosts(self) -> list[str]:
        return list(self.inventory.hosts)

    def groups_of(self, host: str) -> list[str]:
        return self.resolver.groups_of(host)

    def host_vars(self, host: str) -> dict[str, Var]:
        return self.resolver.host_vars(host)


def read(path: Path) -> ResolvedInventory:
    inventory = read_inventory(path)
    resolved = ResolvedInventory(inventory, Resolver(inventory))
    resolved.resolver.files.warn_about_unused()
    return resolved
