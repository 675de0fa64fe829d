"""The look at etcd before a plan: refuse an upgrade from an unhealthy cluster, but finish a member left half done."""

from __future__ import annotations

import json

import pytest

from kbuild.plays.phases import Context
from kbuild.plays.upgrade import observe
from kbuild.plays.upgrade.running import HostVersions, Installed, Version
from tests.unit.fakes import FakeSession
from tests.unit.supported import ETCD_PREVIOUS, ETCD_VERSION

# /version of a 3.5.35 member, recorded before its upgrade.
CLUSTER_VERSION = b'{"etcdserver":"3.5.35","etcdcluster":"3.5.0"}'


@pytest.fixture
def cluster(cluster_from):
    return cluster_from(f"""\
        cluster: {{name: t, versions: {{etcd: {ETCD_VERSION}}}}}
        hosts:
          m1: {{address: 198.18.0.11, roles: [etcd]}}
          m2: {{address: 198.18.0.12, roles: [etcd]}}
          m3: {{address: 198.18.0.13, roles: [etcd]}}
          c1: {{address: 198.18.0.14, roles: [control-plane]}}
        """)


def run(cluster, monkeypatch, members: dict[str, Installed]):  # noqa: ANN001, ANN201
    def answer(host: str, command: str) -> str:
        if "endpoint status" in command:
            return json.dumps([{"Endpoint": "https://198.18.0.12:2379", "Status": {
                "header": {"member_id": 2}, "leader": 2, "version": ETCD_PREVIOUS}}])
        return CLUSTER_VERSION.decode()

    observed = {h: HostVersions(h, {"etcd": i}) for h, i in members.items()}
    monkeypatch.setattr(observe, "detect", lambda ctx, hosts, known: observed)
    session = FakeSession(cluster.hosts, answer)
    return observe.survey(Context(cluster, session)), [command for _, command in session.commands]


OLD, NEW = Version.parse(ETCD_PREVIOUS), Version.parse(ETCD_VERSION)


def test_a_member_down_at_its_old_version_refuses_the_etcd_upgrade(cluster, monkeypatch):
    plan, commands = run(cluster, monkeypatch, {"m1": Installed("etcd", OLD, False), "m2": Installed("etcd", OLD, True),
                                                "m3": Installed("etcd", OLD, True)})
    assert [f.rule for f in plan.refusals] == ["etcd-unhealthy"] and "not running on m1" in plan.refusals[0].message
    assert commands == []


def test_a_member_left_down_at_the_target_is_started_first_and_the_leader_still_goes_last(cluster, monkeypatch):
    plan, commands = run(cluster, monkeypatch, {"m1": Installed("etcd", OLD, True), "m2": Installed("etcd", OLD, True),
                                                "m3": Installed("etcd", NEW, False)})
    assert plan.refusals == []
    assert [(s.hosts[0], s.changes[0].action) for s in plan.pending if s.kind == "etcd"] == [
        ("m3", "start"), ("m1", "upgrade"), ("m2", "upgrade")]  # m2 leads
    # The leader is asked of the running members only (m3 would make `--cluster` fail).
    assert "--endpoints=https://198.18.0.11:2379,https://198.18.0.12:2379" in commands[0]
