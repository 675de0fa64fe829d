"""The upgrade plan: order of steps, what is skipped, batches, resumption, and how it reads."""

from __future__ import annotations

import pytest

from kbuild.engine.resources import Artifact, Directory, File, Service
from kbuild.engine.runner import Plan
from kbuild.plays.clusterfacts.nodes import Node
from kbuild.plays.upgrade.nodes import ANNOTATION
from kbuild.plays.upgrade.plan import build
from kbuild.plays.upgrade.rolling import APISERVER, CONTROLLERS, split_plan
from kbuild.plays.upgrade.running import (
    HostVersions,
    Installed,
    Version,
    cluster_target,
)

from tests.unit.supported import ETCD_PREVIOUS, ETCD_VERSION, KUBE, KUBE_PREVIOUS, short, step

from .upgrade_fakes import observed

OLD, NEW = KUBE_PREVIOUS, KUBE
URL = f"https://dl.k8s.io/release/v{NEW}/bin/linux/amd64/x"
ETCD_DONE = ETCD_VERSION  # etcd already at the target: only Kubernetes moves
ETCD_CLUSTER_OLD = Version.parse(step(ETCD_PREVIOUS, 0))  # the cluster version etcd negotiates before the upgrade


@pytest.fixture
def cluster(cluster_from):
    return cluster_from(f"""\
        cluster: {{name: t, versions: {{kubernetes: {NEW}, etcd: {ETCD_VERSION}}}}}
        hosts:
          m1: {{address: 198.18.0.10, roles: [etcd, control-plane]}}
          m2: {{address: 198.18.0.11, roles: [etcd, control-plane]}}
          m3: {{address: 198.18.0.12, roles: [etcd, control-plane]}}
          w1: {{address: 198.18.0.13, roles: [worker]}}
          w2: {{address: 198.18.0.14, roles: [worker]}}
          w3: {{address: 198.18.0.15, roles: [worker]}}
        """)


def order(plan) -> list[tuple[str, tuple[str, ...]]]:
    return [(s.kind, s.hosts) for s in plan.pending]


def test_steps_follow_the_skew_policy_order_with_the_etcd_leader_last(cluster):
    plan = build(cluster, observed(cluster), cluster_target(cluster), etcd_leader="m1",
                 etcd_cluster_version=ETCD_CLUSTER_OLD)
    assert order(plan) == [
        ("snapshot", ("m2",)),
        ("etcd", ("m2",)), ("etcd", ("m3",)), ("etcd", ("m1",)),
        ("apiserver", ("m1",)), ("apiserver", ("m2",)), ("apiserver", ("m3",)),
        ("controllers", ("m1",)), ("controllers", ("m2",)), ("controllers", ("m3",)),
        ("workers", ("w1",)), ("workers", ("w2",)), ("workers", ("w3",)),
    ]
    assert plan.of_kind("etcd")[-1].note == "leader, last"
    assert plan.refusals == []
    assert [f.rule for f in plan.warnings] == []  # the default etcd is a recommended one


def test_workers_go_in_batches_of_max_unavailable(cluster):
    plan = build(cluster, observed(cluster, etcd=ETCD_DONE), cluster_target(cluster), max_unavailable=2)
    assert [s.hosts for s in plan.pending if s.kind == "workers"] == [("w1", "w2"), ("w3",)]
    assert "workers in batches of 2" in plan.text()


def test_hosts_already_at_the_target_are_skipped_so_a_rerun_resumes(cluster):
    # A run stopped after the first apiserver: etcd done everywhere, m1's apiserver done.
    done = {("m1", "kube-apiserver"): Installed("kube-apiserver", Version.parse(NEW), True)}
    plan = build(cluster, observed(cluster, etcd=ETCD_DONE, overrides=done), cluster_target(cluster))
    assert order(plan)[:3] == [("snapshot", ("m1",)), ("apiserver", ("m2",)), ("apiserver", ("m3",))]
    skipped = [(s.kind, s.hosts) for s in plan.steps if s.skip and s.kind != "snapshot"]
    assert ("apiserver", ("m1",)) in skipped and ("etcd", ("m1",)) in skipped
    assert plan.refusals == []  # m1 at NEW beside m2, m3 at OLD is within the HA apiserver skew


def test_a_replaced_binary_still_running_the_old_process_gets_its_restart(cluster):
    stale = {("m2", "kube-scheduler"): Installed("kube-scheduler", Version.parse(NEW), True, stale=True)}
    state = observed(cluster, kube=NEW, etcd=ETCD_DONE, overrides=stale)
    plan = build(cluster, state, cluster_target(cluster))
    assert order(plan) == [("snapshot", ("m1",)), ("controllers", ("m2",))]
    actions = {c.component: c.action for c in plan.pending[1].changes}
    assert actions == {"kube-controller-manager": "none", "kube-scheduler": "restart"}


