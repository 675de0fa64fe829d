"""Issue 14's cluster addons and pod-network choice in the plays: the addons phase of bootstrap, CoreDNS in
`kbuild status` (and its table), and `cluster.cni: none` in the node plans and in status."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess

import pytest

from kbuild import layout, pki
from kbuild.artifacts import cluster_artifacts
from kbuild.cli.cluster import print_status
from kbuild.engine.facts import RouteFact
from kbuild.engine.resources import Absent, Command, Route, Service
from kbuild.engine.runner import Plan
from kbuild.engine.ssh import Result
from kbuild.plays import bootstrap, control_plane, node, cluster_status
from kbuild.plays.desired import INPUTS, gather_inputs
from kbuild.inventory import Cluster
from kbuild.plays.phases import Context
from tests.unit.fakes import FakeSession, PlanRecorder

MASTER = "  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}\n"
WORKER = "  w1: {address: 198.18.0.11, roles: [worker]}\n"
DEPLOYMENT = json.dumps({"spec": {"replicas": 2}, "status": {"replicas": 2, "availableReplicas": 2}})


class Recorder:
    """Hosts that answer `answers` (a command containing the key prints the value; None: it fails), and the
    session over them once `context` made it: plans recorded, not applied."""

    def __init__(self, answers: dict[str, str | None] | None = None) -> None:
        self.answers = answers or {}
        self.session: FakeSession | None = None

    def answer(self, host: str, command: str) -> Result:
        for needle, answer in self.answers.items():
            if needle in command:
                return Result(0 if answer is not None else 1, (answer or "").encode(), b"no such object")
        return Result(0, b"", b"")

    @property
    def applied(self) -> dict[str, dict[str, Plan]]:
        assert self.session is not None and isinstance(self.session.runner, PlanRecorder)
        return dict(self.session.runner.applied)

    @property
    def messages(self) -> list[str]:
        assert self.session is not None
        return self.session.messages


def context(cluster: Cluster, recorder: Recorder, *, check: bool = False) -> Context:
    recorder.session = FakeSession(cluster.hosts, recorder.answer, runner=PlanRecorder, check=check)
    ctx = Context(cluster, recorder.session, check=check)
    ctx.state.put(INPUTS, {h.name: gather_inputs(cluster, h, ()) for h in cluster.hosts})
    return ctx


@pytest.fixture
def cluster_of(cluster_from):
    def make(hosts: str, settings: str = "") -> object:
        cluster = cluster_from(f"cluster: {{name: t{', ' + settings if settings else ''}}}\n"
                               f"pki: {{key_algorithm: ecdsa-p256}}\nhosts:\n{hosts}")
        pki.ensure(cluster)
        return cluster
    return make


# -- the addons phase -------------------------------------------------------------------------------------


def test_coredns_is_applied_through_the_first_control_plane_and_gated_on_its_rollout(cluster_of) -> None:
    cluster = cluster_of(MASTER + WORKER)
    recorder = Recorder()
    ctx = context(cluster, recorder)
    bootstrap.phase_addons(ctx)
    (plan,) = recorder.applied["addons"].values()
    assert list(recorder.applied["addons"]) == ["m1"]
    apply = plan.resources[0]
    assert isinstance(apply, Command) and apply.name == "apply CoreDNS"
    assert f"apply --server-side --force-conflicts --field-manager=kbuild -f {layout.COREDNS_MANIFEST}" in apply.command
    # Applied again only when the manifest changed (its digest is stamped) or its objects went missing.
    manifest = next(f.content for f in ctx.state.get(INPUTS)["m1"].rendered if f.path == layout.COREDNS_MANIFEST)
    digest = hashlib.sha256(manifest.encode()).hexdigest()
    assert f"grep -qx {digest} " in apply.unless and f"get -f {layout.COREDNS_MANIFEST}" in apply.unless
    available, old_gone = plan.gates
    assert available.name == "CoreDNS available" and available.always
    assert "rollout status deployment/coredns -n kube-system" in available.command
    assert old_gone.name == "CoreDNS's old replicas gone" and old_gone.always


NODES = "node w1 True\nnode w2 Unknown\n"


@pytest.mark.parametrize(("pods", "nodes", "passes"), [
    ("pod w1 \npod w1 \n", NODES, True),  # both replicas current
    ("pod w1 \npod w1 2026-12-04T20:00:00Z\n", NODES, False),  # an old one in its lame-duck seconds
    ("pod w1 \npod w2 2026-12-04T20:00:00Z\n", NODES, True),  # stuck on a node that is gone: not waited for
    ("pod w1 \n", None, False),  # the nodes could not be read: not taken as healthy
    (None, NODES, False),
])
def test_the_old_replicas_gate_waits_for_terminating_coredns_pods_on_ready_nodes(
        cluster_of, tmp_path, pods: str | None, nodes: str | None, passes: bool) -> None:
    recorder = Recorder()
    bootstrap.phase_addons(context(cluster_of(MASTER + WORKER), recorder))
    (plan,) = recorder.applied["addons"].values()
    gate = plan.gates[1]
    # The gate's own shell text, run against a kubectl that prints what the API would.
    fake = tmp_path / "kubectl"
    fake.write_text("#!/bin/sh\ncase \"$*\" in\n"
                    f"  *'get nodes'*) {answer(nodes)} ;;\n"
                    f"  *'get pods'*) {answer(pods)} ;;\n"
                    "esac\n")
    fake.chmod(0o755)
    command = gate.command.replace(str(layout.binary_path("kubectl")), str(fake))
    assert str(fake) in command
    assert (subprocess.run(["sh", "-c", command], check=False).returncode == 0) is passes


def answer(output: str | None) -> str:
    return f"printf {shlex.quote(output)}" if output is not None else "exit 1"


def test_a_budget_the_cluster_can_no_longer_honour_is_deleted_and_one_it_can_is_kept(cluster_of) -> None:
    two_workers = MASTER + WORKER + "  w2: {address: 198.18.0.12, roles: [worker]}\n"
    for hosts, removed in ((MASTER + WORKER, True), (two_workers, False)):
        recorder = Recorder()
        bootstrap.phase_addons(context(cluster_of(hosts), recorder))
        (plan,) = recorder.applied["addons"].values()
        names = [r.name for r in plan.resources]
        assert ("remove CoreDNS's disruption budget" in names) is removed, hosts
    recorder = Recorder()
    bootstrap.phase_addons(context(cluster_of(MASTER + WORKER), recorder))
    (plan,) = recorder.applied["addons"].values()
    apply, remove = plan.resources
    assert "delete pdb/coredns -n kube-system --ignore-not-found" in remove.command
    assert remove.unless.startswith("! ") and "get pdb/coredns -n kube-system" in remove.unless  # only if it exists


def test_with_cni_none_coredns_is_applied_but_not_waited_for(cluster_of) -> None:
    recorder = Recorder()
    bootstrap.phase_addons(context(cluster_of(MASTER + WORKER, "cni: none"), recorder))
    (plan,) = recorder.applied["addons"].values()
    assert plan.resources and plan.gates == []  # its pods wait for the network the user installs


def test_without_a_worker_coredns_is_applied_not_waited_for_and_the_user_is_told(cluster_of) -> None:
    recorder = Recorder()
    bootstrap.phase_addons(context(cluster_of(MASTER), recorder))
    (plan,) = recorder.applied["addons"].values()
    assert plan.resources and plan.gates == []
    assert "no worker yet: CoreDNS is applied and starts on the first worker added" in recorder.messages


def test_in_check_mode_nothing_is_waited_for(cluster_of) -> None:
    recorder = Recorder()
    bootstrap.phase_addons(context(cluster_of(MASTER + WORKER), recorder, check=True))
    (plan,) = recorder.applied["addons"].values()
    assert plan.gates == []


def test_with_coredns_disabled_the_phase_does_nothing(cluster_of) -> None:
    recorder = Recorder()
    bootstrap.phase_addons(context(cluster_of(MASTER + WORKER, "addons: {coredns: {enabled: false}}"), recorder))
    assert recorder.applied == {}


# -- cluster.cni: none in the node plans ------------------------------------------------------------------


def node_plan(cluster) -> Plan:  # noqa: ANN001
    return node.plan(cluster, gather_inputs(cluster, cluster.host("w1"), ()))


def managed(plan: Plan) -> set[str]:
    return {getattr(r, "path", None) or getattr(r, "name", "") for r in plan.resources}


def test_cni_none_leaves_out_the_cni_config_the_pod_routes_and_their_unit(cluster_of) -> None:
    two_workers = MASTER + WORKER + "  w2: {address: 198.18.0.12, roles: [worker]}\n"
    own = node_plan(cluster_of(two_workers))
    users = cluster_of(two_workers, "cni: none")
    theirs = node_plan(users)
    kbuild_network = {str(layout.CNI_BRIDGE_CONF), str(layout.CNI_LOOPBACK_CONF),
                      str(layout.unit_path("kbuild-pod-routes")), "kbuild-pod-routes"}
    assert kbuild_network <= managed(own)
    assert not kbuild_network & managed(theirs)
    assert any(isinstance(r, Route) for r in own.resources)
    assert not [r for r in theirs.resources if isinstance(r, (Route, Command)) and "route" in r.name]
    # The CNI directories and the standard plugins stay: the user's network add-on writes its config there, and
    # many (flannel) delegate to the bridge and host-local plugins.
    assert {str(layout.CNI_CONF_DIR), str(layout.CNI_BIN_DIR)} <= managed(theirs)
    assert {"bridge", "host-local", "loopback"} <= {a.name for a in cluster_artifacts(users, prepare=False)["w1"]}


def test_the_bridge_network_removes_the_cni_config_older_kbuilds_wrote(cluster_of) -> None:
    # 10-bridge.conf sorts before 10-bridge.conflist: left on an upgraded host, it would be the network containerd
    # loads, without portmap (hostPort). It goes; the user's network (cni: none) is left alone.
    retired = [r for r in node_plan(cluster_of(MASTER + WORKER)).resources if isinstance(r, Absent)]
    assert [r.path for r in retired] == ["/etc/cni/net.d/10-bridge.conf"]
    assert sorted(["10-bridge.conf", layout.CNI_BRIDGE_CONF.name])[0] == "10-bridge.conf"
    assert not [r for r in node_plan(cluster_of(MASTER + WORKER, "cni: none")).resources if isinstance(r, Absent)]


def test_a_control_plane_without_kubelet_sets_the_pod_routes_itself(cluster_of) -> None:
    cluster = cluster_of(MASTER + WORKER + "  w2: {address: 198.18.0.12, roles: [worker]}\n")
    resources = control_plane.plan(cluster, gather_inputs(cluster, cluster.host("m1"), ())).resources
    routes = [r for r in resources if isinstance(r, Route)]
    assert [r.describe() for r in routes] == ["route 10.200.0.0/24 via w1", "route 10.200.1.0/24 via w2"]
    assert routes[0].action(RouteFact()).script == "ip route replace 10.200.0.0/24 via 198.18.0.11"
    assert any(isinstance(r, Service) and r.name == "kbuild-pod-routes" for r in resources)
    users = cluster_of(MASTER + WORKER, "cni: none")
    assert not [r for r in control_plane.plan(users, gather_inputs(users, users.host("m1"), ())).resources
                if isinstance(r, (Route, Command)) and "route" in r.name]


# -- CoreDNS in status ------------------------------------------------------------------------------------


def test_parse_deployment_reads_replicas_asked_for_and_available() -> None:
    assert cluster_status.parse_deployment("coredns", DEPLOYMENT) == cluster_status.AddonStatus("coredns", 2, 2)
    rolling_out = json.dumps({"spec": {"replicas": 3}, "status": {"replicas": 3}})  # none available yet
    assert cluster_status.parse_deployment("coredns", rolling_out) == cluster_status.AddonStatus("coredns", 3, 0)


@pytest.mark.parametrize("addon,ok", [
    (cluster_status.AddonStatus("coredns", 2, 2), True),
    (cluster_status.AddonStatus("coredns", 2, 1), True),  # still answering names
    (cluster_status.AddonStatus("coredns", 2, 0), False),
    (cluster_status.AddonStatus("coredns", 0, 0), False),  # scaled to nothing
    (cluster_status.AddonStatus("coredns", 2, 0, error="not found"), False),
    (cluster_status.AddonStatus("coredns", 2, 0, waiting="no worker to run on"), True),
    (cluster_status.AddonStatus("coredns", 2, 0, error="not found", waiting="no worker to run on"), False),
])
def test_an_addon_is_ok_when_available_or_expectedly_waiting(addon, ok) -> None:
    assert addon.ok is ok
    report = cluster_status.ClusterStatus([], addons=[addon])
    assert any(p.startswith("addon coredns") for p in report.problems) is not ok


def collect(cluster, answers: dict[str, str | None]) -> cluster_status.ClusterStatus:  # noqa: ANN001
    return cluster_status.collect(context(cluster, Recorder(answers)))


def test_status_asks_the_api_for_the_coredns_deployment(cluster_of) -> None:
    report = collect(cluster_of(MASTER + WORKER), {"get deployment coredns -n kube-system -o json": DEPLOYMENT})
    assert report.addons == [cluster_status.AddonStatus("coredns", 2, 2)]
    missing = collect(cluster_of(MASTER + WORKER), {"get deployment coredns": None})
    (addon,) = missing.addons
    assert not addon.ok and addon.error == "no such object"
    assert collect(cluster_of(MASTER + WORKER, "addons: {coredns: {enabled: false}}"), {}).addons == []


def test_unexpected_kubectl_output_is_a_problem_not_a_crash(cluster_of) -> None:
    report = collect(cluster_of(MASTER + WORKER), {"get deployment coredns": "error: the server is shutting down"})
    (addon,) = report.addons
    assert not addon.ok and addon.error.startswith("unexpected kubectl output")


def test_without_a_worker_coredns_is_waiting_not_unhealthy_and_the_table_says_why(cluster_of, capsys) -> None:
    idle = json.dumps({"spec": {"replicas": 2}, "status": {}})
    report = collect(cluster_of(MASTER), {"get deployment coredns": idle})
    (addon,) = report.addons
    assert addon.waiting == "no worker to run on" and addon.ok
    assert not [p for p in report.problems if p.startswith("addon")]
    assert report.as_json()["addons"] == [{"name": "coredns", "desired": 2, "available": 0, "error": "",
                                           "waiting": "no worker to run on", "ok": True}]
    print_status(report)
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "coredns" in line]
    assert "0/2 (no worker to run on)" in row


def test_with_cni_none_a_not_ready_node_is_explained(cluster_of) -> None:
    nodes = json.dumps({"items": [{"metadata": {"name": "w1"}, "spec": {},
                                   "status": {"conditions": [{"type": "Ready", "status": "False"}]}}]})
    answers = {"get nodes -o json": nodes, "get deployment coredns": DEPLOYMENT}
    theirs = collect(cluster_of(MASTER + WORKER, "cni: none"), answers)
    assert theirs.no_pod_network
    assert "node w1: not Ready (cluster.cni is none: the node waits for the pod network you install)" in theirs.problems
    own = collect(cluster_of(MASTER + WORKER), answers)
    assert "node w1: not Ready" in own.problems and not own.no_pod_network
