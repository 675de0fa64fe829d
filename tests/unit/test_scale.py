"""Work per host stays constant at 2000 hosts: render, preflight and status, bounded by counted operations;
and the facts script of one node starts as many processes for 40 resources of each kind as for 3.

Timing would be flaky; counting is not. The counters are the operations a quadratic pass repeats: a
scan over every host (each role question asked of a Host), a check of template values, a template
render, the cluster-wide pod CIDR table; on the host, the processes the kernel started.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kbuild.engine.facts import fact_script
from kbuild.engine.resources import Command, File, KernelModule, Service, Sysctl
from kbuild.inventory import Host, load_cluster
from kbuild.plays import cluster_status, pod_network, preflight
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


# -- the facts script's process starts on one host -------------------------------------------------------------

KINDS = 3, 40  # each kind of fact a few times, then many times


def _traced(script: str, tmp: Path) -> tuple[int, list[str]]:
    """Run `script` with /bin/sh under strace: the processes it made (sh included) and the programs they ran.

    Counted by the kernel's own view (one trace file per process, -ff), so a fork for a subshell or a pipe
    counts as much as a program started by name."""
    logs = tmp / "trace"
    logs.mkdir()
    subprocess.run(["strace", "-f", "-ff", "-qq", "-e", "trace=execve", "-o", str(logs / "p"), "/bin/sh", "-s"],
                   input=script.encode(), capture_output=True, check=True,
                   env={"PATH": os.environ["PATH"], "KB_STAMPS": str(tmp / "stamps")})
    programs = []
    for log in logs.iterdir():
        for line in log.read_text().splitlines():
            if line.startswith("execve(") and line.rstrip().endswith("= 0"):
                programs.append(Path(line.split('"')[1]).name)
    return len(list(logs.iterdir())), sorted(programs)


def _node_queries(tmp: Path, count: int) -> list:
    """The fact queries of a node with `count` of every kind: files, services, sysctls, modules, `creates` guards,
    and the pod routes of a cluster with `count` other kubelet hosts (the plays' own resources)."""
    files = tmp / "files"
    files.mkdir()
    for i in range(count):
        (files / f"f{i}").write_text(f"{i}\n")
    cluster = load_cluster(_inventory(tmp / "inventory.yaml", count + 1))
    routes = pod_network.route_resources(cluster, cluster.host("w1"), "node")
    assert len(routes) == count + 2  # the unit, a route per peer, the stale ones removed
    resources = [*(File(str(files / f"f{i}"), f"{i}\n", mode=0o644) for i in range(count)),
                 *(Service(f"kb-svc{i}") for i in range(count)),
                 *(Sysctl("kernel.ostype", "Linux") for _ in range(count)),
                 *(KernelModule(f"kb_no_module{i}") for i in range(count)),
                 *(Command(f"c{i}", "true", creates=str(files / f"f{i}")) for i in range(count)),
                 *routes]
    return [r.fact_query() for r in resources]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (tests/run.sh installs it)")
def test_the_facts_script_of_a_node_starts_the_same_few_processes_for_3_or_40_of_each_kind(tmp_path):
    counted = {}
    for count in KINDS:
        (tmp_path / str(count)).mkdir()
        queries = _node_queries(tmp_path / str(count), count)
        counted[count] = _traced(fact_script(queries, "@@kb-test"), tmp_path / str(count))
    (few, few_programs), (many, many_programs) = counted[KINDS[0]], counted[KINDS[1]]
    assert (few, few_programs) == (many, many_programs), counted
    # The programs: sh, one stat, one sha256sum (nothing stamped), one systemctl, one head, one ip for the routes
    # and the stale ones alike; and the subshell that gathers the answers. Nothing per resource.
    assert many_programs == ["head", "ip", "sh", "sha256sum", "stat", "systemctl"], many_programs
    assert many <= 8, counted


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (tests/run.sh installs it)")
def test_the_facts_of_a_node_leave_it_in_two_writes_for_3_or_40_of_each_kind(tmp_path):
    # sshd sends what each read of the session's pipe gets as its own packet: a write per line cost the host's
    # sshd and the controller per line. Only the outer shell (the session's) writes to the session.
    for count in KINDS:
        run = tmp_path / str(count)
        run.mkdir()
        script = fact_script(_node_queries(run, count), "@@kb-test")
        logs = run / "trace"
        logs.mkdir()
        proc = subprocess.run(["strace", "-ff", "-qq", "-e", "trace=write,execve", "-o", str(logs / "p"),
                               "/bin/sh", "-s"], input=script.encode(), capture_output=True, check=True,
                              env={"PATH": os.environ["PATH"], "KB_STAMPS": str(run / "stamps")})
        traces = [log.read_text() for log in logs.iterdir()]
        (outer,) = [t for t in traces if t.startswith('execve("/bin/sh", ["/bin/sh", "-s"]')]  # the session's shell
        writes = [line for line in outer.splitlines() if line.startswith("write(1,")]
        assert 1 <= len(writes) <= 2, writes
        assert proc.stdout.decode().rstrip("\n").endswith("@@kb-test end")
