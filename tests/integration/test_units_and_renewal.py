"""Rendered units checked by the real systemd inside lab machines, and certificate renewal rolled out.
Real parts: systemd's `systemd-analyze verify` in the machines (with the binaries installed), sshd, every
cluster component built from source; the certificates a renewed apiserver and kubelet serve are read off
their TLS ports."""

from __future__ import annotations

import ssl

import pytest
from cryptography import x509

from kbuild.inventory import load_cluster
from kbuild.render import host_files, units_for
from tests.integration.conftest import ClusterLab, LabHandle, changed
from tests.integration.kube import Kubectl
from tests.systemd_verify import verify_units

pytestmark = pytest.mark.integration


def served_certificate(address: str, port: int) -> x509.Certificate:
    """The certificate a TLS server presents (not verified: only read)."""
    pem = ssl.get_server_certificate((address, port), timeout=10)
    return x509.load_pem_x509_certificate(pem.encode())


def state_certificate(cluster_lab: ClusterLab, relative: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((cluster_lab.state_dir / "pki" / relative).read_bytes())


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


def test_the_real_apiserver_and_kubelet_serve_their_renewed_certificates(cluster_lab: ClusterLab, kubectl):
    master = next(m for m in cluster_lab.lab.machines if m.role == "master")
    worker = next(m for m in cluster_lab.lab.machines if m.role == "worker")
    kubelet_cert = f"hosts/{worker.name}/kubelet.crt"
    old_api, old_kubelet = served_certificate(master.address, 6443), served_certificate(worker.address, 10250)
    assert old_api.serial_number == state_certificate(cluster_lab, "apiserver.crt").serial_number
    code, _, stderr = cluster_lab.kbuild("certs", "renew", "apiserver", f"kubelet-serving/{worker.name}",
                                         json_events=False)
    assert code == 0, stderr
    code, events, stderr = cluster_lab.kbuild("bootstrap")
    assert code == 0, stderr
    handlers = {(e["host"], e["resource"]) for e in events if e["event"] == "handler"}
    assert handlers == {(master.name, "service kube-apiserver"), (worker.name, "service kubelet")}
    new_api, new_kubelet = served_certificate(master.address, 6443), served_certificate(worker.address, 10250)
    assert new_api.serial_number == state_certificate(cluster_lab, "apiserver.crt").serial_number
    assert new_kubelet.serial_number == state_certificate(cluster_lab, kubelet_cert).serial_number
    assert new_api.serial_number != old_api.serial_number and new_kubelet.serial_number != old_kubelet.serial_number
    # The apiserver verifies the kubelet's new certificate against the cluster CA: node proxying still works.
    stats = Kubectl(kubectl, cluster_lab.state_dir / "admin.conf").run(
        "get", "--raw", f"/api/v1/nodes/{worker.name}/proxy/healthz")
    assert stats.stdout.strip() == "ok"
