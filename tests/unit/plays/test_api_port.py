"""cluster.api_port reaches everything that talks to the apiserver: its flag, the kubeconfigs, the bootstrap,
restore and upgrade gates, `kbuild status`'s probe and preflight's port check (issue 12's bug: only the flag
followed it, so bootstrap failed at the control-plane gate)."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from kbuild import layout, pki
from kbuild.engine.runner import Plan
from kbuild.inventory import Cluster
from kbuild.plays import bootstrap, control_plane, preflight, cluster_status
from kbuild.plays.desired import prepare_inputs
from kbuild.plays.phases import Context
from kbuild.plays.upgrade import rolling
from kbuild.plays.upgrade.plan import build
from kbuild.plays.upgrade.running import cluster_target
from tests.unit.artifacts.helpers import write_cluster_mirror
from tests.unit.fakes import FakeSession, PlanRecorder

from .upgrade_fakes import observed

PORT = 8443
INVENTORY = f"""\
cluster: {{name: t, api_port: {PORT}}}
pki: {{key_algorithm: ecdsa-p256}}
artifacts: {{mirror: mirror, cache_dir: cache}}
hosts:
  m1: {{address: 198.18.0.11, roles: [etcd, control-plane]}}
  m2: {{address: 198.18.0.12, roles: [etcd, control-plane]}}
  m3: {{address: 198.18.0.13, roles: [etcd, control-plane]}}
  w1: {{address: 198.18.0.21, roles: [worker]}}
