"""Lab names and subnets for test sessions that run side by side on one machine.

Two sessions on one machine (a developer's run and CI, say) must never share a lab machine or an
address: one would bootstrap over the other's cluster with another CA. So each session takes a lab
name of its own, and reserves every subnet it uses in a registry under /run before bringing a lab
up: one JSON file per lab, naming the owning process. A candidate subnet is free when no live
reservation overlaps it and none of the host's addresses or another lab's machines lie in it.

A session killed outright (SIGKILL, OOM) cannot take its labs down; the next session finds its
reservations with the owner gone, takes those labs down and drops the reservations. The bench
reserves the labs it brings up here too (bench/hosts.py), for the same reason. Labs that nobody
reserved (someone's `kbuild lab up`, a lab kept with --keep-lab) are never touched, only kept clear of,
and named when they leave no room.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from kbuild.lab import network
from kbuild.lab.lab import Lab, lab_states
from kbuild.lab.state import LabState
from kbuild.lab.topology import FIRST_MACHINE_OFFSET, bridge_name

REGISTRY = Path(os.environ.get("KBUILD_TEST_LAB_REGISTRY", "/run/kbuild-test-labs"))
Network = ipaddress.IPv4Network


class ReservationError(Exception):
    """No subnet or name can be had; the message says why and what to change."""


@dataclass(frozen=True)
class Reservation:
    lab: str
    subnet: str
    pid: int
    started: str  # the owner's start time in /proc/PID/stat: a reused pid is not the same owner

    @property
    def network(self) -> Network:
        return ipaddress.IPv4Network(self.subnet)


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    return stat.rsplit(")", 1)[1].split()[19]


def alive(reservation: Reservation) -> bool:
    return process_start(reservation.pid) == reservation.started


def session_name(taken: Sequence[str]) -> str:
    """A short lab name no existing lab starts with: `kb` and four hex digits (machine names stay short)."""
    while True:
        name = f"kb{secrets.token_hex(2)}"
        if not any(other.startswith(name) for other in taken):
            return name


def block_size(machines: int) -> int:
    """The prefix length of the smallest block that holds `machines` (network, gateway, .2-.9, machines, broadcast)."""
    needed = FIRST_MACHINE_OFFSET + machines + 1
    return 32 - max(4, (needed - 1).bit_length())


def other_labs(own_lab: str) -> list[LabState]:
    """Every lab on the machine but `own_lab`, running or not (a stopped lab's machines come back on `up`)."""
    return [state for state in lab_states() if state.name != own_lab]


def addresses_in_use(own_lab: str) -> list[ipaddress.IPv4Address]:
    """Every address the host holds, and the gateway and machines of every other lab (running or not)."""
    used = [address.ip for iface in network.interfaces().values() if iface.name != bridge_name(own_lab)
            for address in iface.addresses]
    for state in other_labs(own_lab):
        plan = state.plan
        used += [plan.gateway, *(m.address for m in plan.machines)]
    return used


def holders(pools: Sequence[Network], own_lab: str, reservations: Sequence[Reservation]) -> list[str]:
    """Who holds addresses in `pools` (a live process's labs, then labs no process holds, with the command that
    removes them): what the error says when no block is left."""
    def in_pools(subnet: str) -> bool:
        return any(ipaddress.IPv4Network(subnet).overlaps(pool) for pool in pools)

    reserved = {r.lab for r in reservations}
    found = [f"lab {r.lab} ({r.subnet}) of process {r.pid}"
             for r in reservations if in_pools(r.subnet)]
    found += [f"lab {state.name} ({state.subnet}, {state.masters + state.workers} machines; "
              f"`kbuild lab down --name {state.name}` removes it)"
              for state in other_labs(own_lab) if state.name not in reserved and in_pools(state.subnet)]
    return found


def choose(pools: Sequence[Network], machines: int, reserved: Sequence[Network],
           used: Sequence[ipaddress.IPv4Address]) -> Network | None:
    """The first block of `pools` big enough for `machines` that overlaps no reservation and holds no used address."""
    prefix = block_size(machines)
    for pool in pools:
        if prefix < pool.prefixlen:
            continue
        for candidate in pool.subnets(new_prefix=prefix):
            if not any(candidate.overlaps(r) for r in reserved) and not any(a in candidate for a in used):
                return candidate
    return None


class Registry:
    """This process's view of the reservations on the machine; every change happens under one lock."""

    def __init__(self, root: Path = REGISTRY, pid: int | None = None) -> None:
        self.root = root
        self.pid = pid or os.getpid()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[Reservation]]:
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._load()
        finally:
            os.close(fd)

    def _load(self) -> list[Reservation]:
        found = []
        for path in sorted(self.root.glob("*.json")):
            try:
                found.append(Reservation(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                path.unlink(missing_ok=True)  # a torn write by a killed session: nothing to honour
        return found

    def _path(self, reservation: Reservation) -> Path:
        return self.root / f"{reservation.pid}-{reservation.lab}.json"

    def taken_names(self) -> list[str]:
        with self._locked() as reservations:
            return [r.lab for r in reservations] + [s.name for s in lab_states()]

    def reap(self, say=print) -> list[str]:
        """Take down the labs of sessions that are gone and drop their reservations; return those labs."""
        reaped = []
        with self._locked() as reservations:
            for reservation in reservations:
                if alive(reservation):
                    continue
                lab = Lab(reservation.lab)
                if lab.paths.root.exists():
                    say(f"taking down lab {reservation.lab}, left behind by test session {reservation.pid}")
                    lab.down()
                    reaped.append(reservation.lab)
                self._path(reservation).unlink(missing_ok=True)
        return reaped

    def reserve(self, lab: str, machines: int, pools: Sequence[Network], subnet: str | None = None) -> str:
        """Reserve a subnet for lab `lab` of `machines` machines (`subnet` if given) and return it."""
        with self._locked() as reservations:
            others = [r for r in reservations if r.pid != self.pid and alive(r)]
            mine = [r for r in reservations if r.pid == self.pid and r.lab != lab]
            holder = next((r for r in others if r.lab == lab), None)
            if holder is not None:
                raise ReservationError(f"lab {lab!r} is in use by the test session of process {holder.pid}; "
                                       "set KBUILD_TEST_LAB_NAME to another name or wait for it to finish")
            reserved = [r.network for r in others + mine]
            if subnet is not None:
                wanted = ipaddress.IPv4Network(subnet)
                clash = next((r for r in others if r.network.overlaps(wanted)), None)
                if clash is not None:
                    raise ReservationError(f"subnet {subnet} overlaps {clash.subnet} of lab {clash.lab!r}, in use by "
                                           f"the test session of process {clash.pid}; pick another")
            else:
                chosen = choose(pools, machines, reserved, addresses_in_use(lab))
                if chosen is None:
                    held = "; ".join(holders(pools, lab, others + mine)) or "the host's own addresses"
                    raise ReservationError(f"no free block for {machines} machines in {', '.join(map(str, pools))}: "
                                           f"held by {held}; free one or set KBUILD_TEST_LAB_POOL")
                wanted = chosen
            reservation = Reservation(lab, str(wanted), self.pid, process_start(self.pid) or "")
            path = self._path(reservation)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(reservation)) + "\n")
            tmp.rename(path)
            return str(wanted)

    def release(self, lab: str) -> None:
        with self._locked():
            (self.root / f"{self.pid}-{lab}.json").unlink(missing_ok=True)
