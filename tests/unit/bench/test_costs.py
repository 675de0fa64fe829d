"""The benchmark's cost columns: host CPU from cgroup files, the tool's CPU and memory from wait4, the
per-host table, the no-op plot, and the host limits raised for a large lab and given back."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import pytest

from bench import harness, hostcpu, hosts
from bench.harness import RunRecord, run_measured, summarize
from bench.plot import noop_plot
from bench.report import engine_tables


def record(tool: str, n: int, scenario: str, wall: float, host_ms: float, cpu: float, mb: float) -> RunRecord:
    return RunRecord(tool, n, scenario, 1, wall, 0, n, n, host_cpu_ms=host_ms, controller_cpu=cpu, controller_mb=mb)


def test_cgroup_usage_read_for_v1_and_v2(tmp_path: Path):
    (tmp_path / "cpuacct.usage").write_text("2500000000\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    assert hostcpu._usage_seconds(tmp_path, cgroup_v1=True) == 2.5
    assert hostcpu._usage_seconds(tmp_path, cgroup_v1=False) == 1.5
    assert hostcpu._usage_seconds(tmp_path / "gone", cgroup_v1=True) is None
    assert hostcpu.per_host_ms({"a": 1.0, "b": 2.0, "c": None}, {"a": 1.02, "b": 2.04, "c": 5.0}) == 30.0


def test_run_measured_gives_the_tools_cpu_and_memory():
    run = run_measured([sys.executable, "-c", "sum(range(3_000_000)); b = b'x' * (60 << 20)"])
    assert run.exit_code == 0 and run.cpu_seconds > 0.01 and run.peak_mb > 60 and run.wall > 0
    assert run_measured([sys.executable, "-c", "raise SystemExit(3)"]).exit_code == 3


def test_a_tools_peak_memory_is_its_own_not_the_bench_s():
    """Linux carries the starter's high-water mark into an exec'd program's ru_maxrss: a tool started
    straight from a 300 MB bench reported over 300 MB whatever it used itself."""
    ballast = b"x" * (300 << 20)  # written, so resident: the bench's high-water mark is now over 300 MB
    run = run_measured(["true"])
    del ballast
    assert run.exit_code == 0 and run.peak_mb < 30


def test_a_tool_that_cannot_start_or_runs_too_long_is_a_failed_run(monkeypatch: pytest.MonkeyPatch):
    assert run_measured(["/nonexistent/tool"]).exit_code == 127
    monkeypatch.setattr(harness, "RUN_TIMEOUT", 0.3)
    run = run_measured(["sleep", "30"])
    assert run.exit_code == -1 and 0.3 <= run.wall < 10


def test_cost_columns_are_summarized_per_host_and_printed():
    records = [record("kbuild", 10, "noop", 1.0, 20.0, 1.5, 80.0), record("kbuild", 10, "noop", 1.2, 24.0, 1.7, 82.0),
               record("pyinfra", 10, "noop", 5.0, 300.0, 9.0, 150.0)]
    by = {s.tool: s for s in summarize(records)}
    assert by["kbuild"].host_cpu_ms == 22.0 and by["kbuild"].controller_cpu == 1.6
    assert by["kbuild"].controller_ms_per_host == 160.0 and by["kbuild"].controller_mb == 81.0
    text = engine_tables(summarize(records))
    assert "| 10 | noop | 22.0 / 160.0 / 81 | 300.0 / 900.0 / 150 |" in text


def test_noop_plot_is_a_png(tmp_path: Path):
    records = [record(t, n, "noop", w * n, 1, 1, 1) for t, w in (("kbuild", 0.1), ("pyinfra", 0.5)) for n in (1, 5)]
    path = noop_plot(summarize(records), tmp_path / "engines-noop.png")
    assert path is not None and path.read_bytes().startswith(b"\x89PNG")
    assert noop_plot(summarize([record("kbuild", 1, "first", 1, 1, 1, 1)]), tmp_path / "none.png") is None


def test_limits_are_raised_for_a_large_lab_and_given_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    knob = tmp_path / "max_user_instances"
    knob.write_text("128\n")
    monkeypatch.setattr(hosts, "INOTIFY_INSTANCES", knob)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    said: list[str] = []
    limits = hosts.HostLimits(said.append)
    limits.raise_for(200)
    assert int(knob.read_text()) == 1024 + hosts.INOTIFY_PER_MACHINE * 200
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= min(hard, 4096 + 16 * 200)
    limits.give_back()
    assert knob.read_text() == "128\n" and resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
    assert any("raised fs.inotify.max_user_instances 128" in s for s in said)
    assert any("back to 128" in s for s in said)


def test_the_login_floor_ignores_the_first_login_and_one_noisy_round(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    # Each login adds its cost to the machine's CPU counter: the first one pays 180 ms (the one-off cost CI
    # saw at one host), the third a 90 ms spike of something else; the others 20 ms.
    costs = iter([0.180, 0.020, 0.090, 0.020])
    counter = {"host-1": 0.0}

    class Session:
        def run(self, command: str):
            counter["host-1"] += next(costs)
            return type("Result", (), {"ok": True, "err": ""})()

        def close(self) -> None:
            pass

    monkeypatch.setattr(hostcpu, "connect", lambda target, known_hosts, strict: Session())
    monkeypatch.setattr(hostcpu, "cpu_seconds", lambda lab, hosts: dict(counter))
    access = hosts.Access("bench", tmp_path / "key", tmp_path / "known_hosts")
    assert hostcpu.login_floor_ms("lab", [hostcpu.Host("host-1", "198.18.0.2")], access) == 20.0
    assert hostcpu.median_of([None, None]) is None
