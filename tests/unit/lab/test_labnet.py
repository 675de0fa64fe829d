"""The test sessions' lab registry (tests/integration/labnet.py): two sessions on one machine never share a lab."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

import pytest

from kbuild.lab.state import LabState
from tests.integration import labnet
from tests.integration.labnet import Registry, ReservationError, block_size, choose, process_start

POOLS = [ipaddress.IPv4Network("198.18.0.32/27"), ipaddress.IPv4Network("198.18.0.64/26")]


@pytest.fixture(autouse=True)
def quiet_host(monkeypatch):
    """No host interfaces or other labs: only the reservations decide."""
    monkeypatch.setattr(labnet, "addresses_in_use", lambda own_lab: [])
    monkeypatch.setattr(labnet, "other_labs", lambda own_lab: [])


def test_block_sizes():
    assert block_size(1) == 28 and block_size(5) == 28  # .10-.14 before the broadcast .15
    assert block_size(6) == 27 and block_size(21) == 27
    assert block_size(22) == 26


def test_choose_skips_reserved_blocks_and_used_addresses():
    reserved = [ipaddress.IPv4Network("198.18.0.32/28")]
    assert choose(POOLS, 3, reserved, []) == ipaddress.IPv4Network("198.18.0.48/28")
    used = [ipaddress.IPv4Address("198.18.0.58")]  # a machine of someone's lab
    assert choose(POOLS, 3, reserved, used) == ipaddress.IPv4Network("198.18.0.64/28")
    assert choose(POOLS, 6, [], []) == ipaddress.IPv4Network("198.18.0.32/27")
    assert choose(POOLS, 60, [], []) is None


def test_two_live_sessions_get_disjoint_subnets(tmp_path):
    ours, theirs = Registry(tmp_path), Registry(tmp_path, pid=1)  # pid 1 is alive for as long as we are
    taken = [ipaddress.IPv4Network(theirs.reserve("kbaaaa", 3, POOLS)),
             ipaddress.IPv4Network(theirs.reserve("kbaaaa-ha", 6, POOLS))]
    mine = [ipaddress.IPv4Network(ours.reserve("kbbbbb", 3, POOLS)),
            ipaddress.IPv4Network(ours.reserve("kbbbbb-ha", 6, POOLS))]
    assert not any(a.overlaps(b) for a in taken for b in mine), (taken, mine)
    assert not mine[0].overlaps(mine[1])


def test_a_lab_name_held_by_a_live_session_is_refused(tmp_path):
    Registry(tmp_path, pid=1).reserve("kbtest", 3, POOLS)
    with pytest.raises(ReservationError, match="in use by the test session of process 1"):
        Registry(tmp_path).reserve("kbtest", 3, POOLS)
    with pytest.raises(ReservationError, match="overlaps 198.18.0.32/28 of lab 'kbtest'"):
        Registry(tmp_path).reserve("kbmine", 3, POOLS, subnet="198.18.0.32/27")


def test_a_full_pool_says_what_to_set(tmp_path):
    with pytest.raises(ReservationError, match="KBUILD_TEST_LAB_POOL"):
        Registry(tmp_path).reserve("kbbig", 100, POOLS)


def test_a_pool_filled_by_a_lab_no_session_holds_names_it_and_how_to_remove_it(tmp_path, monkeypatch):
    # What CI met: a 200-machine bench lab left on the machine held every block of the pool.
    bench_lab = LabState("kb9bench", 1, 89, "198.18.0.0/24", "kb-kb9bench", "/image", "2026-12-04")  # .10-.99
    monkeypatch.setattr(labnet, "other_labs", lambda own_lab: [bench_lab])
    monkeypatch.setattr(labnet, "addresses_in_use", lambda own_lab: [m.address for m in bench_lab.plan.machines])
    assert Registry(tmp_path, pid=1).reserve("kbtest", 3, POOLS) == "198.18.0.112/28"  # a live session's, the last
    with pytest.raises(ReservationError) as caught:
        Registry(tmp_path).reserve("kbmine", 6, POOLS)
    assert str(caught.value) == (
        "no free block for 6 machines in 198.18.0.32/27, 198.18.0.64/26: held by lab kbtest (198.18.0.112/28) of "
        "process 1; lab kb9bench (198.18.0.0/24, 90 machines; `kbuild lab down --name kb9bench` removes it); "
        "free one or set KBUILD_TEST_LAB_POOL")


def test_a_dead_sessions_reservations_are_reaped(tmp_path):
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    dead_pid = int(child.stdout)
    assert process_start(dead_pid) is None
    record = {"lab": "kbdead", "subnet": "198.18.0.32/28", "pid": dead_pid, "started": "1"}
    (tmp_path / f"{dead_pid}-kbdead.json").write_text(json.dumps(record))
    (tmp_path / "torn.json").write_text("{")  # a write cut short: dropped, not honoured
    registry = Registry(tmp_path)
    # The dead session's block is free again; its lab directory does not exist, so nothing is taken down.
    assert registry.reserve("kbnew", 3, POOLS) == "198.18.0.32/28"
    assert registry.reap(say=lambda message: None) == []
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [f"{registry.pid}-kbnew.json"]
    registry.release("kbnew")
    assert list(tmp_path.glob("*.json")) == []


def test_a_reused_pid_is_not_the_same_owner(tmp_path):
    record = {"lab": "kbold", "subnet": "198.18.0.32/28", "pid": 1, "started": "not-init's-start-time"}
    (tmp_path / "1-kbold.json").write_text(json.dumps(record))
    assert Registry(tmp_path).reserve("kbold", 3, POOLS) == "198.18.0.32/28"
