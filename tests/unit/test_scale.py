"""Work per host stays constant at 2000 hosts: render, preflight and status, bounded by counted operations.

Timing would be flaky; counting is not. The counters are the operations a quadratic pass repeats: a
scan over every host (each role question asked of a Host), a check of template values, a template
render, the cluster-wide pod CIDR table.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from kbuild.inventory import Host, load_cluster
from kbuild.plays import preflight, cluster_status
from kbuild.render import env as jinja_env
from kbuild.render import host_values as render_facts
from kbuild.render import files as rendering

HOSTS = 2000
ROLE_QUESTIONS = ("is_etcd", "is_control_plane", "is_worker", "runs_kubelet")


def _inventory(path: Path, workers: int) -> Path:
    lines = ["cluster:", "  name: big", "  pod_cidr: 10.128.0.0/9", "ssh:", "  user: kbuild", "hosts:",
             "  m1:", "    address: 172.16.0.10", "    roles: [etcd, control-plane]"]
    for i in range(workers):
        lines += [f"  w{i + 1}:", f"    address: 172.17.{i // 250}.{i % 250 + 1}", "    roles: [worker]"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory):
    return load_cluster(_inventory(tmp_path_factory.mktemp("scale") / "inventory.yaml", HOSTS - 1))


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> collections.Counter:
    """Counts of the operations a quadratic pass would repeat."""
    counts: collections.Counter = collections.Counter()

    def counting(name: str, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    for question in ROLE_QUESTIONS:
        plain = getattr(Host, question)
        monkeypatch.setattr(Host, question, property(counting("role question", plain.fget)))
    monkeypatch.setattr(jinja_env, "check_one_line", counting("value checked", jinja_env.check_one_line))
    monkeypatch.setattr(jinja_env, "render", counting("template rendered", jinja_env.render))
    monkeypatch.setattr(render_facts, "_node_pod_cidrs", counting("pod CIDR table", render_facts._node_pod_cidrs))
    return counts


def test_render_of_2000_hosts_does_constant_work_per_host(big, counted):
    files = sum(len(rendering.host_files(big, host)) for host in big.hosts)
    assert files >= 9 * (HOSTS - 1)
    assert counted["pod CIDR table"] == 1
    assert counted["template rendered"] <= files + 1  # each file once, plus the cluster's pod-routes lines
    # A few hundred values per host's context; walking the other nodes' routes per template was 9 x 2000.
    assert counted["value checked"] <= 300 * HOSTS, counted
    assert counted["role question"] <= 50 * HOSTS, counted


def test_the_pod_routes_unit_lists_every_other_node(big):
    worker = big.host("w7")
    unit = next(f for f in rendering.host_files(big, worker) if f.path.name == "kbuild-pod-routes.service").content
    lines = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == HOSTS - 2  # every kubelet host but itself (the master runs none here)
    own = str(render_facts.node_pod_cidr(big, worker))
    assert not any(f" {own} " in line for line in lines)
    assert any(str(render_facts.node_pod_cidr(big, big.host("w8"))) in line for line in lines)


def test_preflight_and_status_of_2000_hosts_do_constant_work_per_host(big, counted):
    facts = {h.name: preflight.HostFacts() for h in big.hosts}
    for host in big.hosts:
        preflight.check_host(big, host, facts[host.name])
        cluster_status.probe_script(big, host)
    preflight.check_cluster(big, facts)
    assert counted["role question"] <= 50 * HOSTS, counted
