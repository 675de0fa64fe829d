"""Ansible's inventory as data: groups, hosts and variables, each value remembering the file and line it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbuild.errors import Problem
from kbuild.inventory.translation import Origin

__all__ = ["Group", "Inventory", "Origin", "Var"]


@dataclass(frozen=True)
class Var:
    value: Any
    origin: Origin


@dataclass
class Group:
    name: str
    origin: Origin
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Var] = field(default_factory=dict)
    priority: int = 1  # ansible_group_priority: orders groups of the same depth


@dataclass
class Inventory:
    """What Ansible's InventoryData holds once every source is parsed, before variables are merged."""

    sources: list[Path] = field(default_factory=list)  # inventory files and directories, in Ansible's order
    groups: dict[str, Group] = field(default_factory=dict)
    hosts: dict[str, dict[str, Var]] = field(default_factory=dict)  # inventory order, the host's own vars
    host_origins: dict[str, Origin] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def group(self, name: str, origin: Origin) -> Group:
        if name not in self.groups:
            self.groups[name] = Group(name, origin)
        return self.groups[name]

    def add_host(self, name: str, group: str, origin: Origin, port: int | None = None) -> None:
        if name not in self.hosts:
            self.hosts[name] = {}
            self.host_origins[name] = origin
            if port is not None:  # Ansible takes host:port only where the host first appears
                self.hosts[name]["ansible_port"] = Var(port, origin)
        members = self.group(group, origin).hosts
        if name not in members:
            members.append(name)

    def set_group_var(self, group: str, key: str, value: Any, origin: Origin) -> None:
        if key == "ansible_group_priority":  # Ansible keeps it out of the variables: it orders groups
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                self.error(origin, f"ansible_group_priority must be a number, got {value!r}")
            return
        self.groups[group].vars[key] = Var(value, origin)

    def add_child(self, parent: str, child: str, origin: Origin) -> None:
        if parent == child or parent in self.descendants(child):
            self.error(origin, f"group {child!r} as a child of {parent!r} makes a loop "
                               f"({' -> '.join(self._path(child, parent) + [child])})")
            return
        children = self.group(parent, origin).children
        if child not in children:
            children.append(child)
        self.group(child, origin)

    def descendants(self, name: str) -> set[str]:
        found: set[str] = set()
        stack = list(self.groups[name].children) if name in self.groups else []
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack += self.groups[current].children
        return found

    def _path(self, start: str, goal: str) -> list[str]:
        if start == goal:
            return [start]
        for child in self.groups[start].children:
            path = self._path(child, goal)
            if path:
                return [start, *path]
        return []

    def error(self, origin: Origin, message: str, place: str = "") -> None:
        self.problems.append(Problem(place or origin.detail, message, origin.line, "error", str(origin.file)))

    def warn(self, origin: Origin, message: str, place: str = "") -> None:
        self.problems.append(Problem(place or origin.detail, message, origin.line, "warning", str(origin.file)))
