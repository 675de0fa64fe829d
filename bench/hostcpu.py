"""Host CPU of a run, from each lab machine's own cgroup accounting (read on the lab's host, never over SSH).

Everything a run costs a machine is counted: sshd, the shells and programs the tool starts, and the
systemd work its queries cause (systemctl asks PID 1). An idle machine adds next to nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from bench.hosts import Access, parallel
from bench.workload import Host
from kbuild.engine.ssh import SSHTarget, connect
from kbuild.lab import cgroups


def _usage_seconds(directory: Path, cgroup_v1: bool) -> float | None:
    try:
        if cgroup_v1:
            return int((directory / "cpuacct.usage").read_text()) / 1e9
        for line in (directory / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(lab: str, hosts: Sequence[Host]) -> dict[str, float | None]:
    """Each machine's CPU seconds so far (None where this host keeps no CPU accounting for it)."""
    usable = [h for h in cgroups.current_hierarchies()
              if not h.is_v1 or "cpuacct" in h.controllers.split(",")]
    found: dict[str, float | None] = {}
    for host in hosts:
        found[host.name] = None
        for hierarchy, directory in cgroups.machine_cgroups(usable, lab, host.name):
            value = _usage_seconds(directory, hierarchy.is_v1)
            if value is not None:
                found[host.name] = value
                break
    return found


def per_host_ms(before: dict[str, float | None], after: dict[str, float | None]) -> float | None:
    """CPU milliseconds a machine spent between the two readings, averaged over the machines."""
    spent = [(after[n] - b) * 1000 for n, b in before.items() if b is not None and after.get(n) is not None]
    return round(sum(spent) / len(spent), 1) if spent else None


FLOOR_ROUNDS = 3  # measured rounds of the login floor, after one unmeasured warm-up; their median is reported


def login_floor_ms(lab: str, hosts: Sequence[Host], access: Access) -> float | None:
    """Host CPU, per host, of the least any SSH tool does: log in (the bench's user, key and pinned host keys)
    and run `true` through sudo. A run's host CPU above this is the tool's own work on the host."""
    def login(host: Host) -> None:
        target = SSHTarget(host.name, host.address, user=access.user, key_file=str(access.key_file), become=True)
        conn = connect(target, access.known_hosts, strict=True)
        try:
            result = conn.run("true")
        finally:
            conn.close()
        if not result.ok:
            raise RuntimeError(f"{host.name}: `sudo -n true` failed: {result.err.strip()}")

    # A single sample is at the mercy of one-off costs of a first login after a quiet spell (the cause is
    # unknown: the lab image has no pam_systemd, so no user manager starts) and of whatever else the
    # machine did in that moment: CI saw 180 ms at one host. So one login warms up unmeasured, and the
    # floor is the median of FLOOR_ROUNDS.
    parallel(login, hosts)
    rounds = []
    for _ in range(FLOOR_ROUNDS):
        before = cpu_seconds(lab, hosts)
        parallel(login, hosts)
        rounds.append(per_host_ms(before, cpu_seconds(lab, hosts)))
    return median_of(rounds)


def median_of(rounds: Sequence[float | None]) -> float | None:
    """The median of the rounds that could be measured (None when none could)."""
    measured = [r for r in rounds if r is not None]
    return round(statistics.median(measured), 1) if measured else None
