"""The small parts of the Ansible reader: host patterns, INI values, `{{ var }}` references, Ansible's booleans."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.inventory.ansible import hostpatterns
from kbuild.inventory.ansible.connection import ansible_bool
from kbuild.inventory.ansible.data import Origin, Var
from kbuild.inventory.ansible.ini import parse_value
from kbuild.inventory.ansible.templating import Unresolved, resolve


@pytest.mark.parametrize("pattern,expected", [
    ("node[1:3]", ["node1", "node2", "node3"]),
    ("node[01:03]", ["node01", "node02", "node03"]),
    ("n[1:9:4]", ["n1", "n5", "n9"]),
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("r[1:2]-n[a:b]", ["r1-na", "r1-nb", "r2-na", "r2-nb"]),
    ("e[:1]", ["e0", "e1"]),
    ("plain", ["plain"]),
])
def test_ranges_expand_as_ansibles(pattern, expected):
    assert hostpatterns.expand(pattern) == expected


@pytest.mark.parametrize("pattern,expected", [
    ("host:22", ("host", 22)), ("[2001:db8::1]:2022", ("2001:db8::1", 2022)), ("2001:db8::2", ("2001:db8::2", None)),
    ("node[1:3]:2200", ("node[1:3]", 2200)), ("node[1:3]", ("node[1:3]", None)),
])
def test_ports_split_off_as_ansibles(pattern, expected):
    assert hostpatterns.split_port(pattern) == expected


@pytest.mark.parametrize("text,expected", [
    ("2222", 2222), ("true", "true"), ("True", True), ("'22'", "22"), ("[1, 'x']", [1, "x"]), ("a b", "a b"),
    ("(1, 2)", [1, 2]), ("...", "..."), ("1j", "1j"), ("10 # c", 10), ("{'a': 1}", {"a": 1}),
])
def test_ini_values_are_typed_as_ansibles(text, expected):
    assert parse_value(text) == expected


def variables(**values):
    return {k: Var(v, Origin(Path("x"), 1)) for k, v in values.items()}


def test_simple_references_are_resolved_keeping_types():
    v = variables(a="{{ b }}", b=["x"], c="{{ d }}.{{ e }}", d="prod", e="{{ inventory_hostname }}")
    assert resolve("{{ a }}", v, "h1") == ["x"]
    assert resolve("{{c}}", v, "h1") == "prod.h1"


@pytest.mark.parametrize("value,reason", [
    ("{{ a | default('x') }}", "Jinja expressions"),
    ("{% if x %}y{% endif %}", "Jinja statements"),
    ("{{ missing }}", "refers to missing, which the inventory does not set"),
    ("{{ loop1 }}", "refers to itself"),
    ("{{ groups['etcd'][0] }}", "Jinja expressions"),
])
def test_anything_else_is_left_unresolved_with_a_reason(value, reason):
    v = variables(loop1="{{ loop2 }}", loop2="{{ loop1 }}")
    result = resolve(value, v, "h1")
    assert isinstance(result, Unresolved) and reason in result.reason


@pytest.mark.parametrize("value,expected", [
    (True, True), ("yes", True), ("On", True), (1, True), ("false", False), ("no", False), (0, False),
    ("maybe", None),
])
def test_booleans_as_ansible_reads_them(value, expected):
    assert ansible_bool(value) is expected
