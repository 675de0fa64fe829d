"""The inventory kbuild writes for a lab: its own YAML format, the kbuild user with sudo, the lab key (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kbuild.lab.image import LAB_USER
from kbuild.lab.plan import LabPlan


def lab_inventory(plan: LabPlan, key_file: Path, artifacts_mirror: str | None = None) -> dict[str, Any]:
    # known_hosts is left to kbuild's default (the state directory next to the inventory) so that
    # host-key policies behave as they would with real hosts; the lab's own known_hosts file, with
    # the keys it generated, is there for whoever wants to pin them.
    inventory: dict[str, Any] = {
        "cluster": {"name": plan.name},
        "ssh": {
            "user": LAB_USER,
            "key_file": str(key_file),
            "become": True,  # like Vagrant's vagrant user: log in unprivileged, sudo for the rest
        },
    }
    if artifacts_mirror:
        inventory["artifacts"] = {"mirror": artifacts_mirror}  # e.g. the test mirror: a lab has no internet
    inventory["hosts"] = {m.name: {"address": str(m.address), "roles": m.inventory_roles} for m in plan.machines}
    return inventory


def render_inventory(plan: LabPlan, key_file: Path, artifacts_mirror: str | None = None) -> str:
    header = (f"# kbuild inventory for lab {plan.name!r}: {plan.masters} master(s), {plan.workers} worker(s)\n"
              f"# on bridge {plan.bridge} ({plan.subnet}). Written by `kbuild lab up`; `kbuild lab down` removes\n"
              "# the machines, so this file only means something while the lab is up. A new lab on the same\n"
              "# addresses has new host keys: use a fresh state directory (known_hosts) for it.\n")
    body = yaml.safe_dump(lab_inventory(plan, key_file, artifacts_mirror), sort_keys=False, default_flow_style=False)
    return header + body
