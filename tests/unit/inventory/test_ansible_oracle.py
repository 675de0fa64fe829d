"""kbuild reads every inventory of the corpus as `ansible-inventory --list` does: hosts, groups, variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kbuild.inventory import ansible
from tests.unit.inventory.oracle import Resolved, ansible_inventory, cases, entry, from_list_output, run_oracle

pytestmark = pytest.mark.skipif(ansible_inventory() is None,
                                reason="ansible-inventory (ansible-core, a test dependency) is not installed")

CASES = cases()


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def kbuild_view(source: Path) -> Resolved:
    inventory = ansible.read(source)
    errors = [p.render() for p in inventory.inventory.problems if p.severity == "error"]
    assert not errors, errors
    return Resolved(
        {h: frozenset(inventory.groups_of(h)) for h in inventory.hosts},
        {h: plain({k: v.value for k, v in inventory.host_vars(h).items()}) for h in inventory.hosts},
    )


def assert_same(ours: Resolved, oracle: Resolved) -> None:
    assert sorted(ours.groups) == sorted(oracle.groups), "hosts differ"
    for host in oracle.groups:
        assert ours.groups[host] == oracle.groups[host], f"{host}: groups differ"
        assert ours.hostvars[host] == oracle.hostvars[host], f"{host}: variables differ"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hosts_groups_and_variables_match_ansible(case: Path, tmp_path: Path):
    oracle = run_oracle(entry(case), tmp_path)
    assert_same(kbuild_view(entry(case)), from_list_output(oracle))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ansible_inventory_list_output_reads_back_the_same(case: Path, tmp_path: Path):
    oracle = run_oracle(entry(case), tmp_path)
    listed = tmp_path / "listed" / "hosts.json"
    listed.parent.mkdir()
    listed.write_text(json.dumps(oracle, indent=2))
    assert_same(kbuild_view(listed), from_list_output(oracle))
