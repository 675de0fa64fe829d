"""The rolling apply against a recording runner: Ctrl-C between hosts, the etcd leader last even when it moves,
cordon before and uncordon after, and the pre-upgrade snapshot."""

from __future__ import annotations

import json
import os
import signal
import sys
import types
from pathlib import Path

import pytest

from kbuild.engine.runner import Plan
from kbuild.errors import ExitCode
from kbuild.inventory import Cluster
from kbuild.plays.phases import Context
from kbuild.plays.upgrade import rolling
from kbuild.plays.upgrade.nodes import ANNOTATION
from kbuild.plays.upgrade.plan import build
from kbuild.plays.upgrade.stop import UpgradeStopped
from kbuild.plays.upgrade.running import (
    HostVersions,
    Installed,
    Version,
    cluster_target,
)

from tests.unit.supported import ETCD_PREVIOUS, ETCD_VERSION, KUBE

from tests.unit.fakes import FakeSession, PlanRecorder

from .upgrade_fakes import observed


class World:
    """Hosts as the runner and kubectl see them: who leads etcd, which nodes are cordoned."""

    def __init__(self, leaders: list[str], cordoned: set[str] = frozenset()) -> None:
        self.leaders = list(leaders)  # the leader each successive `endpoint status` reports
        self.cordoned = set(cordoned)
        self.commands: list[tuple[str, str]] = []
        self.applied: list[tuple[str, tuple[str, ...]]] = []  # (phase, hosts) of plans with resources
        self.on_apply = None

    def answer(self, host: str, command: str) -> str:
        self.commands.append((host, command))
        if "endpoint status --cluster" in command:
            leader = self.leaders.pop(0) if len(self.leaders) > 1 else self.leaders[0]
            ids = {"m1": 1, "m2": 2, "m3": 3}
            return json.dumps([{"Endpoint": f"https://198.18.0.1{ids[h]}:2379",
                                "Status": {"header": {"member_id": ids[h]}, "leader": ids[leader]}}
                               for h in ids])
        if "get nodes -o json" in command:
            return json.dumps({"items": [{"metadata": {"name": n}, "spec": {"unschedulable": n in self.cordoned},
                                          "status": {}} for n in ("w1", "w2")]})
        if "ExecMainStartTimestamp" in command:
            return "@1700000000"
        return ""


class Events:
    def __init__(self, session: FakeSession) -> None:
        self.session = session

    def upgrade(self) -> list[tuple[str, str | None]]:
        return [(e.data["upgrade"], e.host) for e in self.session.events if e.data and "upgrade" in e.data]


@pytest.fixture
def cluster(cluster_from):
    return cluster_from(f"""\
        cluster: {{name: t, versions: {{kubernetes: {KUBE}, etcd: {ETCD_VERSION}}}}}
        hosts:
          m1: {{address: 198.18.0.11, roles: [etcd, control-plane]}}
          m2: {{address: 198.18.0.12, roles: [etcd, control-plane]}}
          m3: {{address: 198.18.0.13, roles: [etcd, control-plane]}}
          w1: {{address: 198.18.0.21, roles: [worker]}}
          w2: {{address: 198.18.0.22, roles: [worker]}}
        """)


@pytest.fixture(autouse=True)
def plays(monkeypatch):
    """Component plans as placeholders: what matters here is the order the rollout applies them in."""
    from kbuild.engine.resources import Command

    def placeholder(cluster, inputs):  # noqa: ANN001
        return Plan([Command(f"upgrade {inputs}", "true", notify=("kube-apiserver", "kube-scheduler"))])

    for module in (rolling.etcd, rolling.control_plane, rolling.node):
        monkeypatch.setattr(module, "plan", placeholder)


@pytest.fixture
def snapshots(monkeypatch):
    taken = []
    module = types.ModuleType("kbuild.plays.etcd_backup")

    def take_snapshot(ctx, *, reason, output=None, keep=None):  # noqa: ANN001
        taken.append((reason, ctx.cluster.settings.versions.etcd))
        return types.SimpleNamespace(path=Path("/state/backups/snap.db"), metadata={})

    module.take_snapshot = take_snapshot
    monkeypatch.setitem(sys.modules, "kbuild.plays.etcd_backup", module)
    return taken


def context(cluster: Cluster, world: World) -> tuple[Context, Events]:
    session = FakeSession(cluster.hosts, world.answer, runner=PlanRecorder)

    def applying(phase: str, plans: dict[str, Plan]) -> None:
        """Plans with resources are the steps that change hosts: recorded in the world, in order."""
        if any(p.resources for p in plans.values()):
            world.applied.append((phase, tuple(plans)))
            if world.on_apply:
                world.on_apply(phase, tuple(plans))

    assert isinstance(session.runner, PlanRecorder)
    session.runner.on_apply = applying
    return Context(cluster, session), Events(session)


