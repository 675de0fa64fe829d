"""The engine benchmark: each tool x host count x scenario, timed, counted on the hosts' sshd, and verified."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.drivers.config import DriverConfig
from bench import hostcpu, starter
from bench.hosts import Access, BenchLab, check
from bench.sshdlog import CURSOR_COMMAND, count_script, cursors, parse_counts, parse_cursor
from bench.tools import Tool
from bench.verify import PROBE_SCRIPT, HostState, judge
from bench.workload import Host, Workload, ensure_blob, expected

# scenario -> (workload version, must the service restart?) ; None: first run, either is fine
SCENARIOS: dict[str, tuple[int, bool | None]] = {"first": (1, None), "noop": (1, False), "change": (2, True)}
RUN_TIMEOUT = 1800.0


@dataclass
class RunRecord:
    tool: str
    hosts: int
    scenario: str
    rep: int
    wall: float  # seconds, process start to exit
    exit_code: int
    connections: int  # on all hosts, from sshd's log
    sessions: int  # remote commands + SFTP sessions on all hosts, from sshd's log
    tool_stats: dict[str, object] = field(default_factory=dict)  # the tool's own counts, where it has them
    problems: list[str] = field(default_factory=list)  # end-state check failures (empty: verified)
    log: str = ""
    host_cpu_ms: float | None = None  # CPU one host spent on the run (mean over hosts), from its cgroup
    controller_cpu: float | None = None  # CPU seconds of the tool's process tree on the controller
    controller_mb: float | None = None  # its peak resident memory (the largest process), MB

    @property
    def valid(self) -> bool:
        return self.exit_code == 0 and not self.problems


@dataclass
class Summary:
    tool: str
    hosts: int
    scenario: str
    runs: int
    valid: int
    median: float | None
    low: float | None
    high: float | None
    connections_per_host: float | None
    round_trips_per_host: float | None
    tool_stats: dict[str, object] = field(default_factory=dict)
    host_cpu_ms: float | None = None  # per host, median of the runs
    controller_cpu: float | None = None  # seconds for the whole run, median
    controller_ms_per_host: float | None = None
    controller_mb: float | None = None


def summarize(records: Sequence[RunRecord]) -> list[Summary]:
    groups: dict[tuple[str, int, str], list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.tool, record.hosts, record.scenario), []).append(record)
    out = []
    for (tool, hosts, scenario), group in groups.items():
        good = [r for r in group if r.valid]
        walls = [r.wall for r in good]
        out.append(Summary(
            tool, hosts, scenario, len(group), len(good),
            statistics.median(walls) if walls else None, min(walls) if walls else None,
            max(walls) if walls else None,
            statistics.median(r.connections for r in good) / hosts if good else None,
            statistics.median(r.sessions for r in good) / hosts if good else None,
            good[-1].tool_stats if good else {},
            _median([r.host_cpu_ms for r in good]),
            _median([r.controller_cpu for r in good]),
            _per_host_ms(_median([r.controller_cpu for r in good]), hosts),
            _median([r.controller_mb for r in good]),
        ))
    return out


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def _per_host_ms(seconds: float | None, hosts: int) -> float | None:
    return None if seconds is None else round(seconds * 1000 / hosts, 1)


class EngineBench:
    """Runs every tool on the first n lab machines, for each n, `runs` times, and keeps every record."""

    def __init__(self, lab: BenchLab, tools: Sequence[Tool], workdir: Path, *, workload: Workload, runs: int,
                 max_hosts: dict[str, int] | None = None, say: Callable[[str], None] = print) -> None:
        self.lab = lab
        self.all_tools = list(tools)
        self.max_hosts = max_hosts or {}  # a tool runs only at sizes up to its entry (Ansible: minutes a run)
        self.workdir = workdir
        self.workload = workload
        self.runs = runs
        self.say = say
        self.records: list[RunRecord] = []
        self.login_floors: dict[int, list[float]] = {}  # host CPU ms per host of a bare login, per size and run
        self.blob, self.blob_sha256 = ensure_blob(workdir, workload.blob_bytes)

    def run_size(self, hosts: Sequence[Host], access: Access) -> list[RunRecord]:
        n = len(hosts)
        self.tools = [t for t in self.all_tools if n <= self.max_hosts.get(t.name, n)]
        self.lab.prepare(hosts)
        configs = {}
        for tool in self.tools:
            run_dir = self.workdir / "runs" / f"{tool.name}-n{n}"
            (run_dir / "logs").mkdir(parents=True, exist_ok=True)
            paths = {}
            for scenario, (version, _) in SCENARIOS.items():
                config = DriverConfig(list(hosts), access.user, str(access.key_file), str(access.known_hosts),
                                      forks=n, files=self.workload.files, version=version, blob=str(self.blob),
                                      blob_sha256=self.blob_sha256)
                paths[scenario] = config.save(run_dir / f"config-v{version}.json")
            tool.setup(run_dir, DriverConfig.load(paths["first"]))
            configs[tool.name] = (run_dir, paths)
        made: list[RunRecord] = []
        try:
            # Tools take turns within each repetition, so load from others on the machine hits all alike.
            for rep in range(self.runs):
                floor = hostcpu.login_floor_ms(self.lab.name, hosts, access)
                if floor is not None:
                    self.login_floors.setdefault(n, []).append(floor)
                for tool in self.tools:
                    run_dir, paths = configs[tool.name]
                    self.lab.reset(hosts)
                    before: dict[str, HostState] | None = None
                    marks = cursors(self.lab, hosts)
                    for scenario, (version, restarted) in SCENARIOS.items():
                        record, before, marks = self.measure(tool, hosts, scenario, rep, run_dir, paths[scenario],
                                                             version, restarted, before, marks)
                        made.append(record)
                        self.records.append(record)
                        status = ("ok" if record.valid else
                                  f"INVALID ({record.exit_code}; {'; '.join(record.problems[:3])})")
                        self.say(f"  n={n:<3} {tool.name:<8} {scenario:<7} run {rep + 1}: {record.wall:7.2f} s  "
                                 f"{record.connections} conn  {record.sessions} sessions  {status}")
        finally:
            for tool in self.tools:
                tool.finish()
        return made

    def measure(self, tool: Tool, hosts: Sequence[Host], scenario: str, rep: int, run_dir: Path, config_path: Path,
                version: int, restarted: bool | None, before: dict[str, HostState] | None,
                marks: dict[str, str]) -> tuple[RunRecord, dict[str, HostState], dict[str, str]]:
        """One run of `tool`, counted in sshd's log from the journal positions `marks`; returns its record,
        the hosts' state after it and their journal positions for the next run."""
        cpu_before = hostcpu.cpu_seconds(self.lab.name, hosts)
        helper_pid, helper_before, _ = tool.helper_usage()
        invocation = tool.invocation(run_dir, config_path)
        log = run_dir / "logs" / f"{scenario}-{rep + 1}.log"
        with log.open("w") as out, (run_dir / "logs" / f"{scenario}-{rep + 1}.stdout").open("w+") as stdout:
            tool_run = run_measured(invocation.argv, env={**os.environ, **invocation.env}, cwd=run_dir,
                                    stdout=stdout, stderr=out)
            stdout.seek(0)
            output = stdout.read()
        cpu_after = hostcpu.cpu_seconds(self.lab.name, hosts)
        pid_after, helper_after, helper_mb = tool.helper_usage()
        # A helper the run started counts from zero; one that was there before counts what it added.
        helper_cpu = helper_after - (helper_before if pid_after == helper_pid else 0.0)
        tool.cleanup(run_dir)
        # One visit per host after the run: sshd's lines since the mark, the end state, the next mark.
        after = self.lab.on_all(hosts, lambda h: count_script(marks[h.name]) + PROBE_SCRIPT + CURSOR_COMMAND)
        check(after, "reading the hosts after the run")
        counts = {name: parse_counts(result.stdout) for name, result in after.items()}
        states = {name: HostState.parse(result.stdout) for name, result in after.items()}
        wants = {h.name: expected(self.workload.with_version(version), h, self.blob_sha256) for h in hosts}
        problems = judge(states, hosts, wants, restarted=restarted, before=before)
        code = tool_run.exit_code
        if code != 0:
            tail = output.strip().splitlines()[-3:] + log.read_text(errors="replace").strip().splitlines()[-3:]
            problems = [f"exit code {code}: {' | '.join(tail)}", *problems]
        record = RunRecord(tool.name, len(hosts), scenario, rep + 1, round(tool_run.wall, 3), code,
                           sum(c.connections for c in counts.values()), sum(c.sessions for c in counts.values()),
                           tool.stats(output), problems, str(log), hostcpu.per_host_ms(cpu_before, cpu_after),
                           round(tool_run.cpu_seconds + helper_cpu, 3), round(max(tool_run.peak_mb, helper_mb), 1))
        return record, states, {name: parse_cursor(name, result) for name, result in after.items()}


