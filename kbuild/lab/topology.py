"""The shape of a lab as plain data: machine names, roles, addresses and the bridge name (pure, no side effects)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from kbuild.errors import UsageError
from kbuild.lab.errors import LabNotFound

DEFAULT_NAME = "lab"
DEFAULT_SUBNET = "198.18.0.0/24"  # RFC 2544 benchmarking range: never routed, safe for lab traffic
FIRST_MACHINE_OFFSET = 10  # machines get .10, .11, ... ; .1 is the host's end of the bridge
# What one bridge's /24 holds from .10 on, less a few: the 200-host benchmark needs nearly all of it. Past about
# 35 machines the host's own limits start to matter (inotify instances, which `lab up` raises as it goes; memory,
# some 40 MB a machine): the bench raises what it needs and gives it back.
MAX_MACHINES = 240
IFNAMSIZ = 15  # Linux interface names are at most 15 characters
LAB_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")

Role = Literal["master", "worker"]
INVENTORY_ROLES: dict[str, list[str]] = {"master": ["etcd", "control-plane"], "worker": ["worker"]}


@dataclass(frozen=True)
class MachineSpec:
    """One lab machine: its name (also its hostname), role and address on the lab bridge."""

    name: str
    role: Role
    index: int  # 1-based within its role
    address: ipaddress.IPv4Address

    @property
    def inventory_roles(self) -> list[str]:
        return list(INVENTORY_ROLES[self.role])


@dataclass(frozen=True)
class LabPlan:
    """A lab: N masters and M workers on one bridge in `subnet`."""

    name: str
    masters: int
    workers: int
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 1

    @property
    def gateway_cidr(self) -> str:
        return f"{self.gateway}/{self.subnet.prefixlen}"

    @property
    def bridge(self) -> str:
        return bridge_name(self.name)

    @property
    def machines(self) -> list[MachineSpec]:
        addresses = allocate(self.subnet, self.masters + self.workers)
        roles: list[tuple[Role, int]] = [("master", i) for i in range(1, self.masters + 1)]
        roles += [("worker", i) for i in range(1, self.workers + 1)]
        return [MachineSpec(machine_name(self.name, role, index), role, index, address)
                for (role, index), address in zip(roles, addresses)]

    def machine(self, name: str) -> MachineSpec:
        """The machine called `name` (its full name, or without the lab prefix: `worker-1`)."""
        for spec in self.machines:
            if name in (spec.name, spec.name.removeprefix(f"{self.name}-")):
                return spec
        known = ", ".join(m.name for m in self.machines)
        raise LabNotFound(f"lab {self.name!r} has no machine {name!r}; its machines are {known}")


def machine_name(lab: str, role: Role, index: int) -> str:
    return f"{lab}-{role}-{index}"


def bridge_name(lab: str) -> str:
    """The bridge's interface name: `kb-<lab>`, or a shortened name with a hash when that is too long."""
    name = f"kb-{lab}"
    if len(name) <= IFNAMSIZ:
        return name
    # Two long lab names sharing a prefix must not share a bridge, so keep a hash of the whole name.
    digest = hashlib.sha256(lab.encode()).hexdigest()[:5]
    return f"kb-{lab[:IFNAMSIZ - 3 - 6]}-{digest}"


def allocate(subnet: ipaddress.IPv4Network, count: int) -> list[ipaddress.IPv4Address]:
    """Addresses for `count` machines: .10, .11, ... of `subnet` (must fit before the broadcast address)."""
    first = subnet.network_address + FIRST_MACHINE_OFFSET
    last = first + count - 1 if count else first
    if count and last >= subnet.broadcast_address:
        room = max(0, int(subnet.broadcast_address) - int(first))
        raise UsageError(f"subnet {subnet} has room for {room} machines from {first}, not {count}; "
                         "pick a larger one with --subnet")
    return [first + i for i in range(count)]


def parse_subnet(value: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise UsageError(f"--subnet {value!r} is not a network in CIDR form ({exc})") from None
    if not isinstance(subnet, ipaddress.IPv4Network):
        raise UsageError(f"--subnet {value!r}: the lab needs an IPv4 network")
    if subnet.prefixlen > 28:
        raise UsageError(f"--subnet {value!r} is too small; use a /28 or larger")
    return subnet


def check_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise UsageError(f"lab name {name!r} must be lowercase letters, digits and '-', at most 32 characters "
                         "(it becomes part of every machine's host name)")
    return name


def make_plan(name: str, masters: int, workers: int, subnet: str | ipaddress.IPv4Network = DEFAULT_SUBNET) -> LabPlan:
    """Validate the requested shape and return the plan; UsageError (exit 2) says what is wrong."""
    check_name(name)
    if masters < 1:
        raise UsageError("--masters must be at least 1 (the inventory needs a control-plane host)")
    if workers < 0:
        raise UsageError("--workers cannot be negative")
    if masters + workers > MAX_MACHINES:
        raise UsageError(f"a lab has at most {MAX_MACHINES} machines, not {masters + workers}")
    network = subnet if isinstance(subnet, ipaddress.IPv4Network) else parse_subnet(subnet)
    plan = LabPlan(name, masters, workers, network)
    allocate(network, masters + workers)  # raises when they do not fit
    return plan
