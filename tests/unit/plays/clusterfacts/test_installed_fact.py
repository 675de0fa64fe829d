"""The installed-components fact gathered through the session: every host's recorded probe output parsed, and
an upgrade refused with every host it could not read named (unreachable, failed), never a partial answer."""

from __future__ import annotations

import pytest

from kbuild.engine.ssh import Result
from kbuild.errors import KbuildError
from kbuild.plays.phases import Context
from kbuild.plays.upgrade.running import Version, detect
from tests.unit.fakes import FakeSession
from tests.unit.plays.test_upgrade_versions import MASTER, WORKER


@pytest.fixture
def cluster(one_master_two_workers):
    return one_master_two_workers


def answer(host: str, command: str) -> str | Result:
    return {"m1": MASTER, "w1": WORKER}.get(host) or Result(127, b"", b"sh: 1: stat: not found\n")


def test_every_host_is_read_in_one_round_trip(cluster) -> None:
    session = FakeSession([cluster.host("m1"), cluster.host("w1")], answer)
    found = detect(Context(cluster, session), [cluster.host("m1"), cluster.host("w1")])
    assert found["m1"].get("kube-apiserver").version == Version(1, 37, 2)
    assert found["m1"].get("kube-controller-manager").stale and not found["m1"].get("kube-scheduler").present
    assert found["w1"].get("kubelet").version == Version(1, 37, 2) and not found["w1"].get("kubelet").active
    assert [h for h, _ in session.commands] == ["m1", "w1"]
    assert any(m.startswith("kube-apiserver 1.37.2") or "etcd 3.6.16" in m for m in session.messages)


def test_a_host_not_read_refuses_the_plan_naming_each(cluster) -> None:
    session = FakeSession(cluster.hosts, answer, unreachable={"w1"})
    with pytest.raises(KbuildError) as info:
        detect(Context(cluster, session), list(cluster.hosts))
    message = str(info.value)
    assert "cannot read the versions running on every host" in message
    assert "  w1: unreachable: w1: connection refused" in message
    assert "  w2: failed: w2: reading component versions failed (exit 127): sh: 1: stat: not found" in message
    assert "m1:" not in message