@dataclass(frozen=True)
class ToolRun:
    exit_code: int  # -1: killed after RUN_TIMEOUT
    wall: float  # seconds, from the tool's start to its exit
    cpu_seconds: float  # user + system CPU of the tool and of the children it waited for (Ansible's forks)
    peak_mb: float  # peak resident memory of the largest process among them


def run_measured(argv: list[str], **popen: object) -> ToolRun:
    """Run a tool to its end through bench/starter.py, which measures it from outside the bench's memory.

    The same measure for every tool: wait4's usage of the tool and of the children it waited for.
    """
    read_end, write_end = os.pipe()
    with os.fdopen(read_end) as report:
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", starter.__file__, str(write_end), str(RUN_TIMEOUT),
                                     *argv], stdin=subprocess.DEVNULL, pass_fds=(write_end,),
                                    **popen)  # type: ignore[call-overload]
        finally:
            os.close(write_end)  # the starter holds the only write end: its exit ends the read
        line = report.read()
    if proc.wait() != 0 or not line:
        raise RuntimeError(f"bench/starter.py failed (exit {proc.returncode}) running {argv[0]}; see the run's log")
    code, wall, cpu, maxrss_kb = line.split()
    return ToolRun(-1 if int(code) == -9 else int(code), float(wall), float(cpu), int(maxrss_kb) / 1024)


def to_json(records: Sequence[RunRecord]) -> list[dict[str, object]]:
    return [asdict(r) for r in records]
