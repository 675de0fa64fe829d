"""Ansible's INI inventory format, read the way its `ini` inventory plugin reads it."""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

from kbuild.inventory.ansible import hostpatterns
from kbuild.inventory.ansible.data import Inventory, Origin, Var

SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def parse_value(text: str) -> Any:
    """A value as Ansible's INI plugin types it: a Python literal if it is one (2222, True, [1, 2]), else text.

    So `ansible_become=true` stays the string "true" (Ansible's boolean options accept it), and
    `ansible_port=2222` is the number 2222.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def read_ini(text: str, file: Path, inventory: Inventory) -> None:
    """Add one INI source to `inventory`; problems carry the file and line."""
    # Groups may be named in [x:children] or [x:vars] before their own section: Ansible keeps them
    # pending and refuses the file only if they are never defined.
    pending: dict[str, tuple[str, Origin, list[str]]] = {}
    group, state = "ungrouped", "hosts"
    inventory.group("ungrouped", Origin(file, None))
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        origin = Origin(file, number, f"[{group}]" if state == "hosts" else f"[{group}:{state}]")
        section = SECTION.match(line)
        if section:
            group, state = section.group(1), section.group(2) or "hosts"
            origin = Origin(file, number, line.split("#")[0].strip())
            if state not in ("hosts", "children", "vars"):
                inventory.error(origin, f"unknown section type {state!r}: use [{group}], [{group}:vars] "
                                        f"or [{group}:children]")
                state = "skip"
                continue
            if group not in inventory.groups:
                if state == "vars" and group not in pending:
                    pending[group] = ("vars", origin, [])
                inventory.group(group, origin)
            if group in pending and state != "vars":
                _resolve_pending(group, pending, inventory)
            continue
        if line.startswith("[") and line.endswith("]"):
            inventory.error(origin, f"invalid section header {line!r}: no spaces, and only [name], [name:vars] "
                                    "or [name:children]", place=line)
            state = "skip"
            continue
        if state == "hosts":
            _host_line(line, origin, group, inventory)
        elif state == "vars":
            key, sep, value = (part.strip() for part in line.partition("="))
            if not sep or not key:
                inventory.error(origin, f"expected key=value, got {line!r}")
                continue
            inventory.set_group_var(group, key, parse_value(value), origin)
        elif state == "children":
            match = GROUP_NAME.match(line)
            if not match:
                inventory.error(origin, f"expected a group name, got {line!r}")
                continue
            child = match.group(1)
            if child not in inventory.groups:
                kind, first, parents = pending.get(child, ("children", origin, []))
                pending[child] = (kind, first, [*parents, group])
            else:
                inventory.add_child(group, child, origin)
    for name, (kind, origin, parents) in pending.items():
        if kind == "vars":
            inventory.error(origin, f"[{name}:vars] is for a group that is never defined")
        else:
            inventory.error(origin, f"[{parents[-1]}:children] names group {name!r}, which is never defined")


def _resolve_pending(group: str, pending: dict[str, tuple[str, Origin, list[str]]], inventory: Inventory) -> None:
    kind, origin, parents = pending.pop(group)
    for parent in parents:
        inventory.add_child(parent, group, origin)
        if parent in pending and pending[parent][0] == "children":
            _resolve_pending(parent, pending, inventory)


def _host_line(line: str, origin: Origin, group: str, inventory: Inventory) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        inventory.error(origin, f"cannot parse host line {line!r}: {exc}")
        return
    if not tokens:
        return
    pattern, port = hostpatterns.split_port(tokens[0])
    if tokens[0].strip().endswith(":") and port is None:
        inventory.error(origin, f"host {tokens[0]!r} ends in ':', which is kept for a port (host:22)")
        return
    if pattern.strip() == "---":
        inventory.error(origin, "'---' starts a YAML document: name the file .yaml or .yml")
        return
    try:
        names = hostpatterns.expand(pattern)
    except hostpatterns.PatternError as exc:
        inventory.error(origin, str(exc))
        return
    variables: dict[str, Var] = {}
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if not sep:
            inventory.error(origin, f"expected key=value after the host name, got {token!r}")
            return
        variables[key] = Var(parse_value(value), origin)
    for name in names:
        inventory.add_host(name, group, origin, port)
        inventory.hosts[name].update(variables)
