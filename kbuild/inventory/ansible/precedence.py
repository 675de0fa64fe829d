"""Each host's variables merged in Ansible's order of precedence, every value keeping its origin.

Lowest to highest (Ansible's default VARIABLE_PRECEDENCE, then the host's own):
  1. the inventory's vars of `all`
  2. the inventory's vars of the host's other groups, sorted by depth, then ansible_group_priority,
     then name (so a child group beats its parent)
  3. group_vars/all
  4. group_vars/<group> for those groups, in the same order
  5. the host's vars in the inventory
  6. host_vars/<host>
So any group_vars file beats every group's inventory vars: `[all:vars]` loses to group_vars/all.yml.
"""

from __future__ import annotations

from functools import cache

from kbuild.inventory.ansible.data import Inventory, Var
from kbuild.inventory.ansible.varsfiles import VarsFiles


class Resolver:
    """Group membership and merged variables for the hosts of one parsed inventory."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.files = VarsFiles(inventory)
        self._parents = {name: [p for p, g in inventory.groups.items() if name in g.children]
                         for name in inventory.groups}
        self.depth = cache(self._depth)

    def _depth(self, group: str) -> int:
        parents = self._parents.get(group, [])
        return max((self.depth(p) + 1 for p in parents), default=0)

    def groups_of(self, host: str) -> list[str]:
        """Every group the host is in, directly or through children, sorted as Ansible merges them."""
        found: set[str] = set()
        stack = [name for name, group in self.inventory.groups.items() if host in group.hosts]
        while stack:
            name = stack.pop()
            if name not in found:
                found.add(name)
                stack += self._parents.get(name, [])
        found.add("all")
        groups = self.inventory.groups
        return sorted(found, key=lambda g: (self.depth(g), groups[g].priority, g))

    def host_vars(self, host: str) -> dict[str, Var]:
        groups = [g for g in self.groups_of(host) if g != "all"]
        merged: dict[str, Var] = dict(self.inventory.groups["all"].vars)
        for group in groups:
            merged.update(self.inventory.groups[group].vars)
        merged.update(self.files.for_group("all"))
        for group in groups:
            merged.update(self.files.for_group(group))
        merged.update(self.inventory.hosts[host])
        merged.update(self.files.for_host(host))
        return merged
