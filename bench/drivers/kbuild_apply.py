"""The kbuild side of the benchmark: the workload as engine resources, applied through a ConnectionPool and Runner.

Run as a program (`python bench/drivers/kbuild_apply.py CONFIG`) so that its wall time, like
pyinfra's and ansible-playbook's, includes starting Python and importing the tool. Prints one
JSON object: the engine's own connection and round-trip counts and each host's outcome.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

STARTED = time.time()  # before the imports below: they are part of what a user waits for

from bench import workload as wl
from bench.drivers.config import PERSIST_VARIABLE, DriverConfig
from bench.starter import SPAWNED_VARIABLE
from kbuild.engine.report import Reporter
from kbuild.engine.resources import Artifact, Directory, File, Service, Sysctl
from kbuild.engine.runner import HostStatus, Plan, Runner
from kbuild.engine.mux import open_connection
from kbuild.engine.ssh import Connection, ConnectionPool, SSHTarget, Stats


def plan(config: DriverConfig, host: wl.Host) -> Plan:
    workload = config.workload
    notify = (wl.SERVICE,)
    resources = [Directory(wl.CONF_DIR, mode=wl.CONF_DIR_MODE)]
    resources += [File(wl.conf_path(i), workload.render(host, i), mode=wl.CONF_MODE, notify=notify if i == 0 else ())
                  for i in range(workload.files)]
    resources += [
        Artifact(wl.BLOB_PATH, config.blob_sha256, source=Path(config.blob), mode=wl.BLOB_MODE),
        File(wl.UNIT_PATH, wl.UNIT_SOURCE.read_text(), mode=wl.UNIT_MODE, notify=notify),
        Service(wl.SERVICE),
        Sysctl(wl.SYSCTL_KEY, wl.SYSCTL_VALUE),
    ]
    return Plan(resources)


class Timings:
    """Where a run's time goes: connecting, and each remote command, per host (medians go in the profile)."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts
        self.connect: list[float] = []
        self.commands: list[list[float]] = []  # per host: seconds of each Connection.run, in order
        self.lock = threading.Lock()

    def connector(self, target: SSHTarget, stats: Stats) -> Connection:
        started = time.perf_counter()
        conn = open_connection(target, self.known_hosts, strict=True, stats=stats)
        took = time.perf_counter() - started
        runs: list[float] = []
        with self.lock:
            self.connect.append(took)
            self.commands.append(runs)
        conn.run = _timed(conn.run, runs)  # type: ignore[method-assign]
        conn.run_script = _timed(conn.run_script, runs)  # type: ignore[method-assign]
        return conn


def _timed(method, runs: list[float]):
    """`method`, appending the seconds each call took to `runs`."""
    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            runs.append(time.perf_counter() - began)
    return timed


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def main(argv: list[str]) -> int:
    imported = time.time()
    spawned = float(os.environ.get(SPAWNED_VARIABLE, STARTED))
    config = DriverConfig.load(Path(argv[0]))
    persist = float(os.environ.get(PERSIST_VARIABLE, "0"))
    targets = {h.name: SSHTarget(h.name, h.address, user=config.user, key_file=config.key_file, become=True,
                                 persist=persist) for h in config.hosts}
    plans = {h.name: plan(config, h) for h in config.hosts}
    planned = time.time()
    cpu_planned = time.process_time()
    timings = Timings(Path(config.known_hosts))
    with ConnectionPool(targets, Path(config.known_hosts), strict=True, connector=timings.connector) as pool:
        runner = Runner(pool, Reporter([]), forks=config.forks)
        outcomes = runner.apply("bench", plans)
        applied = time.time()
    closed = time.time()
    per_step = list(zip(*[c for c in timings.commands if c])) if timings.commands else []
    profile = {
        "python_start": round(STARTED - spawned, 3),
        "imports": round(imported - STARTED, 3),
        "plans": round(planned - imported, 3),
        "apply": round(applied - planned, 3),
        "close": round(closed - applied, 3),
        "connect_median": round(_median(timings.connect), 3),
        "connect_max": round(max(timings.connect, default=0.0), 3),
        "round_trip_medians": [round(_median(list(step)), 3) for step in per_step],
        # The controller's CPU: all of this process, and what applying took (no start-up, no imports).
        "cpu": round(time.process_time(), 3),
        "cpu_apply": round(time.process_time() - cpu_planned, 3),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    summary = {
        "connections": pool.stats.connections,
        "round_trips": pool.stats.round_trips,
        "profile": profile,
        "hosts": {name: {"status": o.status.value, "changed": len(o.changed), "restarted": o.restarted,
                         "message": o.message} for name, o in outcomes.items()},
    }
    print(json.dumps(summary))
    bad = [o for o in outcomes.values() if o.status not in (HostStatus.OK, HostStatus.CHANGED)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