def test_a_node_left_cordoned_by_an_interrupted_run_is_finished(cluster):
    state = observed(cluster, kube=NEW, etcd=ETCD_DONE)
    nodes = {"w2": Node("w2", True, True, f"v{NEW}", frozenset({ANNOTATION})),
             "w1": Node("w1", True, True, f"v{NEW}")}
    plan = build(cluster, state, cluster_target(cluster), nodes=nodes)
    assert order(plan) == [("snapshot", ("m1",)), ("workers", ("w2",))]
    assert "finish" in plan.pending[1].title()
    assert plan.upgrading  # so `kbuild bootstrap` finishes it too


def test_nothing_to_do_takes_no_snapshot(cluster):
    plan = build(cluster, observed(cluster, kube=NEW, etcd=ETCD_DONE), cluster_target(cluster))
    assert plan.work == [] and plan.pending == []
    assert "nothing to do" in plan.text()


def test_hosts_with_nothing_installed_are_left_to_bootstrap(cluster):
    state = observed(cluster)
    state["w3"] = HostVersions("w3", {})
    plan = build(cluster, state, cluster_target(cluster), etcd_cluster_version=ETCD_CLUSTER_OLD)
    assert plan.not_installed == ["w3"]
    assert ("workers", ("w3",)) not in order(plan)


def test_a_refused_plan_says_why_and_lists_no_steps(cluster):
    plan = build(cluster, observed(cluster, kube=step(NEW, -2), etcd=ETCD_DONE), cluster_target(cluster))
    assert [f.rule for f in plan.refusals] == ["skip"]
    text = plan.text()
    assert "REFUSED, nothing was changed" in text and f"skips {short(OLD)}" in text
    assert "steps, in this order" not in text
    data = plan.as_json()
    assert data["refused"] is True and data["findings"][0]["rule"] == "skip"


def test_an_unmanaged_node_too_far_behind_refuses_the_plan(cluster):
    nodes = {"legacy": Node("legacy", True, False, f"v{step(OLD, -3)}")}  # 4 behind NEW
    plan = build(cluster, observed(cluster, etcd=ETCD_DONE), cluster_target(cluster), nodes=nodes)
    assert [f.rule for f in plan.refusals] == ["skew"]
    assert "node/legacy" in plan.refusals[0].message


def test_the_etcd_cluster_version_gates_etcd_steps_only(cluster):
    target = cluster_target(cluster)
    too_old = Version.parse(step(ETCD_PREVIOUS, -1))
    refused = build(cluster, observed(cluster), target, etcd_cluster_version=too_old)
    assert [f.rule for f in refused.refusals] == ["etcd-cluster-version"]
    fine = build(cluster, observed(cluster, etcd=ETCD_DONE), target, etcd_cluster_version=too_old)
    assert fine.refusals == []


def test_control_plane_plans_split_apiserver_first_and_carry_shared_files():
    ca = File("/etc/kubernetes/pki/ca.crt", "ca", notify=("kube-apiserver", "kube-controller-manager",
                                                         "kube-scheduler"))
    plan = Plan([
        Directory("/etc/kubernetes"), ca,
        Artifact("/usr/local/bin/kube-apiserver", "a" * 64, url=URL, notify=("kube-apiserver",)),
        Artifact("/usr/local/bin/kube-scheduler", "b" * 64, url=URL, notify=("kube-scheduler",)),
        Artifact("/usr/local/bin/kubectl", "c" * 64, url=URL),
        File("/etc/kubernetes/controller-manager.conf", "x", notify=("kube-controller-manager",)),
        Service("kube-apiserver"), Service("kube-controller-manager"), Service("kube-scheduler"),
    ])
    first = [r.key for r in split_plan(plan, APISERVER, unowned=True)]
    assert first == ["directory:/etc/kubernetes", "file:/etc/kubernetes/pki/ca.crt",
                     "artifact:/usr/local/bin/kube-apiserver", "artifact:/usr/local/bin/kubectl",
                     "service:kube-apiserver"]
    second = [r.key for r in split_plan(plan, CONTROLLERS, unowned=False)]
    assert second == ["file:/etc/kubernetes/pki/ca.crt", "artifact:/usr/local/bin/kube-scheduler",
                      "file:/etc/kubernetes/controller-manager.conf", "service:kube-controller-manager",
                      "service:kube-scheduler"]


def test_a_host_left_half_done_goes_first_and_alone_is_no_upgrade(cluster):
    # An earlier run upgraded m2's apiserver, which then failed to start: it is finished before m1 and m3,
    # whose pre-checks would otherwise wait for m2 to be ready.
    down = {("m2", "kube-apiserver"): Installed("kube-apiserver", Version.parse(NEW), False)}
    plan = build(cluster, observed(cluster, etcd=ETCD_DONE, overrides=down), cluster_target(cluster))
    assert [s.hosts[0] for s in plan.pending if s.kind == "apiserver"] == ["m2", "m1", "m3"]
    assert plan.pending[1].changes[0].action == "start" and plan.upgrading
    # With every version right, a stopped unit is not an upgrade: `kbuild bootstrap` starts it as usual.
    only_down = build(cluster, observed(cluster, kube=NEW, etcd=ETCD_DONE, overrides=down), cluster_target(cluster))
    assert [s.kind for s in only_down.work] == ["apiserver"] and not only_down.upgrading
