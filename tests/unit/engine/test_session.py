"""The engine session: facts read through the runner, so an unreachable host is reported and sits out the run,
a failed or garbled query is one line naming host and query, and a revived host takes part again."""

from __future__ import annotations

import pytest

from kbuild.engine.plan import HostStatus
from kbuild.engine.session import Query, QueryError
from kbuild.engine.ssh import Result
from kbuild.errors import ExitCode, UnreachableError
from tests.unit.fakes import FakeSession

NUMBER = Query("the number", "echo 42", lambda text: int(text.strip()))


@pytest.fixture
def hosts(one_master_two_workers):
    return one_master_two_workers.hosts


def test_a_fact_is_read_through_the_runner(hosts) -> None:
    session = FakeSession(hosts, lambda host, command: "42\n")
    assert session.read("probe", "w1", NUMBER) == 42
    assert session.commands == [("w1", "echo 42")] and session.exit_code() is ExitCode.OK


def test_an_unreachable_host_is_reported_then_sits_out_the_run(hosts) -> None:
    session = FakeSession(hosts, lambda host, command: "42", unreachable={"w2"})
    with pytest.raises(UnreachableError, match="w2: connection refused"):
        session.read("probe", "w2", NUMBER)
    (event,) = [e for e in session.events if e.event == "host.unreachable"]
    assert (event.host, event.phase) == ("w2", "probe")
    assert dict(session.dead) == {"w2": HostStatus.UNREACHABLE} and not session.is_up("w2")
    assert session.exit_code() is ExitCode.UNREACHABLE
    with pytest.raises(UnreachableError, match="unreachable earlier in this run"):
        session.run("later", "w2", "true")
    outcomes = session.each("later", ["w1", "w2"], lambda conn: None)
    assert outcomes["w2"].status is HostStatus.SKIPPED and outcomes["w1"].status is HostStatus.OK


def test_a_failed_or_garbled_query_is_one_line_naming_host_and_query(hosts) -> None:
    failing = FakeSession(hosts, lambda host, command: Result(2, b"", b"line one\nsh: etcdctl: not found\n"))
    with pytest.raises(QueryError, match=r"^w1: the number failed \(exit 2\): line one sh: etcdctl: not found$"):
        failing.read("probe", "w1", NUMBER)
    garbled = FakeSession(hosts, lambda host, command: "forty-two\n")
    with pytest.raises(QueryError, match=r"^w1: unexpected the number output: invalid literal for int"):
        garbled.read("probe", "w1", NUMBER)
    assert failing.is_up("w1") and garbled.is_up("w1")  # the host answered: its data was bad, not the host


def test_gather_reads_every_host_and_fails_only_the_one_that_cannot_answer(hosts) -> None:
    session = FakeSession(hosts, lambda host, command: "7" if host != "w1" else "garbage", unreachable={"w2"})
    found, outcomes = session.gather("probe", {h.name: NUMBER for h in hosts}, summary=lambda n: f"number {n}")
    assert found == {"m1": 7}
    assert {n: o.status for n, o in outcomes.items()} == {
        "m1": HostStatus.OK, "w1": HostStatus.FAILED, "w2": HostStatus.UNREACHABLE}
    assert outcomes["w1"].message == "w1: unexpected the number output: invalid literal for int() with base 10: " \
                                     "'garbage'"
    assert "number 7" in session.messages


def test_a_revived_host_takes_part_again_and_can_reconnect(hosts) -> None:
    session = FakeSession(hosts, lambda host, command: "42", unreachable={"w1"})
    with pytest.raises(UnreachableError):
        session.read("probe", "w1", NUMBER)
    session.unreachable.clear()  # back up, say after a reboot
    session.revive("w1")  # in the run again, but the pool still remembers the failed connection
    with pytest.raises(UnreachableError, match="connection refused"):
        session.read("probe", "w1", NUMBER)
    session.revive("w1", reconnect=True)
    assert session.read("probe", "w1", NUMBER) == 42 and session.is_up("w1")
