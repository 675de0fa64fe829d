"""The Jinja that Ansible inventories use for plain references, `{{ var }}`, resolved; anything else left alone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kbuild.inventory.ansible.data import Var

EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)
SIMPLE_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


@dataclass(frozen=True)
class Unresolved:
    """A value kbuild cannot evaluate (filters, lookups, loops); `reason` says why, for a warning."""

    reason: str


def has_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def resolve(value: Any, variables: Mapping[str, Var], host: str, _seen: tuple[str, ...] = ()) -> Any:
    """The value with every `{{ name }}` replaced as Ansible would; an Unresolved when that takes real Jinja.

    `"{{ x }}"` alone keeps x's type (a list stays a list), as Ansible's native types do for a bare
    reference; inside text the reference becomes text.
    """
    if not has_template(value):
        return value
    if "{%" in value or "{#" in value:
        return Unresolved("uses Jinja statements, which kbuild does not evaluate")
    names = [SIMPLE_NAME.match(m.group(1)) for m in EXPRESSION.finditer(value)]
    if not all(names):
        return Unresolved("uses Jinja expressions (filters, lookups, operators), which kbuild does not evaluate; "
                          "write the value itself")
    values: dict[str, Any] = {}
    for match in names:
        assert match is not None
        name = match.group(1)
        if name in _seen:
            return Unresolved(f"refers to itself through {' -> '.join((*_seen, name))}")
        if name == "inventory_hostname" or name == "inventory_hostname_short":
            values[name] = host if name == "inventory_hostname" else host.split(".")[0]
            continue
        if name not in variables:
            return Unresolved(f"refers to {name}, which the inventory does not set")
        resolved = resolve(variables[name].value, variables, host, (*_seen, name))
        if isinstance(resolved, Unresolved):
            return resolved
        values[name] = resolved
    whole = SIMPLE_NAME.match(value.strip()[2:-2]) if value.strip().startswith("{{") and \
        value.strip().endswith("}}") and value.count("{{") == 1 else None
    if whole:
        return values[whole.group(1)]
    return EXPRESSION.sub(lambda m: str(values[m.group(1).strip()]), value)
