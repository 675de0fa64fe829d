"""Bootstrap end to end on lab hosts. Real parts: systemd, sshd, sudo in systemd-nspawn machines; every cluster
component built from its published source (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
containerd, runc, the CNI plugins, kubelet, kube-proxy, kubectl, the pause and test images). Artifacts come
through the test mirror (a directory), as an air-gapped install gets them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kbuild.inventory.model import Versions
from kbuild.releases import KUBERNETES, minor_of
from tests.integration.conftest import (WORKER_ROLE_LABEL, ClusterLab, changed, inventory_with_mirror, restarted,
                                       run_kbuild, wait_until)
from tests.integration.kube import Kubectl, busybox_pod
from tests.mirror.releases import PREVIOUS_ETCD, PREVIOUS_KUBERNETES

pytestmark = pytest.mark.integration

PAUSE_TAG = KUBERNETES[minor_of(Versions().kubernetes)].pause_image.rsplit(":", 1)[1]
UNITS = {"master": ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kbuild-pod-routes"],
         "worker": ["containerd", "kubelet", "kube-proxy", "kbuild-pod-routes"]}


def run_etcdctl(binary: Path, state: Path, endpoint: str, *args: str,
                client_cert: bool = True) -> subprocess.CompletedProcess:
    """The real etcdctl, from outside kbuild, with the healthcheck client certificate kbuild generated."""
    pki = state / "pki" / "etcd"
    tls = [f"--cacert={pki / 'ca.crt'}"]
    if client_cert:
        tls += [f"--cert={pki / 'healthcheck-client.crt'}", f"--key={pki / 'healthcheck-client.key'}"]
    return subprocess.run([str(binary), f"--endpoints={endpoint}", "--dial-timeout=3s", "--command-timeout=5s",
                           *tls, *args], capture_output=True, text=True, timeout=30)


def units_active(lab, machine) -> list[str]:
    units = UNITS[machine.role]
    return lab.exec(machine.name, ["systemctl", "is-active", *units]).stdout.split()


# -- the shared 1 master + 2 workers cluster ---------------------------------------------------------------


def test_cluster_is_up_and_healthy(cluster_lab: ClusterLab, etcdctl, kubectl):
    lab = cluster_lab.lab
    for machine in lab.machines:
        assert set(units_active(lab, machine)) == {"active"}, machine.name
    master = next(m for m in lab.machines if m.role == "master")
    endpoint = f"https://{master.address}:2379"
    # etcd answers over mTLS with the cluster's client certificate, and refuses a client without one.
    health = run_etcdctl(etcdctl, cluster_lab.state_dir, endpoint, "endpoint", "health", "--cluster")
    assert health.returncode == 0 and "is healthy" in health.stdout + health.stderr, health.stderr
    anonymous = run_etcdctl(etcdctl, cluster_lab.state_dir, endpoint, "get", "/", "--prefix", "--keys-only",
                            client_cert=False)
    assert anonymous.returncode != 0
    # The apiserver keeps its objects in that etcd: the nodes are there.
    keys = run_etcdctl(etcdctl, cluster_lab.state_dir, endpoint, "get", "/registry/minions/", "--prefix",
                       "--keys-only")
    workers = [m.name for m in lab.machines if m.role == "worker"]
    assert all(f"/registry/minions/{name}" in keys.stdout for name in workers), keys.stdout
    # Every kubelet registered and Ready, seen by the real kubectl with the admin kubeconfig.
    nodes = subprocess.run([str(kubectl), "--kubeconfig", str(cluster_lab.state_dir / "admin.conf"), "get", "nodes",
                            "--no-headers"], capture_output=True, text=True, timeout=30)
    assert nodes.returncode == 0, nodes.stderr
    assert sorted(line.split()[0] for line in nodes.stdout.splitlines()) == sorted(workers)
    assert all(line.split()[1] == "Ready" for line in nodes.stdout.splitlines())
    code, _, stderr = cluster_lab.kbuild("status")
    assert code == 0, stderr


def test_a_pod_runs_on_every_worker_with_logs_and_exec(cluster_lab: ClusterLab, built_mirror, kubectl):
    """Real pods: the built pause image as sandbox, the test image from the mirror, the apiserver reaching
    each kubelet over mTLS (logs, exec) with the RBAC kbuild installs, and the server's own version."""
    kube = Kubectl(kubectl, cluster_lab.state_dir / "admin.conf")
    workers = [m.name for m in cluster_lab.lab.machines if m.role == "worker"]
    pods = [f"hello-{name}" for name in workers]
    kube.apply(*(busybox_pod(pod, built_mirror.test_image, node=node, command="echo hello from $(hostname); sleep 3600")
                 for pod, node in zip(pods, workers)))
    try:
        kube.wait_for("condition=Ready", *(f"pod/{p}" for p in pods))
        for pod, node in zip(pods, workers):
            assert kube.json("get", "pod", pod)["spec"]["nodeName"] == node
            assert f"hello from {pod}" in kube.run("logs", pod).stdout
            assert kube.run("exec", pod, "--", "sh", "-c", "echo $((6 * 7))").stdout.strip() == "42"
        # The sandbox of each pod is the pause image kbuild imported (the kubelet never pulled one).
        sandbox = built_mirror.images[f"registry.k8s.io/pause:{PAUSE_TAG}"]
        for node in workers:
            listed = cluster_lab.lab.exec(node, "ctr -n k8s.io images ls -q").stdout.split()
            assert f"registry.k8s.io/pause:{PAUSE_TAG}" in listed and built_mirror.test_image in listed
            config = cluster_lab.lab.exec(node, "crictl inspecti -o json registry.k8s.io/pause:" + PAUSE_TAG).stdout
            assert json.loads(config)["status"]["id"] == sandbox["config_digest"]
        version = kube.json("version")
        assert version["serverVersion"]["gitVersion"] == f"v{Versions().kubernetes}"
        nodes = kube.json("get", "nodes")["items"]
        assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {f"v{Versions().kubernetes}"}
    finally:
        kube.run("delete", "pod", "--wait=false", *pods, check=False)


