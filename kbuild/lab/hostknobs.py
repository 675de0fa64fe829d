"""Host-level settings a lab needs, each one reported when `lab up` changes it.

Kernel modules: machines cannot load modules (no /lib/modules inside, and no right to), so the
host loads overlay (containerd's snapshots) and br_netfilter (the net.bridge.* sysctls that
Kubernetes sets inside each machine) when they are modules that are not loaded yet.

Kernel parameters: the kubelet insists on a few settings of the (shared, not namespaced) kernel and
tries to set them at start, which a container cannot; `lab up` sets them on the host first, to
the values a kubelet would set on a machine of its own, and says so.

FORWARD rule: with br_netfilter on (bridge-nf-call-iptables=1), frames between two machines on the lab bridge
pass the host's iptables FORWARD chain; hosts running Docker set its policy to DROP, which would
cut machines off from each other. `lab up` then inserts one ACCEPT rule for traffic that stays on
the lab bridge (tagged with the lab's name) and says so; `lab down` removes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kbuild.lab.network import bridged_traffic_filtered, owner_tag
from kbuild.lab.proc import run


def missing_modules(proc: Path = Path("/proc")) -> list[str]:
    """Modules the machines need that the host kernel has neither built in nor loaded.

    Judged by what they provide, not by /sys/module (a built-in module without parameters has no
    entry there): overlay registers a filesystem, br_netfilter the net.bridge sysctls.
    """
    missing = []
    try:
        filesystems = (proc / "filesystems").read_text().split()
    except OSError:
        filesystems = []
    if "overlay" not in filesystems:
        missing.append("overlay")
    if not (proc / "sys/net/bridge").is_dir():
        missing.append("br_netfilter")
    return missing


def load_modules() -> list[str]:
    """modprobe the missing modules on the host; return the ones loaded (errors are left to the machines)."""
    if shutil.which("modprobe") is None:
        return []
    loaded = []
    for name in missing_modules():
        if run(["modprobe", name], check=False).returncode == 0:
            loaded.append(name)
    return loaded


# What the kubelet sets at start (pkg/kubelet/cm: setupKernelTunables) unless the kernel has it already.
KUBELET_KERNEL_SETTINGS = {
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
    "kernel.keys.root_maxkeys": "1000000",
    "kernel.keys.root_maxbytes": "25000000",
}


# Limits every machine draws on together: inotify instances and watches are counted per user, and root in
# each machine is the host's root. systemd, journald, containerd and each kubelet (cAdvisor, its file
# watchers) hold dozens of instances per machine, so the host's default of 128 runs out at a handful of
# machines and kubelets die with "inotify_init: too many open files" (kind documents the same limit).
# Raised to at least these values, never lowered.
SHARED_KERNEL_MINIMUMS = {
    "fs.inotify.max_user_instances": 8192,
    "fs.inotify.max_user_watches": 524288,
}


def set_kernel_settings(proc: Path = Path("/proc")) -> list[str]:
    """Set the kubelet's kernel settings on the host where they differ, and raise the shared limits below
    their minimums; return `name old -> new` for each change."""
    changed = []
    for name, value, at_least in ([(n, v, False) for n, v in KUBELET_KERNEL_SETTINGS.items()]
                                  + [(n, str(v), True) for n, v in SHARED_KERNEL_MINIMUMS.items()]):
        path = proc / "sys" / name.replace(".", "/")
        try:
            current = path.read_text().strip()
            if int(current) < int(value) if at_least else current != value:
                path.write_text(value + "\n")
                changed.append(f"{name} {current} -> {value}")
        except (OSError, ValueError):
            continue  # not this kernel's, or not writable: the kubelet will say what it misses
    return changed


def forward_rule(bridge: str, lab: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", owner_tag(lab), "-j", "ACCEPT"]


def forward_drops(rules: str) -> bool:
    """From `iptables -S FORWARD`: is the chain's policy DROP (or REJECT-like)?"""
    return any(line.strip() in ("-P FORWARD DROP", "-P FORWARD REJECT") for line in rules.splitlines())


def ensure_forward_rule(bridge: str, lab: str) -> bool:
    """Insert the ACCEPT rule if bridged traffic is filtered by a dropping FORWARD chain; True if it is in place."""
    if shutil.which("iptables") is None or not bridged_traffic_filtered():
        return False
    listing = run(["iptables", "-S", "FORWARD"], check=False)
    if listing.returncode != 0 or not forward_drops(listing.stdout):
        return False
    rule = forward_rule(bridge, lab)
    if run(["iptables", "-C", *rule], check=False).returncode != 0:
        run(["iptables", "-I", *rule[:1], "1", *rule[1:]])
    return True


def remove_forward_rule(bridge: str, lab: str) -> bool:
    """Delete every copy of the lab's rule; True if one was there."""
    if shutil.which("iptables") is None:
        return False
    rule = forward_rule(bridge, lab)
    removed = False
    while run(["iptables", "-C", *rule], check=False).returncode == 0:
        run(["iptables", "-D", *rule])
        removed = True
    return removed
