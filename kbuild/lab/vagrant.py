"""A kbuild inventory for the Vagrant lab from `vagrant ssh-config` output and the Vagrantfile's addresses (pure)."""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from kbuild.errors import UsageError
from kbuild.inventory.model import DNS_LABEL
from kbuild.lab.topology import INVENTORY_ROLES

# The Vagrantfile's defaults and address scheme. tests/unit/test_inventories.py checks that the
# Vagrantfile says the same (its DEFAULTS and MASTER_OFFSET/WORKER_OFFSET) and so does inventories/vagrant.yaml.
DEFAULT_SUBNET = "192.168.56.0/24"  # VirtualBox's default host-only network; vagrant-libvirt accepts it too
SUBNET_ENV = "KBUILD_VAGRANT_SUBNET"
DEFAULT_CLUSTER = "vagrant"
MASTER_OFFSET = 10  # master-N has .(10+N): master-1 is .11
WORKER_OFFSET = 20  # worker-N has .(20+N): worker-1 is .21
MAX_MASTERS = WORKER_OFFSET - MASTER_OFFSET - 1  # master addresses must stay below worker-1's
VAGRANT_USER = "vagrant"
MACHINE_NAME = re.compile(r"^(master|worker)-([1-9][0-9]*)$")


@dataclass
class SSHEntry:
    """One `Host` block of `vagrant ssh-config`: how to reach one machine."""

    name: str
    options: dict[str, list[str]] = field(default_factory=dict)  # lower-case keyword -> values in order
    line: int = 0

    def first(self, keyword: str) -> str | None:
        values = self.options.get(keyword.lower())
        return values[0] if values else None


def parse_ssh_config(text: str) -> list[SSHEntry]:
    """The `Host` blocks of ssh_config text, in order (keywords are case-insensitive; `Key=value` works too)."""
    entries: list[SSHEntry] = []
    current: SSHEntry | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, value = _split_option(line, number)
        if keyword == "host":
            names = value.split()
            if len(names) != 1:
                raise UsageError(f"vagrant ssh-config, line {number}: `Host {value}` names {len(names)} hosts; "
                                 "expected one machine per Host block")
            current = SSHEntry(names[0], line=number)
            entries.append(current)
        elif keyword == "match":
            raise UsageError(f"vagrant ssh-config, line {number}: `Match` blocks are not understood here",
                             hint="pass the output of `vagrant ssh-config` as it is")
        elif current is None:
            raise UsageError(f"vagrant ssh-config, line {number}: {raw.strip()!r} comes before any `Host` line",
                             hint="pass the output of `vagrant ssh-config` as it is")
        else:
            current.options.setdefault(keyword, []).append(value)
    return entries


def _split_option(line: str, number: int) -> tuple[str, str]:
    match = re.match(r"^([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+)(.*)$", line)
    if not match or not match.group(2).strip():
        raise UsageError(f"vagrant ssh-config, line {number}: {line!r} is not `Keyword value`")
    value = match.group(2).strip()
    if value.startswith('"'):
        try:
            parts = shlex.split(value)
        except ValueError:
            raise UsageError(f"vagrant ssh-config, line {number}: unbalanced quotes in {line!r}") from None
        value = " ".join(parts)
    return match.group(1).lower(), value


def machine_role(name: str) -> tuple[str, int]:
    """`master-2` -> ("master", 2); anything but master-N or worker-N is refused."""
    match = MACHINE_NAME.match(name)
    if not match:
        raise UsageError(f"vagrant machine {name!r} is neither master-N nor worker-N; kbuild maps only those "
                         "names (the Vagrantfile's) to roles",
                         hint="write the inventory by hand for other machines (see inventories/vagrant.yaml)")
    return match.group(1), int(match.group(2))


