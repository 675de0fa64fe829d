"""The benchmark harness's pure parts: end-state checks catch skipped work, sshd counts, medians, tables, targets."""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import replace

import pytest

from bench import workload as wl
from bench.drivers.config import PERSIST_VARIABLE
from bench.harness import RunRecord, summarize
from bench.report import engine_tables, login_floor_lines, targets
from bench.sshdlog import SshCounts, count_script, parse_counts
from bench.tools import TOOLS
from bench.verify import HostState, problems
from bench.workload import Host, Workload, ensure_blob, expected
from kbuild.engine.mux import DIRECTORY_VARIABLE
from kbuild.engine.muxd import PID_NAME

HOST = Host("kb9bench-worker-1", "198.18.0.203")


def probe_output(workload: Workload, blob_sha: str, *, skip: str | None = None) -> str:
    """What the probe prints on a host where a tool did everything (or skipped one thing)."""
    lines = [f"dir {wl.CONF_DIR_MODE:o} root:root"]
    for path, text in workload.conf_files(HOST).items():
        if skip == path:
            continue
        lines.append(f"conf {path} {wl.CONF_MODE:o} root:root {hashlib.sha256(text.encode()).hexdigest()}")
    unit_sha = hashlib.sha256(wl.UNIT_SOURCE.read_bytes()).hexdigest()
    seen = hashlib.sha256(workload.render(HOST, 0).encode()).hexdigest()
    lines += [
        f"blob {wl.BLOB_MODE:o} root:root {blob_sha}",
        f"unit {wl.UNIT_MODE:o} root:root {unit_sha}",
        "enabled enabled",
        f"active {'inactive' if skip == 'service' else 'active'}",
        "invocation 1234",
        f"seen {seen}",
        f"sysctl {wl.SYSCTL_DEFAULT if skip == 'sysctl' else wl.SYSCTL_VALUE}",
        f"persisted {wl.SYSCTL_VALUE}",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def blob_sha(tmp_path_factory) -> str:
    return ensure_blob(tmp_path_factory.mktemp("blob"), 4096)[1]


def test_a_host_with_everything_passes(blob_sha):
    workload = Workload(files=3, blob_bytes=4096)
    state = HostState.parse(probe_output(workload, blob_sha))
    assert problems(state, expected(workload, HOST, blob_sha)) == []
    assert state.invocation == "1234"


@pytest.mark.parametrize("skip, needle", [
    (wl.conf_path(2), "file /etc/kbbench/file-02.conf"),
    ("service", "service kbbench active"),
    ("sysctl", f"sysctl {wl.SYSCTL_KEY}"),
])
def test_skipped_work_is_caught(blob_sha, skip, needle):
    workload = Workload(files=3, blob_bytes=4096)
    state = HostState.parse(probe_output(workload, blob_sha, skip=skip))
    found = problems(state, expected(workload, HOST, blob_sha))
    assert len(found) == 1 and found[0].startswith(needle), found


def test_a_changed_file_the_service_never_reread_is_caught(blob_sha):
    # The host has version 1 everywhere; the run should have brought file-00 to version 2 and restarted.
    old = HostState.parse(probe_output(Workload(files=2, blob_bytes=4096), blob_sha))
    found = problems(old, expected(Workload(files=2, blob_bytes=4096, version=2), HOST, blob_sha))
    assert any(p.startswith("file /etc/kbbench/file-00.conf") for p in found)
    assert any("started with the current" in p for p in found)


def test_rendering_is_per_host_and_version():
    one, two = Workload(files=2), Workload(files=2, version=2)
    assert one.render(HOST, 0) != two.render(HOST, 0)  # file-00 carries the version
    assert one.render(HOST, 1) == two.render(HOST, 1)  # the others never change
    assert one.render(HOST, 1) != one.render(Host("other", "198.18.0.204"), 1)
    assert one.render(HOST, 0).endswith("\n") and "version = 1" in one.render(HOST, 0)


def test_blob_is_deterministic(tmp_path):
    first = ensure_blob(tmp_path / "a", 10_000)
    second = ensure_blob(tmp_path / "b", 10_000)
    assert first[1] == second[1] and first[0].stat().st_size == 10_000


def test_sshd_counts_parse_and_script_waits_for_its_marker():
    assert parse_counts("connections 1\nsessions 27\n").sessions == 27
    assert parse_counts("").connections == 0
    # Among the end-state probe's lines, some of which have no value (a service not enabled):
    assert parse_counts("dir absent\nenabled \nconnections 2\nactive inactive\nsessions 5\n") == SshCounts(2, 5)
    assert "--after-cursor='s=abc;i=1'" in count_script("s=abc;i=1")


def test_the_count_script_syncs_the_journal_then_counts_sshd_lines_in_one_pass_writing_no_file(tmp_path):
    sshd = ("Accepted publickey for root from 198.18.0.1 port 50000 ssh2: ED25519 SHA256:x\n"
            "Starting session: command for root from 198.18.0.1 port 50000 id 0\n"
            "Starting session: subsystem 'sftp' for root from 198.18.0.1 port 50000 id 1\n"
            "Disconnected from user root 198.18.0.1 port 50000\n")
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    work.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "journalctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                                        'case "$*" in *sshd*) printf %s "$SSHD" ;; esac\n')
    (bin_dir / "journalctl").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SSHD": sshd, "TMPDIR": str(tmp_path / "none")}
    done = subprocess.run(["sh", "-c", count_script("s=abc")], env=env, cwd=work,
                          capture_output=True, text=True, check=True)
    assert parse_counts(done.stdout) == SshCounts(connections=1, sessions=2)
    # journald has stored everything sshd sent it before the lines are read.
    assert calls.read_text().splitlines() == ["--sync", "--after-cursor=s=abc -t sshd -o cat -q"]
    assert list(work.iterdir()) == [] and "/tmp" not in count_script("s")


def record(tool: str, scenario: str, wall: float, *, n: int = 20, ok: bool = True, sessions: int = 20) -> RunRecord:
    return RunRecord(tool, n, scenario, 1, wall, 0 if ok else 1, n, sessions * n,
                     problems=[] if ok else ["kb9bench-worker-1: file missing"])


def test_invalid_runs_do_not_count_and_the_table_says_so():
    records = [record("kbuild", "noop", 0.5), record("kbuild", "noop", 0.7), record("kbuild", "noop", 0.1, ok=False),
               record("pyinfra", "noop", 3.0), record("ansible", "noop", 9.0), record("ansible", "noop", 1.0, ok=False)]
    by = {(s.tool, s.scenario): s for s in summarize(records)}
    assert by[("kbuild", "noop")].median == pytest.approx(0.6)  # the 0.1 s run skipped work: not counted
    assert by[("kbuild", "noop")].valid == 2 and by[("kbuild", "noop")].runs == 3
    assert by[("pyinfra", "noop")].round_trips_per_host == 20
    table = engine_tables(summarize(records))
    assert "0.60 [0.50–0.70] (1 of 3 runs invalid)" in table
    assert "0.20 (×5.0 faster)" in table  # kbuild/pyinfra
    assert "| 20 | noop | 1 / 20 | 1 / 20 | 1 / 20 |" in table


def test_targets_report_met_and_missed():
    records = [record("kbuild", "noop", 0.5), record("pyinfra", "noop", 0.4), record("ansible", "noop", 9.0),
               record("kbuild", "first", 2.0), record("pyinfra", "first", 3.0)]
    lines = targets(summarize(records))
    assert lines[0].endswith("MISSED")  # slower than pyinfra's no-op
    assert lines[1].endswith("met") and "18.0x" in lines[1]
    assert lines[2].startswith("first run at N=20") and lines[2].endswith("met")


def test_the_scale_targets_are_judged_at_100_hosts_with_memory_per_added_host():
    def noop(tool: str, n: int, wall: float, host_ms: float, controller_s: float, mb: float) -> RunRecord:
        return replace(record(tool, "noop", wall, n=n), host_cpu_ms=host_ms, controller_cpu=controller_s,
                       controller_mb=mb)
    records = [noop("kbuild", 100, 6.0, 40.0, 2.5, 60.0), noop("pyinfra", 100, 40.0, 300.0, 60.0, 90.0),
               noop("kbuild", 200, 15.0, 45.0, 8.0, 80.0)]
    lines = [line for line in targets(summarize(records)) if "N=100" in line or "memory" in line]
    assert any("5x faster; measured 6.7x) — met" in line for line in lines), lines
    assert any("(target: under 6.5 s) — met" in line for line in lines)
    assert any(line.startswith("host CPU of a no-op at N=100: 40.0 ms") and line.endswith("met") for line in lines)
    assert any(line.startswith("controller CPU of a no-op at N=100: 25.0 ms") and line.endswith("met")
               for line in lines)
    assert any("0.20 MB per added host" in line for line in lines)
    slow = [noop("kbuild", 100, 7.0, 60.0, 3.5, 60.0), noop("pyinfra", 100, 30.0, 300.0, 60.0, 90.0)]
    missed = [line for line in targets(summarize(slow)) if "N=100" in line and "first" not in line]
    assert len(missed) == 4 and all(line.endswith("MISSED") for line in missed), missed
    kept = [line for line in targets(summarize(slow + [noop("kbuild-kept", 100, 5.0, 24.5, 2.0, 61.0)]))
            if "ssh.persist" in line]
    assert kept == ["host CPU of a no-op at N=100 with ssh.persist (kbuild-kept): 24.5 ms per host "
                    "(target: under 50) — met"]


def test_the_login_floor_is_printed_per_size_in_host_order():
    assert login_floor_lines({}) == []
    (_, line) = login_floor_lines({"200": [31.26], "100": [28.0, 30.0, 26.5]})
    assert line.endswith("ms per host: N=100 28.0 [26.5–30.0], N=200 31.3.")


def test_a_tool_in_a_venv_of_its_own_reports_that_venvs_version(tmp_path, monkeypatch):
    # pyinfra pins paramiko below 5, so it runs from KBUILD_BENCH_TOOLS: its version is asked of that Python.
    for name, body in (("pyinfra", "exit 0"), ("python", 'echo "3.99.1"')):
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("KBUILD_BENCH_TOOLS", str(tmp_path))
    assert TOOLS["pyinfra"]().version() == "3.99.1"
    (tmp_path / "python").write_text("#!/bin/sh\nexit 1\n")
    assert TOOLS["pyinfra"]().version() == "not installed"


def test_merged_results_keep_every_login_floor_measurement_of_every_file():
    from bench.__main__ import merge

    older = {"kind": "engines", "records": [], "login_floor_ms": {"100": 40.1}}  # a median alone
    newer = {"kind": "engines", "records": [], "login_floor_ms": {"100": [38.0, 39.0], "200": [42.6]}}
    merged, _ = merge([older, newer])
    assert merged["login_floor_ms"] == {"100": [40.1, 38.0, 39.0], "200": [42.6]}


def test_newer_results_replace_a_tools_runs_at_their_size_and_pool_the_rest():
    from bench.__main__ import merge

    def record(tool: str, hosts: int, rep: int, wall: float) -> dict:
        return {"tool": tool, "hosts": hosts, "scenario": "noop", "rep": rep, "wall": wall, "exit_code": 0,
                "connections": hosts, "sessions": hosts}

    older = {"kind": "engines", "records": [record("kbuild", 100, 1, 9.0), record("kbuild", 50, 1, 2.0),
                                            record("ansible", 100, 1, 700.0)], "login_floor_ms": {"100": [40.0]}}
    more = {"kind": "engines", "records": [record("ansible", 100, 2, 710.0)], "login_floor_ms": {}}
    newer = {"kind": "engines", "records": [record("kbuild", 100, 1, 3.0), record("kbuild", 100, 2, 4.0)],
             "login_floor_ms": {"100": [39.0]}}
    merged, summaries = merge([older, more], [newer])
    walls = {(s.tool, s.hosts): (s.runs, s.median) for s in summaries}
    assert walls == {("kbuild", 100): (2, 3.5), ("kbuild", 50): (1, 2.0), ("ansible", 100): (2, 705.0)}
    assert merged["login_floor_ms"] == {"100": [40.0, 39.0]}


def test_kbuild_kept_runs_with_persist_and_counts_its_keepers_cpu_and_memory(tmp_path):
    """The keeper outlives each run, so the run's own process tree misses its CPU: the tool reads it from /proc."""
    tool = TOOLS["kbuild-kept"]()
    tool.setup(tmp_path, None)  # type: ignore[arg-type]
    keeper_dir = tool.keeper_dir
    assert keeper_dir is not None and keeper_dir.stat().st_mode & 0o077 == 0
    env = tool.invocation(tmp_path, tmp_path / "config.json").env
    assert env[PERSIST_VARIABLE] == "60.0" and env[DIRECTORY_VARIABLE] == str(keeper_dir)
    assert tool.helper_usage() == (None, 0.0, 0.0)  # no keeper yet
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(30)"
    keeper = subprocess.Popen(["python3", "-c", spin])  # stands in for the keeper's process: it burns 0.3 s
    try:
        (keeper_dir / PID_NAME).write_text(f"{keeper.pid}\n")
        deadline = time.monotonic() + 10
        while tool.helper_usage()[1] < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        pid, cpu, mb = tool.helper_usage()
        assert pid == keeper.pid and cpu >= 0.25 and mb > 1
        tool.finish()  # stops the keeper and removes its directory
        assert keeper.wait(10) != 0 and not keeper_dir.exists()
    finally:
        keeper.kill()
