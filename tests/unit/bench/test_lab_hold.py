"""A bench holds its lab's subnet in the test labs' registry while it runs, so that a bench killed outright
does not leave a lab that fills every test subnet (CI of stop 22 failed that way: no block for 6 machines)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.hosts import held_while_running
from kbuild.errors import KbuildError
from tests.integration import labnet
from tests.integration.labnet import Registry, ReservationError

ROOT = Path(__file__).resolve().parents[3]
POOLS = [ipaddress.IPv4Network("198.18.0.32/27"), ipaddress.IPv4Network("198.18.0.128/25")]


@pytest.fixture(autouse=True)
def quiet_host(monkeypatch):
    """No host interfaces or labs on disk: only the reservations decide."""
    monkeypatch.setattr(labnet, "addresses_in_use", lambda own_lab: [])
    monkeypatch.setattr(labnet, "other_labs", lambda own_lab: [])


class RecordedLab:
    """Stands in for kbuild.lab.lab.Lab in the reaper: the lab's directory exists, and down() is recorded."""

    downs: list[str] = []

    def __init__(self, name: str) -> None:
        self.name = name
        self.paths = type("Paths", (), {"root": ROOT})()  # a directory that exists

    def down(self) -> None:
        RecordedLab.downs.append(self.name)


def test_while_a_bench_runs_its_subnet_is_held_and_a_test_session_is_told_by_whom(tmp_path):
    session = Registry(tmp_path, pid=1)  # another live process: pid 1 lives as long as we do
    with held_while_running("kb9bench", "198.18.0.0/24", registry=Registry(tmp_path)):
        with pytest.raises(ReservationError, match=rf"held by lab kb9bench \(198.18.0.0/24\) of process {os.getpid()}"):
            session.reserve("kbtest", 6, POOLS)
    assert list(tmp_path.glob("*.json")) == []  # ended normally: nothing left to reap
    assert session.reserve("kbtest", 6, POOLS) == "198.18.0.32/27"


def test_a_bench_is_refused_a_subnet_a_live_test_session_holds(tmp_path):
    Registry(tmp_path, pid=1).reserve("kbtest", 6, POOLS)  # 198.18.0.32/27
    with pytest.raises(KbuildError, match="lab kb9bench: subnet 198.18.0.0/24 overlaps 198.18.0.32/27 of lab 'kbtest'"):
        with held_while_running("kb9bench", "198.18.0.0/24", registry=Registry(tmp_path)):
            pytest.fail("the bench ran over a test session's lab")


def test_a_bench_killed_while_it_holds_its_lab_is_taken_down_by_the_next_test_session(tmp_path, monkeypatch):
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal\n"
         "from bench.hosts import held_while_running\n"
         "hold = held_while_running('kb9bench', '198.18.0.0/24')\n"  # kept: a collected one would release
         "hold.__enter__()\n"
         "os.kill(os.getpid(), signal.SIGKILL)\n"],
        cwd=ROOT, env={**os.environ, "KBUILD_TEST_LAB_REGISTRY": str(tmp_path)}, capture_output=True, text=True,
        check=False)
    assert killed.returncode == -9, killed.stderr
    assert [p.name.split("-", 1)[1] for p in tmp_path.glob("*.json")] == ["kb9bench.json"]
    monkeypatch.setattr(labnet, "Lab", RecordedLab)
    RecordedLab.downs = []
    assert Registry(tmp_path).reap(say=lambda message: None) == ["kb9bench"]
    assert RecordedLab.downs == ["kb9bench"] and list(tmp_path.glob("*.json")) == []


@pytest.mark.parametrize(("argv", "held"), [
    (["engines", "--sizes", "1"], [("kb9bench", "198.18.0.192/26")]),
    (["engines", "--existing", "--lab", "mine", "--sizes", "1"], []),  # the user's lab, left as found
    (["bootstrap"], [("kb9boot", "198.18.0.240/28")]),
    (["table", "results.json"], []),
])
def test_commands_that_bring_a_lab_up_hold_it_and_no_others(monkeypatch, tmp_path, argv, held):
    seen: list[tuple[str, str]] = []

    def hold(lab, subnet):
        seen.append((lab, subnet))
        return held_while_running(lab, subnet, registry=Registry(tmp_path))

    monkeypatch.setattr(bench_main, "held_while_running", hold)
    monkeypatch.setattr(bench_main, "run_command", lambda args: 0)
    assert bench_main.main(argv) == 0
    assert seen == held
