"""ansible-inventory as the oracle: what Ansible itself resolves for an inventory (hosts, groups, variables)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "ansible_corpus"
# The -i argument of a corpus case: the first of these that exists in its directory.
ENTRY_NAMES = ("inventory", "inventory.ini", "hosts", "hosts.ini", "hosts.yaml", "hosts.yml", "hosts.json")


def ansible_inventory() -> str | None:
    beside = Path(sys.executable).parent / "ansible-inventory"
    return str(beside) if beside.exists() else shutil.which("ansible-inventory")


def cases() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_dir())


def entry(case: Path) -> Path:
    return next(case / n for n in ENTRY_NAMES if (case / n).exists())


@dataclass(frozen=True)
class Resolved:
    """Per host: its groups (all of them, through children) and its merged variables."""

    groups: dict[str, frozenset[str]]
    hostvars: dict[str, dict[str, Any]]


def run_oracle(source: Path, home: Path) -> dict[str, Any]:
    """`ansible-inventory -i source --list`, with no user configuration in the way."""
    tool = ansible_inventory()
    assert tool is not None
    if source.suffix == ".json" and "_meta" in source.read_text():
        # --list output is what an inventory script prints: Ansible reads it by running one.
        script = home / "inventory-script"
        script.write_text(f"#!/bin/sh\ncat '{source}'\n")
        script.chmod(0o755)
        source = script
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "ANSIBLE_HOME": str(home),
           "ANSIBLE_CONFIG": str(home / "none.cfg"), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "LC_ALL": "C.UTF-8"}
    result = subprocess.run([tool, "-i", str(source), "--list"], capture_output=True, text=True, env=env,
                            cwd=home, check=False, timeout=120)
    assert result.returncode == 0, f"ansible-inventory failed on {source}:\n{result.stderr}"
    return json.loads(result.stdout)


def from_list_output(data: dict[str, Any]) -> Resolved:
    children = {g: body.get("children", []) for g, body in data.items() if g != "_meta"}
    direct = {g: body.get("hosts", []) for g, body in data.items() if g != "_meta"}

    def members(group: str) -> set[str]:
        found = set(direct.get(group, []))
        for child in children.get(group, []):
            found |= members(child)
        return found

    hostvars = data["_meta"]["hostvars"]
    hosts = set(hostvars) | {h for hs in direct.values() for h in hs}
    groups = {h: frozenset(g for g in children if h in members(g)) for h in hosts}
    return Resolved(groups, {h: hostvars.get(h, {}) for h in hosts})
