"""The inventory kbuild writes for a lab: its own YAML format, the kbuild user with sudo, the lab key (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kbuild.lab.image import LAB_USER
from kbuild.lab.topology import LabPlan


# A lab machine is a container on this host, sharing its kernel and its disk: what a kubelet and kube-proxy
# there need, as settings any user could write (kind sets the same for its nodes).
LAB_KUBELET_CONFIG: dict[str, Any] = {
    # The host may still run cgroup v1 (the machines then do too); the kubelet refuses that by default.
    "failCgroupV1": False,
    # The disk is the host's, shared by every machine: its free space says nothing about one node, and
    # images come from archives, so nothing could be pulled back after eviction or image GC.
    "evictionHard": {"nodefs.available": "0%", "nodefs.inodesFree": "0%", "imagefs.available": "0%"},
    "imageGCHighThresholdPercent": 100,
}
# The conntrack table size is the host kernel's; a container may not set it.
LAB_KUBE_PROXY_CONFIG: dict[str, Any] = {"conntrack": {"maxPerCore": 0}}
# Hosts that withhold CAP_SYS_RESOURCE (some sandboxes, rootless setups) let no process lower its OOM
# score: containers then get no lower score than containerd's own, instead of failing to start.
LAB_CONTAINERD_CONFIG: dict[str, Any] = {"plugins": {"io.containerd.cri.v1.runtime": {"restrict_oom_score_adj": True}}}


# Lab machines know no DNS server (nothing is reachable to ask): CoreDNS answers cluster names only.
LAB_ADDONS: dict[str, Any] = {"coredns": {"forward": []}}


def lab_inventory(plan: LabPlan, key_file: Path, artifacts_mirror: str | None = None,
                  preload: Sequence[str] = ()) -> dict[str, Any]:
    # known_hosts is left to kbuild's default (the state directory next to the inventory) so that
    # host-key policies behave as they would with real hosts; the lab's own known_hosts file, with
    # the keys it generated, is there for whoever wants to pin them.
    inventory: dict[str, Any] = {
        "cluster": {"name": plan.name, "kubelet_config": LAB_KUBELET_CONFIG,
                    "kube_proxy_config": LAB_KUBE_PROXY_CONFIG, "containerd_config": LAB_CONTAINERD_CONFIG,
                    "addons": LAB_ADDONS},
        "ssh": {
            "user": LAB_USER,
            "key_file": str(key_file),
            "become": True,  # like Vagrant's vagrant user: log in unprivileged, sudo for the rest
        },
    }
    if artifacts_mirror:
        inventory["artifacts"] = {"mirror": artifacts_mirror}  # e.g. the test mirror: a lab has no internet
    if preload:
        inventory.setdefault("artifacts", {})["images"] = {"preload": list(preload)}
    inventory["hosts"] = {m.name: {"address": str(m.address), "roles": m.inventory_roles} for m in plan.machines}
    return inventory


def render_inventory(plan: LabPlan, key_file: Path, artifacts_mirror: str | None = None,
                     preload: Sequence[str] = ()) -> str:
    header = (f"# kbuild inventory for lab {plan.name!r}: {plan.masters} master(s), {plan.workers} worker(s)\n"
              f"# on bridge {plan.bridge} ({plan.subnet}). Written by `kbuild lab up`; `kbuild lab down` removes\n"
              "# the machines, so this file only means something while the lab is up. A new lab on the same\n"
              "# addresses has new host keys: use a fresh state directory (known_hosts) for it.\n"
              "# kubelet_config, kube_proxy_config and containerd_config hold what a node needs when it is a\n"
              "# container on a shared host (cgroup v1 allowed, no disk-based eviction or image GC, the host's\n"
              "# conntrack limits, no OOM score below containerd's); CoreDNS forwards nowhere, as the machines\n"
              "# know no DNS server.\n")
    body = yaml.safe_dump(lab_inventory(plan, key_file, artifacts_mirror, preload), sort_keys=False,
                          default_flow_style=False)
    return header + body