def parse_subnet(value: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise UsageError(f"subnet {value!r} is not a network in CIDR form ({exc})",
                         hint=f"use the Vagrantfile's {SUBNET_ENV}, e.g. {DEFAULT_SUBNET}") from None
    if not isinstance(subnet, ipaddress.IPv4Network):
        raise UsageError(f"subnet {value!r}: the Vagrant lab uses an IPv4 private network")
    return subnet


def machine_address(subnet: ipaddress.IPv4Network, role: str, index: int) -> ipaddress.IPv4Address:
    """The private-network address the Vagrantfile gives machine `<role>-<index>` (the cluster address)."""
    if role == "master" and not 1 <= index <= MAX_MASTERS:
        raise UsageError(f"master-{index}: the Vagrant lab numbers masters 1 to {MAX_MASTERS} "
                         f"(.{MASTER_OFFSET + 1} to .{MASTER_OFFSET + MAX_MASTERS} of the subnet)")
    offset = (MASTER_OFFSET if role == "master" else WORKER_OFFSET) + index
    if offset >= subnet.num_addresses - 1:
        raise UsageError(f"{role}-{index}: subnet {subnet} has no address at offset .{offset}",
                         hint=f"use a larger subnet ({SUBNET_ENV} for the Vagrantfile, --subnet here)")
    return subnet.network_address + offset


def vagrant_inventory(entries: list[SSHEntry], subnet: ipaddress.IPv4Network,
                      cluster_name: str = DEFAULT_CLUSTER) -> dict[str, Any]:
    """A kbuild inventory: one host per machine, roles from its name, SSH from ssh-config, address from the scheme."""
    if not DNS_LABEL.match(cluster_name):
        raise UsageError(f"cluster name {cluster_name!r} must be a DNS label (lowercase letters, digits and '-')")
    if not entries:
        raise UsageError("vagrant ssh-config lists no machines", hint="run `vagrant up` first")
    hosts: dict[str, Any] = {}
    order: list[tuple[int, int, str]] = []
    for entry in entries:
        role, index = machine_role(entry.name)
        if entry.name in hosts:
            raise UsageError(f"vagrant ssh-config, line {entry.line}: machine {entry.name!r} appears twice")
        hosts[entry.name] = {
            "address": str(machine_address(subnet, role, index)),
            "roles": list(INVENTORY_ROLES[role]),
            "ssh": _ssh_settings(entry),
        }
        order.append((0 if role == "master" else 1, index, entry.name))
    if not any(name.startswith("master-") for name in hosts):
        raise UsageError("vagrant ssh-config lists no master-N machine; a cluster needs a control plane",
                         hint="`vagrant up` the masters too (KBUILD_VAGRANT_MASTERS >= 1)")
    return {
        "cluster": {"name": cluster_name},
        "ssh": {"user": VAGRANT_USER, "become": True},  # Vagrant's user has passwordless sudo
        "hosts": {name: hosts[name] for _, _, name in sorted(order)},
    }


def _ssh_settings(entry: SSHEntry) -> dict[str, Any]:
    proxy = entry.first("ProxyCommand")
    if proxy is not None:
        raise UsageError(f"vagrant machine {entry.name} is reached through `ProxyCommand {proxy}`, which kbuild "
                         "does not run (it speaks SSH itself)",
                         hint="write the inventory by hand with ssh.bastion for the jump host")
    settings: dict[str, Any] = {}
    host = entry.first("HostName")
    if host:
        settings["host"] = host
    port = entry.first("Port")
    if port is not None:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise UsageError(f"vagrant ssh-config, machine {entry.name}: Port {port!r} is not a TCP port")
        settings["port"] = int(port)
    user = entry.first("User")
    if user and user != VAGRANT_USER:
        settings["user"] = user
    # Vagrant lists its per-machine key first; a later IdentityFile is only the insecure fallback.
    key = entry.first("IdentityFile")
    if key:
        settings["key_file"] = key
    return settings


def render_vagrant_inventory(inventory: dict[str, Any], subnet: ipaddress.IPv4Network, source: str) -> str:
    header = (f"# kbuild inventory for the Vagrant lab, written by `kbuild lab vagrant-inventory` from {source}.\n"
              f"# Cluster addresses are the machines' private network ({subnet}): master-N .{MASTER_OFFSET}+N, "
              f"worker-N .{WORKER_OFFSET}+N;\n"
              "# kbuild reaches each machine the way `vagrant ssh` does (ssh host, port, key).\n"
              "# After `vagrant destroy`, the machines come back with new host keys: use a fresh state directory.\n")
    return header + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False)