def test_status_reports_a_stopped_component(cluster_lab: ClusterLab):
    worker = next(m for m in cluster_lab.lab.machines if m.role == "worker")
    cluster_lab.lab.exec(worker.name, "systemctl stop kube-proxy")
    try:
        proc = subprocess.run([sys.executable, "-m", "kbuild", "status", "-i", str(cluster_lab.inventory),
                               "--state-dir", str(cluster_lab.state_dir), "--json"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        report = json.loads(proc.stdout)
        assert not report["healthy"] and any(f"{worker.name}: kube-proxy unhealthy" in p for p in report["problems"])
    finally:
        cluster_lab.lab.exec(worker.name, "systemctl start kube-proxy")
    # bootstrap would also have put it back: a stopped service is drift like any other.


def test_a_role_label_the_kubelet_may_not_set_is_on_every_worker_node(cluster_lab: ClusterLab, kubectl):
    kube = Kubectl(kubectl, cluster_lab.state_dir / "admin.conf")
    workers = {m.name for m in cluster_lab.lab.machines if m.role == "worker"}
    labelled = {n["metadata"]["name"] for n in kube.json("get", "nodes")["items"]
                if n["metadata"].get("labels", {}).get(WORKER_ROLE_LABEL) == ""}
    assert labelled == workers


def test_rerun_changes_nothing_and_restarts_nothing(cluster_lab: ClusterLab):
    code, events, stderr = cluster_lab.kbuild("bootstrap")
    assert code == 0, stderr
    assert changed(events) == [] and restarted(events) == []
    end = events[-1]
    assert end["event"] == "run.end" and end["data"]["connections"] == len(cluster_lab.lab.machines)


def test_one_setting_changes_one_file_and_restarts_one_service(cluster_lab: ClusterLab, tmp_path):
    data = yaml.safe_load(cluster_lab.inventory.read_text())
    data["cluster"]["node_monitor_grace_period"] = "50s"
    edited = tmp_path / "inventory.yaml"
    edited.write_text(yaml.safe_dump(data))
    master = next(m for m in cluster_lab.lab.machines if m.role == "master")
    try:
        code, events, stderr = run_kbuild(["bootstrap", "-i", str(edited), "--state-dir", str(cluster_lab.state_dir)])
        assert code == 0, stderr
        assert changed(events) == [(master.name, "file:/etc/systemd/system/kube-controller-manager.service")]
        assert restarted(events) == [(master.name, "service kube-controller-manager")]
        unit = cluster_lab.lab.exec(master.name, "systemctl cat kube-controller-manager").stdout
        assert "--node-monitor-grace-period=50s" in unit
    finally:
        code, events, _ = cluster_lab.kbuild("bootstrap")  # and back
    assert code == 0 and restarted(events) == [(master.name, "service kube-controller-manager")]


def test_check_diff_on_a_drifted_cluster_shows_the_drift_and_changes_nothing(cluster_lab: ClusterLab):
    worker = next(m for m in cluster_lab.lab.machines if m.role == "worker")
    config = "/var/lib/kubelet/config.yaml"
    cluster_lab.lab.exec(worker.name, f"sed -i 's/^clusterDomain: .*/clusterDomain: drifted.example/' {config}")
    drifted = cluster_lab.lab.exec(worker.name, f"sha256sum {config}").stdout
    code, events, stderr = cluster_lab.kbuild("bootstrap", "--check", "--diff")
    assert code == 0, stderr
    would = [(e["host"], e["resource"]) for e in events if e["event"] == "resource" and e["status"] == "would-change"]
    assert would == [(worker.name, f"file:{config}")]
    diffs = [e["diff"] for e in events if e["event"] == "diff"]
    assert len(diffs) == 1 and "-clusterDomain: drifted.example" in diffs[0] and "+clusterDomain: cluster.local" in diffs[0]
    assert cluster_lab.lab.exec(worker.name, f"sha256sum {config}").stdout == drifted
    # A real run repairs it and restarts the kubelet (only).
    code, events, _ = cluster_lab.kbuild("bootstrap")
    assert code == 0 and restarted(events) == [(worker.name, "service kubelet")]


def test_kubeconfig_prints_and_merges(cluster_lab: ClusterLab, kubectl, tmp_path):
    code, _, _ = cluster_lab.kbuild("kubeconfig", "--merge", "--kubeconfig", str(tmp_path / "config"),
                                    json_events=False)
    assert code == 0
    merged = yaml.safe_load((tmp_path / "config").read_text())
    assert merged["current-context"] and (tmp_path / "config").stat().st_mode & 0o777 == 0o600
    nodes = subprocess.run([str(kubectl), "--kubeconfig", str(tmp_path / "config"), "get", "nodes", "-o", "name"],
                           capture_output=True, text=True, timeout=30)
    assert nodes.returncode == 0 and nodes.stdout.count("node/") == 2


# -- a fresh lab of its own: check mode, preflight failure, interruption, reset ---------------------------


@pytest.fixture(scope="module")
def fresh(lab_factory, built_mirror, tmp_path_factory):
    handle = lab_factory("fresh", masters=1, workers=1)
    base = tmp_path_factory.mktemp("fresh")
    yield ClusterLab(handle, inventory_with_mirror(handle.inventory, base / "inventory.yaml", built_mirror.root),
                     base / "state")
    lab_factory.release(handle)


def host_snapshot(handle) -> dict[str, str]:
    command = ("ls -la /etc/kubernetes /usr/local/bin /etc/systemd/system /var/lib/etcd 2>&1; "
               "systemctl list-units --all --no-legend 'kube*' 'etcd*' 'containerd*' 2>&1")
    return {m.name: handle.exec(m.name, command).stdout for m in handle.machines}


def test_check_mode_on_a_fresh_lab_changes_nothing(fresh):
    handle = fresh.lab
    before = host_snapshot(handle)
    code, events, stderr = fresh.kbuild("bootstrap", "--check")
    assert code == 0, stderr
    would = [e for e in events if e["event"] == "resource" and e["status"] == "would-change"]
    assert {e["host"] for e in would} == {m.name for m in handle.machines}
    assert host_snapshot(handle) == before
    assert not (fresh.state_dir / "pki").exists()  # check mode wrote no PKI either


def test_preflight_failure_stops_before_any_host_changes(fresh):
    handle = fresh.lab
    worker = next(m for m in handle.machines if m.role == "worker")
    # Something else holds the kubelet's port.
    handle.exec(worker.name, "systemd-run --unit=kbtest-squatter python3 -m http.server 10250 >/dev/null 2>&1")
    try:
        wait_until(lambda: handle.exec(worker.name, "grep -q ':280A ' /proc/net/tcp /proc/net/tcp6").returncode == 0)
        before = host_snapshot(handle)
        code, events, stderr = fresh.kbuild("bootstrap")
        assert code == 3, stderr
        assert "port 10250 (needed by kubelet) is already in use" in stderr
        assert not [e for e in events if e["event"] == "resource"]
        assert host_snapshot(handle) == before
    finally:
        handle.exec(worker.name, "systemctl stop kbtest-squatter")


def test_interrupted_bootstrap_converges_on_the_next_run(fresh):
    argv = [sys.executable, "-m", "kbuild", "bootstrap", "-i", str(fresh.inventory),
            "--state-dir", str(fresh.state_dir), "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if '"phase.start"' in line and '"control-plane"' in line:
                os.killpg(proc.pid, signal.SIGKILL)  # mid-run, as a power cut or a killed terminal would
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    code, events, stderr = fresh.kbuild("bootstrap")
    assert code == 0, stderr
    code, _, stderr = fresh.kbuild("status")
    assert code == 0, stderr
    code, events, _ = fresh.kbuild("bootstrap")
    assert code == 0 and changed(events) == []


def test_reset_of_one_node_forgets_its_node_object_and_it_can_rejoin(fresh):
    handle = fresh.lab
    master = next(m for m in handle.machines if m.role == "master")
    worker = next(m for m in handle.machines if m.role == "worker")
    nodes = "/usr/local/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o name"
    assert f"node/{worker.name}" in handle.exec(master.name, nodes).stdout
    code, _, stderr = fresh.kbuild("reset", "--yes", "--limit", worker.name)
    assert code == 0, stderr
    assert f"node/{worker.name}" not in handle.exec(master.name, nodes).stdout
    assert handle.exec(master.name, "systemctl is-active kube-apiserver etcd").stdout.split() == ["active", "active"]
    code, events, stderr = fresh.kbuild("bootstrap")
    assert code == 0, stderr
    assert {host for host, _ in changed(events)} == {worker.name}
    assert f"node/{worker.name}" in handle.exec(master.name, nodes).stdout


def test_reset_removes_everything_and_keeps_etcd_data(fresh):
    handle = fresh.lab
    master = next(m for m in handle.machines if m.role == "master")
    code, _, stderr = fresh.kbuild("reset")  # without --yes: a listing, nothing changes
    assert code == 0
    assert handle.exec(master.name, "systemctl is-active etcd").stdout.strip() == "active"
    code, _, stderr = fresh.kbuild("reset", "--yes")
    assert code == 0, stderr
    for machine in handle.machines:
        leftovers = handle.exec(machine.name, (
            "ls /etc/systemd/system | grep -E 'etcd|kube|containerd|kbuild-pod'; "
            "find /usr/local/bin /opt/cni/bin -type f 2>/dev/null; ls -d /etc/kubernetes /var/lib/kubelet /etc/cni/net.d "
            "/var/lib/etcd 2>/dev/null; iptables -S 2>/dev/null | grep KUBE; "
            "systemctl list-units --all --no-legend 'kube*' 'etcd*' 'containerd*'")).stdout
        assert leftovers.strip() == "", (machine.name, leftovers)
    kept = handle.exec(master.name, "ls -d /var/lib/etcd.reset-*/member").stdout.split()
    assert len(kept) == 1
    # The kept data is a real etcd member directory (with its write-ahead log).
    assert handle.exec(master.name, f"ls {kept[0]}/wal").stdout.strip()
    code, _, _ = fresh.kbuild("reset", "--yes", "--purge-data")  # again, now purging: a no-op here
    assert code == 0


# -- HA: 3 masters with stacked etcd + 1 worker; then a worker and a control plane join ---------------------


@pytest.fixture(scope="module")
def ha(lab_factory, built_mirror, tmp_path_factory):
    handle = lab_factory("ha", masters=4, workers=2)
    base = tmp_path_factory.mktemp("ha")
    full = yaml.safe_load(handle.inventory.read_text())
    names = list(full["hosts"])
    masters = [n for n in names if "-master-" in n]
    workers = [n for n in names if "-worker-" in n]
    # Start with 3 etcd+control-plane masters and 1 worker; the 4th master (control plane only) and the
    # 2nd worker join later.
    full["hosts"][masters[3]]["roles"] = ["control-plane"]
    first = {n: full["hosts"][n] for n in masters[:3] + workers[:1]}
    initial = dict(full, hosts=first)
    (base / "source-initial.yaml").write_text(yaml.safe_dump(initial))
    (base / "source-full.yaml").write_text(yaml.safe_dump(full))
    inv_initial = inventory_with_mirror(base / "source-initial.yaml", base / "initial.yaml", built_mirror.root)
    inv_full = inventory_with_mirror(base / "source-full.yaml", base / "full.yaml", built_mirror.root)
    yield handle, inv_initial, inv_full, base / "state", masters, workers
    lab_factory.release(handle)


def test_three_masters_with_stacked_etcd(ha, etcdctl):
    handle, initial, _, state, masters, _ = ha
    code, events, stderr = run_kbuild(["bootstrap", "-i", str(initial), "--state-dir", str(state)])
    assert code == 0, stderr
    m1 = next(m for m in handle.machines if m.name == masters[0])
    members = run_etcdctl(etcdctl, state, f"https://{m1.address}:2379", "member", "list")
    assert members.returncode == 0 and len(members.stdout.splitlines()) == 3
    health = run_etcdctl(etcdctl, state, f"https://{m1.address}:2379", "endpoint", "health", "--cluster")
    assert health.returncode == 0 and health.stdout.count("is healthy") + health.stderr.count("is healthy") == 3
    code, _, stderr = run_kbuild(["status", "-i", str(initial), "--state-dir", str(state)])
    assert code == 0, stderr


def test_adding_a_worker_and_a_control_plane(ha):
    handle, _, full, state, masters, workers = ha
    code, events, stderr = run_kbuild(["bootstrap", "-i", str(full), "--state-dir", str(state)])
    assert code == 0, stderr
    restarts = restarted(events)
    new_worker, new_master = workers[1], masters[3]
    # The existing worker keeps running untouched: its services are not restarted.
    assert not [r for r in restarts if r[0] == workers[0]]
    # The new control plane's IP enters the shared apiserver certificate, so every existing apiserver
    # restarts -- one at a time, each after the previous one is healthy again (control-plane is serial).
    apiserver_restarts = [(e["host"], e["time"]) for e in events
                          if e["event"] == "handler" and e["resource"] == "service kube-apiserver"]
    assert [h for h, _ in apiserver_restarts] == masters[:3]
    gates = [(e["host"], e["time"]) for e in events if e["event"] == "gate" and e["resource"] == "kube-apiserver /readyz"]
    for (host, restart_time), nxt in zip(apiserver_restarts, apiserver_restarts[1:]):
        healthy_again = [t for h, t in gates if h == host and t > restart_time]
        assert healthy_again and healthy_again[0] < nxt[1], f"{nxt[0]} restarted before {host} was ready"
    san = handle.exec(masters[0], "openssl x509 -noout -text -in /etc/kubernetes/pki/apiserver.crt").stdout
    new_master_ip = next(m.address for m in handle.machines if m.name == new_master)
    assert f"IP Address:{new_master_ip}" in san
    code, _, stderr = run_kbuild(["status", "-i", str(full), "--state-dir", str(state)])
    assert code == 0, stderr
    assert new_worker in handle.exec(masters[0], "/usr/local/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf "
                                                 "get nodes -o name").stdout


def test_another_api_port_is_used_by_every_gate_status_and_the_upgrade(fresh, built_mirror, kubectl, tmp_path):
    """cluster.api_port: 8443 on the reset fresh lab: bootstrap's gates, kbuild status and the upgrade's
    readiness gates all reach the apiserver there (they once probed 6443 whatever the setting)."""
    handle = fresh.lab
    api_port = {"api_port": 8443}
    old = inventory_with_mirror(handle.inventory, tmp_path / "old.yaml", built_mirror.root,
                                cluster={**api_port, "versions": {"kubernetes": PREVIOUS_KUBERNETES,
                                                                  "etcd": PREVIOUS_ETCD}})
    new = inventory_with_mirror(handle.inventory, tmp_path / "new.yaml", built_mirror.root, cluster=api_port)
    state = tmp_path / "state"
    master = next(m for m in handle.machines if m.role == "master")
    code, _, stderr = run_kbuild(["bootstrap", "-i", str(old), "--state-dir", str(state)])
    assert code == 0, stderr[-3000:]
    listening = handle.exec(master.name, "ss -Hltn 'sport = :8443'; ss -Hltn 'sport = :6443'").stdout
    assert ":8443" in listening and ":6443" not in listening
    code, _, stderr = run_kbuild(["status", "-i", str(old), "--state-dir", str(state)])
    assert code == 0, stderr[-2000:]
    code, events, stderr = run_kbuild(["upgrade", "apply", "-i", str(new), "--state-dir", str(state), "--yes"])
    assert code == 0, stderr[-3000:]
    readiness = [e for e in events if e["event"] == "gate" and e["resource"] == "kube-apiserver /readyz"]
    assert readiness and all(e["status"] == "ok" for e in readiness)
    code, _, stderr = run_kbuild(["status", "-i", str(new), "--state-dir", str(state)])
    assert code == 0, stderr[-2000:]
    version = Kubectl(kubectl, state / "admin.conf").json("version", "-o", "json")
    assert version["serverVersion"]["gitVersion"] == f"v{Versions().kubernetes}"
    assert ":8443" in yaml.safe_load((state / "admin.conf").read_text())["clusters"][0]["cluster"]["server"]
