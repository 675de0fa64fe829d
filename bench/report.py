"""Benchmark output: the machine it ran on, the result tables (Markdown) with kbuild's ratios, and JSON files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from bench.harness import SCENARIOS, Summary
from kbuild.state import write_atomic

from bench.plot import TOOL_ORDER


def machine_info() -> dict[str, object]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines()
                          if ln.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    os_name = ""
    try:
        os_name = next(ln.split("=", 1)[1].strip('"') for ln in Path("/etc/os-release").read_text().splitlines()
                       if ln.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1), "os": os_name,
            "kernel": platform.release(), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def machine_line(machine: dict[str, object], note: str = "") -> str:
    load = machine.get("load_average") or []
    text = (f"{machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, "
            f"{machine.get('os')}, kernel {machine.get('kernel')}, Python {machine.get('python')}; "
            f"load average at start {', '.join(str(x) for x in load)}; {machine.get('date')}")
    return f"{text}. {note}".strip() if note else text


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f} (×{b / a:.1f} faster)" if a < b else f"{a / b:.2f} (×{a / b:.1f} slower)"


def _cell(s: Summary | None) -> str:
    if s is None:
        return "—"
    if s.median is None:
        return f"INVALID ({s.runs - s.valid}/{s.runs} runs failed)"
    spread = f" [{s.low:.2f}–{s.high:.2f}]" if s.runs > 1 and s.low is not None and s.high is not None else ""
    invalid = f" ({s.runs - s.valid} of {s.runs} runs invalid)" if s.valid < s.runs else ""
    return f"{s.median:.2f}{spread}{invalid}"


def engine_tables(summaries: Sequence[Summary]) -> str:
    """Wall time per tool (median [min–max] seconds), kbuild's ratios, then connections and round trips per host."""
    by = {(s.tool, s.hosts, s.scenario): s for s in summaries}
    tools = [t for t in TOOL_ORDER if any(s.tool == t for s in summaries)]
    sizes = sorted({s.hosts for s in summaries})
    scenarios = [sc for sc in SCENARIOS if any(s.scenario == sc for s in summaries)]
    head = ["N", "scenario", *(f"{t} (s)" for t in tools)]
    ratios = [t for t in tools if not t.startswith("kbuild")] if "kbuild" in tools else []
    head += [f"kbuild/{t}" for t in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in sizes:
        for sc in scenarios:
            row = [str(n), sc, *(_cell(by.get((t, n, sc))) for t in tools)]
            mine = by.get(("kbuild", n, sc))
            for t in ratios:
                other = by.get((t, n, sc))
                row.append(_ratio(mine.median if mine else None, other.median if other else None))
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", ("SSH connections / round trips per host and run, counted in each host's sshd log "
                   "(a round trip = a session sshd started: one remote command or one SFTP session):"), ""]
    lines += _tool_grid(summaries, tools, sizes, scenarios, lambda s: "—" if s.connections_per_host is None else
                        f"{s.connections_per_host:g} / {s.round_trips_per_host:g}")
    lines += ["", cost_table(summaries, tools, sizes, scenarios)]
    return "\n".join(lines)


def login_floor_lines(floors: dict[str, list[float]]) -> list[str]:
    """The host CPU of a bare SSH login (sudo true) per size, median [min–max] of its measurements: the part of
    every tool's host CPU it cannot cut."""
    if not floors:
        return []

    def cell(values: list[float]) -> str:
        spread = f" [{min(values):.1f}–{max(values):.1f}]" if len(values) > 1 else ""
        return f"{statistics.median(values):.1f}{spread}"

    sizes = ", ".join(f"N={n} {cell(floors[n])}" for n in sorted(floors, key=int) if floors[n])
    return ["", f"Host CPU of a bare SSH login running `sudo -n true` (what any SSH tool costs a host before its "
                f"own work), ms per host: {sizes}."]


def _tool_grid(summaries: Sequence[Summary], tools: list[str], sizes: list[int], scenarios: list[str],
               cell: Callable[[Summary], str]) -> list[str]:
    """A Markdown table with a row per (size, scenario) and a column per tool; — where a tool has no run."""
    by = {(s.tool, s.hosts, s.scenario): s for s in summaries}
    head = ["N", "scenario", *tools]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in sizes:
        for sc in scenarios:
            cells = ["—" if by.get((t, n, sc)) is None else cell(by[(t, n, sc)]) for t in tools]
            lines.append("| " + " | ".join([str(n), sc, *cells]) + " |")
    return lines


def _number(value: float | None, form: str = "g") -> str:
    return "—" if value is None else format(value, form)