"""
# An https URL to a control plane (its own loopback or its address): the apiserver's, whatever the path.
APISERVER_URL = re.compile(r"https://(?:127\.0\.0\.1|198\.18\.0\.1\d)(?::(\d+))?(/[a-z]*)?")
# The other https servers on those hosts: etcd and the controllers' /healthz.
OTHER_SERVERS = {str(p) for p in (layout.ETCD_CLIENT_PORT, layout.ETCD_PEER_PORT, layout.CONTROLLER_MANAGER_PORT,
                                  layout.SCHEDULER_PORT)}


def answer(host: str, command: str) -> str:
    """A host as kubectl, etcdctl and systemctl answer on it."""
    if "endpoint status" in command:
        return json.dumps([{"Endpoint": "https://198.18.0.11:2379", "Status": {"header": {"member_id": 1}, "leader": 1}}])
    if "get nodes -o json" in command:
        return json.dumps({"items": [{"metadata": {"name": "w1"}, "spec": {}, "status": {}}]})
    if "get deployment coredns" in command:
        return json.dumps({"spec": {"replicas": 2}, "status": {"availableReplicas": 2}})
    if "ExecMainStartTimestamp" in command:
        return "@1700000000"
    return ""


class Recorded:
    """Every plan given to the runner (recorded, not applied) and every command run; everything succeeds."""

    def __init__(self, session: FakeSession) -> None:
        self.session = session

    @property
    def plans(self) -> list[Plan]:
        assert isinstance(self.session.runner, PlanRecorder)
        return [plan for _, plans in self.session.runner.applied for plan in plans.values()]

    @property
    def commands(self) -> list[str]:
        return [command for _, command in self.session.commands]

    def texts(self) -> list[str]:
        """Every command and file text the plans and tasks would put on a host."""
        found = list(self.commands)
        for plan in self.plans:
            found += [gate.command for gate in plan.gates]
            for resource in plan.resources:
                for f in dataclasses.fields(resource):
                    value = getattr(resource, f.name)
                    if isinstance(value, bytes):
                        value = value.decode(errors="replace")
                    if isinstance(value, str):
                        found.append(value)
        return found


@pytest.fixture
def cluster(cluster_from, tmp_path: Path):
    cluster = cluster_from(INVENTORY)
    pki.ensure(cluster)
    write_cluster_mirror(tmp_path / "mirror", cluster)
    return cluster


def context(cluster: Cluster) -> tuple[Context, Recorded]:
    session = FakeSession(cluster.hosts, answer, runner=PlanRecorder)
    return Context(cluster, session), Recorded(session)


def apiserver_ports(texts: list[str]) -> list[tuple[str, str]]:
    """(port, path) of every apiserver URL in these texts (the other servers on those hosts left out)."""
    found = []
    for text in texts:
        for match in APISERVER_URL.finditer(text):
            port, path = match.group(1) or "443", match.group(2) or ""
            if port not in OTHER_SERVERS:
                found.append((port, path))
    return found


def assert_all_on_the_port(texts: list[str], must_reach: set[str]) -> None:
    found = apiserver_ports(texts)
    assert {path for _, path in found} >= must_reach, found  # the probes are there at all
    assert {port for port, _ in found} == {str(PORT)}, found
    assert not [t for t in texts if "6443" in t]


def test_the_apiserver_listens_on_the_port_and_every_kubeconfig_points_there(cluster) -> None:
    kubeconfigs = {}
    for path in cluster.state_dir.rglob("*.conf"):
        (entry,) = yaml.safe_load(path.read_text())["clusters"]
        kubeconfigs[path.name] = entry["cluster"]["server"]
    assert {"admin.conf", "controller-manager.conf", "scheduler.conf", "kube-proxy.conf",
            "kubelet-w1.conf"} <= set(kubeconfigs)
    assert {name: url.rsplit(":", 1)[1] for name, url in kubeconfigs.items()} == dict.fromkeys(kubeconfigs, str(PORT))
    assert kubeconfigs["controller-manager.conf"] == f"https://127.0.0.1:{PORT}"
    assert kubeconfigs["kubelet-w1.conf"] == f"https://198.18.0.11:{PORT}"
    inputs = prepare_inputs(cluster, [cluster.host("m1")])["m1"]
    unit = next(f.content for f in inputs.rendered if f.path.name == "kube-apiserver.service")
    assert f"--secure-port={PORT}" in unit


def test_every_bootstrap_phase_reaches_the_apiserver_on_the_port(cluster) -> None:
    ctx, runner = context(cluster)
    for phase in bootstrap.PHASES:
        if phase.name not in ("preflight", "pki", "upgrade"):  # those probe hosts or the controller, not the API
            phase.run(ctx)
    gates = [gate.name for plan in runner.plans for gate in plan.gates]
    assert {"kube-apiserver /livez", "kube-apiserver /readyz", "CoreDNS available"} <= set(gates)
    assert_all_on_the_port(runner.texts(), must_reach={"/livez", "/readyz"})


def test_the_control_plane_gates_used_by_restore_are_on_the_port(cluster) -> None:
    commands = [gate.command for gate in control_plane.gates(cluster)]
    assert_all_on_the_port(commands, must_reach={"/livez", "/readyz"})


def test_status_probes_the_apiserver_on_the_port(cluster) -> None:
    ctx, runner = context(cluster)
    cluster_status.collect(ctx)
    assert cluster_status.probe_script(cluster, cluster.host("m1")) in runner.commands
    assert_all_on_the_port(runner.commands, must_reach={"/readyz"})
    assert_all_on_the_port([cluster_status.probe_script(cluster, cluster.host("m1"))], must_reach={"/readyz"})


def test_the_upgrade_readiness_gates_ask_the_apiserver_on_the_port(cluster, monkeypatch) -> None:
    snapshots = types.ModuleType("kbuild.plays.etcd_backup")
    snapshots.take_snapshot = lambda ctx, **_: types.SimpleNamespace(path=Path("/state/snap.db"), metadata={})
    monkeypatch.setitem(sys.modules, "kbuild.plays.etcd_backup", snapshots)
    ctx, runner = context(cluster)
    plan = build(cluster, observed(cluster), cluster_target(cluster), etcd_leader="m1")
    assert plan.of_kind("apiserver") and not plan.refusals
    rolling.run(ctx, plan, prepare_inputs(cluster, cluster.hosts))
    gates = [gate.name for plan in runner.plans for gate in plan.gates]
    assert "kube-apiserver /readyz" in gates and any(name.startswith("kube-apiserver serves v") for name in gates)
    assert_all_on_the_port(runner.texts(), must_reach={"/livez", "/readyz", "/version"})


def test_preflight_wants_the_port_free_for_the_apiserver(cluster) -> None:
    ports = preflight.required_ports(cluster, cluster.host("m1"))
    assert ports[PORT] == "kube-apiserver" and 6443 not in ports
    facts = preflight.HostFacts(listening=frozenset({PORT}))
    found = [f.message for f in preflight.check_host(cluster, cluster.host("m1"), facts) if f.check == "ports"]
    assert found == [f"port {PORT} (needed by kube-apiserver) is already in use by another program"]
    assert PORT not in preflight.required_ports(cluster, cluster.host("w1"))
