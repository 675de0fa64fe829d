"""`kbuild bootstrap`'s upgrade phase: when it rolls, when it only reports, and when it refuses."""

from __future__ import annotations


import pytest

from kbuild.errors import ExitCode, UsageError
from kbuild.plays.phases import Context
from kbuild.plays.upgrade import guard
from kbuild.plays.upgrade.plan import build
from kbuild.plays.upgrade.running import (
    HostVersions,
    Installed,
    Version,
    cluster_target,
)

from tests.unit.fakes import FakeSession
from tests.unit.supported import ETCD_VERSION, KUBE, KUBE_PREVIOUS, short, step

from .upgrade_fakes import observed


@pytest.fixture
def cluster(cluster_from):
    return cluster_from(f"""\
        cluster: {{name: t, versions: {{kubernetes: {KUBE}, etcd: {ETCD_VERSION}}}}}
        hosts:
          m1: {{address: 198.18.0.10, roles: [etcd, control-plane]}}
          w1: {{address: 198.18.0.11, roles: [worker]}}
        """)


def running(cluster, kube: str, *, active: bool = True) -> dict[str, HostVersions]:
    """Every host at `kube` and the inventory's etcd; active=False: the kubelets are stopped."""
    stopped = {} if active else {(h.name, "kubelet"): Installed("kubelet", Version.parse(kube), False)
                                 for h in cluster.hosts if h.runs_kubelet}
    return observed(cluster, kube=kube, etcd=ETCD_VERSION, overrides=stopped)


@pytest.fixture
def phase(cluster, monkeypatch):
    """Run the phase with the survey's answer given; returns what it said and whether it rolled."""
    said, rolled = [], []
    monkeypatch.setattr(guard, "known_binaries", lambda ctx: {})
    monkeypatch.setattr(guard, "prepare_inputs", lambda ctx: {})
    monkeypatch.setattr(guard.rolling, "run", lambda ctx, plan, inputs: rolled.append(plan))

    def run(observed, *, check=False, hosts=None):  # noqa: ANN001, ANN202
        plan = build(cluster, observed, cluster_target(cluster))
        monkeypatch.setattr(guard, "survey", lambda ctx, known: plan)
        monkeypatch.setattr(guard, "detect", lambda ctx, hosts, known: observed)
        session = FakeSession(hosts or cluster.hosts)
        ctx = Context(cluster, session, check=check)
        ctx.say = lambda text, phase=None: said.append(text)  # type: ignore[method-assign]
        guard.bootstrap_phase(ctx)
        return said, rolled

    return run


def test_other_versions_on_the_hosts_are_rolled_in_the_upgrade_order(phase, cluster):
    said, rolled = phase(running(cluster, KUBE_PREVIOUS))
    assert len(rolled) == 1 and [s.kind for s in rolled[0].work] == ["apiserver", "controllers", "workers"]
    assert "the same as `kbuild upgrade apply`" in said[0]


def test_check_mode_shows_the_plan_and_rolls_nothing(phase, cluster):
    said, rolled = phase(running(cluster, KUBE_PREVIOUS), check=True)
    assert rolled == [] and "would roll" in said[0] and "steps, in this order" in said[0]


def test_a_stopped_unit_with_the_right_versions_is_left_to_the_other_phases(phase, cluster):
    said, rolled = phase(running(cluster, KUBE, active=False))
    assert rolled == [] and said == ["every host runs the inventory's versions"]


def test_a_forbidden_upgrade_is_refused_before_anything_changes(phase, cluster):
    with pytest.raises(guard.UpgradeRefused) as refused:
        phase(running(cluster, step(KUBE, -2)))
    assert refused.value.exit_code == ExitCode.BAD_INPUT and f"skips {short(KUBE_PREVIOUS)}" in str(refused.value)
    # The hint is the command to type next, with the -i (and any --state-dir) the user gave.
    assert f"`{cluster.command('upgrade plan')}` shows the steps" in refused.value.hint


def test_an_upgrade_is_never_planned_under_limit(phase, cluster):
    with pytest.raises(UsageError, match="never under --limit") as refused:
        phase(running(cluster, KUBE_PREVIOUS), hosts=[cluster.host("w1")])
    assert f"`{cluster.command('upgrade apply')}`" in refused.value.hint