def cost_table(summaries: Sequence[Summary], tools: list[str], sizes: list[int], scenarios: list[str]) -> str:
    """CPU per host on the hosts (their cgroups) and on the controller (the tool's process tree), and memory."""
    lines = [("Cost per host (medians): host CPU ms per host from each machine's cgroup / controller CPU ms per "
              "host (the tool's whole process tree, start-up and imports included, divided by N) / the "
              "controller's peak memory in MB:"), ""]
    lines += _tool_grid(summaries, tools, sizes, scenarios, lambda s: f"{_number(s.host_cpu_ms, '.1f')} / "
                        f"{_number(s.controller_ms_per_host, '.1f')} / {_number(s.controller_mb, '.0f')}")
    kbuild_apply = [(s.hosts, s.scenario, s.tool_stats.get("profile", {})) for s in summaries if s.tool == "kbuild"]
    rows = [(n, sc, p) for n, sc, p in kbuild_apply if isinstance(p, dict) and "cpu_apply" in p]
    if rows:
        lines += ["", "kbuild's controller CPU without start-up (applying only), ms per host:",
                  ", ".join(f"N={n} {sc} {p['cpu_apply'] * 1000 / n:.1f}" for n, sc, p in sorted(rows))]
    return "\n".join(lines)


def targets(summaries: Sequence[Summary], size: int = 20) -> list[str]:
    """The issue's targets, each with the measured figures and met / MISSED."""
    by = {(s.tool, s.hosts, s.scenario): s.median for s in summaries}
    out = []

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "MISSED")

    k, p, a = (by.get((t, size, "noop")) for t in ("kbuild", "pyinfra", "ansible"))
    ok = None if k is None or p is None else k < p
    out.append(f"no-op re-run at N={size}: kbuild {_seconds(k)} s vs pyinfra {_seconds(p)} s "
               f"(target: faster) — {verdict(ok)}")
    ok = None if k is None or a is None else k * 10 <= a
    measured = f"; measured {a / k:.1f}x" if k and a else ""
    out.append(f"no-op re-run at N={size}: kbuild {_seconds(k)} s vs Ansible {_seconds(a)} s "
               f"(target: at least 10x faster{measured}) — {verdict(ok)}")
    sizes = sorted({s.hosts for s in summaries})
    for n in sizes:
        k, p = by.get(("kbuild", n, "first")), by.get(("pyinfra", n, "first"))
        ok = None if k is None or p is None else k <= p
        out.append(f"first run at N={n}: kbuild {_seconds(k)} s vs pyinfra {_seconds(p)} s "
                   f"(target: no slower) — {verdict(ok)}")
    if SCALE_SIZE in sizes:
        out += scale_targets(summaries, verdict)
    return out


SCALE_SIZE = 100  # where the scale targets are set (pyinfra's published 100-host no-op: 6.54 s)


def scale_targets(summaries: Sequence[Summary], verdict: Callable[[bool | None], str]) -> list[str]:
    """The scale issue's targets for a no-op at SCALE_SIZE hosts: time against pyinfra and in seconds, the CPU
    it costs each host and the controller (the whole process tree, start-up included), memory per host."""
    by = {(s.tool, s.hosts, s.scenario): s for s in summaries}
    mine, theirs = by.get(("kbuild", SCALE_SIZE, "noop")), by.get(("pyinfra", SCALE_SIZE, "noop"))
    k = mine.median if mine else None
    p = theirs.median if theirs else None
    ok = None if k is None or p is None else k * 5 <= p
    measured = f"; measured {p / k:.1f}x" if k and p else ""
    out = [f"no-op at N={SCALE_SIZE}: kbuild {_seconds(k)} s vs pyinfra {_seconds(p)} s "
           f"(target: at least 5x faster{measured}) — {verdict(ok)}",
           f"no-op at N={SCALE_SIZE}: kbuild {_seconds(k)} s (target: under 6.5 s) — "
           f"{verdict(None if k is None else k < 6.5)}"]
    host = mine.host_cpu_ms if mine else None
    out.append(f"host CPU of a no-op at N={SCALE_SIZE}: {_number(host, '.1f')} ms per host (target: under 50) — "
               f"{verdict(None if host is None else host < 50)}")
    kept = by.get(("kbuild-kept", SCALE_SIZE, "noop"))
    if kept is not None:
        out.append(f"host CPU of a no-op at N={SCALE_SIZE} with ssh.persist (kbuild-kept): "
                   f"{_number(kept.host_cpu_ms, '.1f')} ms per host (target: under 50) — "
                   f"{verdict(None if kept.host_cpu_ms is None else kept.host_cpu_ms < 50)}")
    controller = mine.controller_ms_per_host if mine else None
    out.append(f"controller CPU of a no-op at N={SCALE_SIZE}: {_number(controller, '.1f')} ms per host "
               f"(target: under 30) — {verdict(None if controller is None else controller < 30)}")
    # Memory per host is the growth between sizes: the interpreter and the imports are there at any N.
    peaks = sorted((s.hosts, s.controller_mb) for s in summaries
                   if s.tool == "kbuild" and s.scenario == "noop" and s.controller_mb is not None)
    if len(peaks) >= 2:
        (n0, mb0), (n1, mb1) = peaks[0], peaks[-1]
        out.append(f"controller memory of a no-op: {mb0:.0f} MB peak at N={n0}, {mb1:.0f} MB at N={n1}: "
                   f"{(mb1 - mb0) / (n1 - n0):.2f} MB per added host")
    return out


def write_json(path: Path, payload: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # first, so the results directory gets the usual mode, not 0700
    write_atomic(path, json.dumps(payload, indent=1, default=lambda o: asdict(o)))