def test_every_step_in_order_with_the_leader_last_even_when_leadership_moves(cluster, snapshots):
    world = World(leaders=["m1", "m3"])  # m3 takes over after m2's restart
    ctx, events = context(cluster, world)
    plan = build(cluster, observed(cluster), cluster_target(cluster), etcd_leader="m1")
    assert [s.hosts[0] for s in plan.of_kind("etcd")] == ["m2", "m3", "m1"]  # as planned
    done = rolling.run(ctx, plan, inputs={h.name: h.name for h in cluster.hosts})
    assert world.applied == [
        ("upgrade-etcd", ("m2",)), ("upgrade-etcd", ("m1",)), ("upgrade-etcd", ("m3",)),  # as the leader moved
        ("upgrade-apiserver", ("m1",)), ("upgrade-apiserver", ("m2",)), ("upgrade-apiserver", ("m3",)),
        ("upgrade-controllers", ("m1",)), ("upgrade-controllers", ("m2",)), ("upgrade-controllers", ("m3",)),
        ("upgrade-workers", ("w1",)), ("upgrade-workers", ("w2",)),
    ]
    assert len(done) == 11
    # Taken with the running etcd.
    assert snapshots == [(f"upgrade to kubernetes {KUBE}, etcd {ETCD_VERSION}", ETCD_PREVIOUS)]
    assert events.upgrade()[:2] == [("start", "m2"), ("done", None)]  # snapshot first


def test_workers_are_cordoned_before_and_uncordoned_after_unless_someone_else_cordoned_them(cluster, snapshots):
    world = World(leaders=["m1"], cordoned={"w1"})
    ctx, events = context(cluster, world)
    state = observed(cluster)
    for host in ("m1", "m2", "m3"):  # the control plane is done: only workers are left
        state[host] = HostVersions(host, {c: Installed(c, Version.parse(ETCD_VERSION if c == "etcd" else KUBE),
                                                       True) for c in state[host].components})
    plan = build(cluster, state, cluster_target(cluster), max_unavailable=2)
    rolling.run(ctx, plan, inputs={h.name: h.name for h in cluster.hosts})
    kubectl = [c.split("admin.conf ", 1)[1] for h, c in world.commands if "kubectl" in c and "get" not in c]
    assert kubectl == [
        "drain w1 --ignore-daemonsets --delete-emptydir-data --timeout=120s",  # w1 was cordoned already
        f"annotate node w2 {ANNOTATION}={KUBE} --overwrite", "cordon w2",
        "drain w2 --ignore-daemonsets --delete-emptydir-data --timeout=120s",
        "uncordon w2", f"annotate node w2 {ANNOTATION}-",
    ]
    steps = [s for s in events.upgrade() if s[0] in ("cordoned", "drained", "uncordoned")]
    assert steps == [("cordoned", "w1"), ("drained", "w1"), ("cordoned", "w2"), ("drained", "w2"),
                     ("uncordoned", "w2")]
    assert world.applied == [("upgrade-workers", ("w1", "w2"))]  # one batch of two


def test_ctrl_c_finishes_the_host_in_progress_then_stops(cluster, snapshots):
    world = World(leaders=["m1"])
    ctx, events = context(cluster, world)
    plan = build(cluster, observed(cluster), cluster_target(cluster), etcd_leader="m1")

    def interrupt(phase, hosts):  # Ctrl-C while the first apiserver is being upgraded
        if phase == "upgrade-apiserver" and hosts == ("m1",):
            os.kill(os.getpid(), signal.SIGINT)

    world.on_apply = interrupt
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(UpgradeStopped) as stopped:
        rolling.run(ctx, plan, inputs={h.name: h.name for h in cluster.hosts})
    assert stopped.value.exit_code == ExitCode.INTERRUPTED
    assert "after apiserver on m1" in str(stopped.value) and "run the same command again" in str(stopped.value)
    assert world.applied[-1] == ("upgrade-apiserver", ("m1",))  # m1 finished, m2 never started
    assert events.upgrade()[-3:] == [("start", "m1"), ("done", "m1"), ("stopped", None)]
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C means Ctrl-C again afterwards


def test_each_controllers_step_waits_for_a_leader_before_the_next_step(cluster, snapshots):
    # A restarted leader leaves no controller acting until its Lease expires: the workers' drains must not
    # start in that window, so every controllers step ends on a gate per leader-elected component.
    world = World(leaders=["m1"])
    ctx, _ = context(cluster, world)
    gated = []
    apply = ctx.session.runner.apply

    def recording(phase, plans, **kw):  # noqa: ANN001, ANN202
        gated.extend((phase, host, g.name) for host, p in plans.items() for g in p.gates if "Lease" in g.name)
        return apply(phase, plans, **kw)

    ctx.session.runner.apply = recording
    rolling.run(ctx, build(cluster, observed(cluster), cluster_target(cluster), etcd_leader="m1"),
                inputs={h.name: h.name for h in cluster.hosts})
    assert gated == [("upgrade-controllers", h, f"{c} leads (its Lease renewed since the restart)")
                     for h in ("m1", "m2", "m3") for c in ("kube-controller-manager", "kube-scheduler")]
