"""--forks bounds how many hosts are worked on at once; hosts beyond it wait their turn."""

from __future__ import annotations

import threading
import time

import pytest

from kbuild.engine.resources import File
from kbuild.engine.runner import HostStatus, Plan
from tests.unit.engine.conftest import LocalConnection

NAMES = ("h1", "h2", "h3", "h4", "h5")


@pytest.fixture
def busiest(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every remote command takes a moment; records how many ran at the same time, at most."""
    lock, running, peak = threading.Lock(), [0], [0]
    real_run = LocalConnection.run

    def slow_run(self, command, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.15)
            return real_run(self, command, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(LocalConnection, "run", slow_run)
    return peak


@pytest.mark.parametrize("forks", [1, 2, 5])
def test_forks_bound_the_hosts_in_flight(host, busiest: list[int], forks: int) -> None:
    runner, _, _ = host.runner(names=NAMES)
    runner.forks = forks
    plans = {name: Plan([File(host.path(f"{name}/conf"), f"{name}\n")]) for name in NAMES}
    outcomes = runner.apply("d", plans)
    assert {o.status for o in outcomes.values()} == {HostStatus.CHANGED}
    assert busiest[0] == forks
