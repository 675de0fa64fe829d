"""The benchmark harness in smoke mode (N=1, one run, a small workload) on the shared lab, so it keeps working.

Real parts: systemd, OpenSSH sshd (its log counts connections and sessions) and sudo in a
systemd-nspawn machine; kbuild's engine over paramiko; pyinfra and ansible-core (the `bench`
extra) with the OpenSSH client. Timings are printed by the harness, never asserted.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.harness import EngineBench
from bench.hosts import BenchLab
from bench.tools import TOOLS, Invocation, Tool
from bench.workload import Workload

pytestmark = pytest.mark.integration


class DoesNothing(Tool):
    """A "tool" that exits 0 at once: it would win every race if runs were not checked on the hosts."""

    name = "nothing"

    def invocation(self, run_dir: Path, config_path: Path) -> Invocation:
        return Invocation(["true"])


def test_smoke_all_tools_one_host(lab, tmp_path):
    for name, tool in TOOLS.items():
        assert tool().available() is None, f"{name}: {tool().available()}"
    out = tmp_path / "engines.json"
    keepers_before = set(Path(tempfile.gettempdir()).glob("kbb-keeper-*"))  # kbuild-kept's keeper directories
    code = main(["engines", "--existing", "--lab", lab.name, "--sizes", "1", "--runs", "1", "--files", "3",
                 "--blob-mib", "1", "--workdir", str(tmp_path / "work"), "--out", str(out)])
    payload = json.loads(out.read_text())
    bad = [(r["tool"], r["scenario"], r["problems"]) for r in payload["records"] if r["problems"] or r["exit_code"]]
    assert code == 0 and not bad, bad
    records = {(r["tool"], r["scenario"]): r for r in payload["records"]}
    assert set(records) == {(t, s) for t in TOOLS for s in ("first", "noop", "change")}
    # sshd's own log agrees with the engine's counters, and with the engine's contract:
    # one connection per host; facts + apply on a first run, facts alone on a no-op run.
    for scenario, trips in (("first", 2), ("noop", 1), ("change", 2)):
        kbuild = records[("kbuild", scenario)]
        assert (kbuild["connections"], kbuild["sessions"]) == (1, trips)
        assert (kbuild["tool_stats"]["connections"], kbuild["tool_stats"]["round_trips"]) == (1, trips)
    # With ssh.persist, kbuild logs in on its first run only; later runs reuse that login through the keeper
    # (sshd saw no new connection), and the keeper is gone once the bench is done with it.
    for scenario, conns, trips in (("first", 1, 2), ("noop", 0, 1), ("change", 0, 2)):
        kept = records[("kbuild-kept", scenario)]
        assert (kept["connections"], kept["sessions"]) == (conns, trips), scenario
        assert (kept["tool_stats"]["connections"], kept["tool_stats"]["round_trips"]) == (conns, trips)
    assert set(Path(tempfile.gettempdir()).glob("kbb-keeper-*")) <= keepers_before
    # Every tool was counted (a session per remote command), so the table compares like with like.
    assert all(records[(t, "noop")]["sessions"] > 1 for t in ("pyinfra", "ansible"))
    table = out.with_suffix(".md").read_text()
    assert "kbuild/pyinfra" in table and "kbuild/ansible" in table and "| 1 | noop |" in table
    # A bare login's host CPU was measured from the machine's cgroup, and a no-op costs the host more than that.
    (floor,) = payload["login_floor_ms"]["1"]  # one measurement per run
    assert 0 < floor < records[("kbuild", "noop")]["host_cpu_ms"] and "bare SSH login" in table
    # The lab is left as found: nothing of the workload, no sshd drop-in.
    leftovers = lab.exec(lab.machines[0].name, "ls /etc/kbbench /etc/ssh/sshd_config.d/kbbench.conf "
                                               "/etc/systemd/system/kbbench.service 2>/dev/null | wc -l")
    assert leftovers.stdout.strip() == "0"


def test_a_tool_that_skips_the_work_does_not_count(lab, tmp_path):
    bench_lab = BenchLab(lab.name, say=lambda message: None)
    hosts = bench_lab.hosts()[:1]
    bench = EngineBench(bench_lab, [DoesNothing()], tmp_path, workload=Workload(files=2, blob_bytes=65536), runs=1,
                        say=lambda message: None)
    try:
        records = bench.run_size(hosts, bench_lab.access())
    finally:
        bench_lab.restore(hosts)
    assert records and not any(r.valid for r in records)
    first = next(r for r in records if r.scenario == "first")
    assert first.exit_code == 0 and any("file /etc/kbbench/file-00.conf" in p for p in first.problems)
    assert any("service kbbench active" in p for p in first.problems)
