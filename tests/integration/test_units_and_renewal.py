"""Rendered units checked by the real systemd inside lab machines, and certificate renewal rolled out.
Real parts: systemd's `systemd-analyze verify` in the machines (with the binaries installed), sshd, the
kube stand-ins, etcd."""

from __future__ import annotations

import pytest

from kbuild.inventory import load_cluster
from kbuild.render import host_files, units_for, verify_units
from tests.integration.conftest import ClusterLab, LabHandle, changed

pytestmark = pytest.mark.integration


def runner_in(lab: LabHandle, machine: str):
    """A `run` for verify_units that runs its command inside `machine`."""

    def run_inside(argv: list[str]) -> tuple[int, str]:
        proc = lab.exec(machine, argv)
        return proc.returncode, proc.stdout + proc.stderr

    return run_inside


def test_installed_units_pass_systemd_analyze_verify(cluster_lab: ClusterLab):
    cluster = load_cluster(cluster_lab.inventory, state_dir=cluster_lab.state_dir)
    for host in cluster.hosts:
        units = [f"/etc/systemd/system/{u}.service" for u in units_for(host)]
        rendered = {str(f.path) for f in host_files(cluster, host)}
        assert set(units) <= rendered  # what is verified is what kbuild renders
        assert verify_units(units, run=runner_in(cluster_lab.lab, host.name)) == [], host.name


def test_a_broken_unit_is_caught_by_the_same_check(cluster_lab: ClusterLab):
    machine = cluster_lab.lab.machines[0].name
    cluster_lab.lab.exec(machine, "printf '[Service]\\nExecStart=/usr/local/bin/nope --x\\nRestartt=always\\n' "
                                  "> /tmp/kbtest-broken.service")
    problems = verify_units(["/tmp/kbtest-broken.service"], run=runner_in(cluster_lab.lab, machine))
    assert any("Restartt" in p for p in problems) and any("/usr/local/bin/nope" in p for p in problems)


def test_renewed_certificate_is_deployed_and_restarts_only_its_service(cluster_lab: ClusterLab):
    master = next(m for m in cluster_lab.lab.machines if m.role == "master")
    before = cluster_lab.lab.exec(master.name, "sha256sum /etc/kubernetes/scheduler.conf").stdout
    code, _, stderr = cluster_lab.kbuild("certs", "renew", "scheduler", json_events=False)
    assert code == 0, stderr
    code, events, stderr = cluster_lab.kbuild("bootstrap")
    assert code == 0, stderr
    assert changed(events) == [(master.name, "file:/etc/kubernetes/scheduler.conf")]
    assert [(e["host"], e["resource"]) for e in events if e["event"] == "handler"] == \
        [(master.name, "service kube-scheduler")]
    assert cluster_lab.lab.exec(master.name, "sha256sum /etc/kubernetes/scheduler.conf").stdout != before
    code, _, stderr = cluster_lab.kbuild("status")
    assert code == 0, stderr
