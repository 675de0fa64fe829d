"""A cluster that runs workloads, on the shared 1 master + 2 workers lab: the scheduler, Services through
kube-proxy, cluster DNS through CoreDNS, Secrets encrypted in etcd, a node's failure healed.

Real parts: every cluster component built from source (CoreDNS and the busybox test image from the
mirror's archives); kubectl, etcdctl and iptables read the state; an upstream DNS server for the
"external" name is dnslib on the lab bridge's address (the machines' gateway). Each test cleans up its
objects; the node-failure test starts the kubelet it stopped.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSServer

from kbuild.inventory import load_cluster
from kbuild.pki.certlist import remote_path
from kbuild.releases import COREDNS_IMAGE
from tests.integration.conftest import ClusterLab, inventory_with_mirror, run_kbuild
from tests.integration.kube import Kubectl, busybox_pod

pytestmark = pytest.mark.integration

NAMESPACE = "kbuild-workloads"
EXTERNAL_NAME = "www.example.kbuild.test."
EXTERNAL_ADDRESS = "192.0.2.80"


@pytest.fixture(scope="module")
def kube(cluster_lab: ClusterLab, kubectl) -> Iterator[Kubectl]:
    client = Kubectl(kubectl, cluster_lab.state_dir / "admin.conf")
    client.run("create", "namespace", NAMESPACE)
    yield client
    client.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def workers(cluster_lab: ClusterLab) -> list[str]:
    return [m.name for m in cluster_lab.lab.machines if m.role == "worker"]


def deployment(name: str, image: str, replicas: int, command: str, *, requests: dict[str, str] | None = None,
               port: int | None = None, tolerate_seconds: int | None = None) -> dict:
    pod = busybox_pod(name, image, command=command, namespace=NAMESPACE, requests=requests)
    spec = pod["spec"]
    if port is not None:
        spec["containers"][0]["ports"] = [{"containerPort": port}]
        spec["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 1}
    if tolerate_seconds is not None:
        # How long a pod stays on a node that stopped answering, set by the pod (not by changing kbuild's
        # defaults): the default is 300 s.
        spec["tolerations"] = [{"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": tolerate_seconds}
                               for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def service(name: str, port: int, target: int, kind: str = "ClusterIP") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": port, "targetPort": target}]}}


def pods_of(kube: Kubectl, app: str) -> list[dict]:
    return kube.json("get", "pods", "-n", NAMESPACE, "-l", f"app={app}")["items"]


def http_server(port: int) -> str:
    return f"mkdir -p /www && echo served-by-$(hostname) > /www/index.html && exec httpd -f -p {port} -h /www"


def status_report(cluster_lab: ClusterLab) -> dict:
    proc = subprocess.run([sys.executable, "-m", "kbuild", "status", "-i", str(cluster_lab.inventory),
                           "--state-dir", str(cluster_lab.state_dir), "--json"],
                          capture_output=True, text=True, timeout=180)
    return json.loads(proc.stdout)


def in_pod(kube: Kubectl, pod: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return kube.run("exec", "-n", NAMESPACE, pod, "--", "sh", "-c", command, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def client_pods(kube: Kubectl, cluster_lab: ClusterLab, built_mirror) -> dict[str, str]:
    """One shell pod on each worker: node name -> pod name."""
    names = {node: f"client-{i}" for i, node in enumerate(workers(cluster_lab), 1)}
    kube.apply(*(busybox_pod(pod, built_mirror.test_image, node=node, namespace=NAMESPACE)
                 for node, pod in names.items()))
    kube.wait_for("condition=Ready", *(f"pod/{p}" for p in names.values()), "-n", NAMESPACE)
    return names


# -- cluster DNS --------------------------------------------------------------------------------------------


def test_coredns_runs_as_kbuild_deployed_it(kube: Kubectl, cluster_lab: ClusterLab):
    kube.wait_for("condition=Available", "deployment/coredns", "-n", "kube-system")
    dns = kube.json("get", "service", "kube-dns", "-n", "kube-system")
    cluster = load_cluster(cluster_lab.inventory, state_dir=cluster_lab.state_dir)
    assert dns["spec"]["clusterIP"] == str(cluster.cluster_dns_ip)
    pods = kube.json("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    # Two replicas, one per worker (the Deployment's anti-affinity), from the image kbuild imported.
    assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == set(workers(cluster_lab))
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {COREDNS_IMAGE}
    report = status_report(cluster_lab)
    assert report["healthy"] and [(a["name"], a["available"], a["ok"]) for a in report["addons"]] == \
        [("coredns", 2, True)]


def test_service_names_resolve_from_a_pod(kube: Kubectl, client_pods: dict[str, str], built_mirror):
    kube.apply(deployment("named", built_mirror.test_image, 1, http_server(8080), port=8080),
               service("named", 80, 8080))
    cluster_ip = kube.json("get", "service", "named", "-n", NAMESPACE)["spec"]["clusterIP"]
    pod = next(iter(client_pods.values()))
    kubernetes_ip = kube.json("get", "service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    # (busybox's nslookup does not apply the pod's search path: full names.)
    for name, address in ((f"named.{NAMESPACE}.svc.cluster.local", cluster_ip),
                          ("kubernetes.default.svc.cluster.local", kubernetes_ip)):
        answer = in_pod(kube, pod, f"nslookup {name}")
        assert answer.returncode == 0 and address in answer.stdout, (name, answer.stdout, answer.stderr)


class _Upstream(BaseResolver):
    """The one name an 'outside' DNS server knows."""

    def resolve(self, request, handler):  # noqa: ANN001, ANN201 - dnslib's interface
        reply = request.reply()
        if str(request.q.qname) == EXTERNAL_NAME and request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(EXTERNAL_ADDRESS), ttl=30))
        return reply


def free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def test_an_outside_name_resolves_through_coredns_forwarding(kube: Kubectl, cluster_lab: ClusterLab,
                                                             client_pods: dict[str, str], built_mirror,
                                                             tmp_path: Path):
    gateway = cluster_lab.lab.gateway
    port = free_udp_port(gateway)
    upstream = DNSServer(_Upstream(), address=gateway, port=port)
    upstream.start_thread()
    pod = next(iter(client_pods.values()))
    forwarding = inventory_with_mirror(cluster_lab.lab.inventory, tmp_path / "inventory.yaml", built_mirror.root,
                                       preload=[built_mirror.test_image],
                                       cluster={"addons": {"coredns": {"forward": [f"{gateway}:{port}"]}}})
    try:
        code, _, stderr = run_kbuild(["bootstrap", "-i", str(forwarding), "--state-dir", str(cluster_lab.state_dir)])
        assert code == 0, stderr[-2000:]
        # The Corefile changed, so its checksum in the pod template rolled CoreDNS, and bootstrap waited for the
        # old replicas to be gone: every answer now comes from one that forwards.
        answer = in_pod(kube, pod, f"nslookup {EXTERNAL_NAME.rstrip('.')}")
        assert answer.returncode == 0 and EXTERNAL_ADDRESS in answer.stdout, answer.stdout + answer.stderr
    finally:
        upstream.stop()
        code, _, stderr = cluster_lab.kbuild("bootstrap")  # back to the lab's settings (no forwarding)
    assert code == 0, stderr[-2000:]
    # The replicas whose cache held the name are gone by the time bootstrap returns.
    answer = in_pod(kube, pod, f"nslookup {EXTERNAL_NAME.rstrip('.')}")
    assert answer.returncode != 0, "the name still resolves after forwarding was removed: " + answer.stdout


# -- the scheduler --------------------------------------------------------------------------------------------


def test_the_scheduler_spreads_replicas_and_leaves_what_fits_nowhere_pending(kube: Kubectl, cluster_lab: ClusterLab,
                                                                           built_mirror):
    kube.apply(deployment("spread", built_mirror.test_image, 3, "sleep 3600",
                          requests={"cpu": "100m", "memory": "32Mi"}))
    kube.wait_for("condition=Available", "deployment/spread", "-n", NAMESPACE)
    nodes = [p["spec"]["nodeName"] for p in pods_of(kube, "spread")]
    assert len(nodes) == 3 and set(nodes) == set(workers(cluster_lab)), nodes  # both workers used
    allocatable = {n["metadata"]["name"]: n["status"]["allocatable"] for n in kube.json("get", "nodes")["items"]}
    cpus = max(int(a["cpu"].removesuffix("m")) / (1000 if a["cpu"].endswith("m") else 1) for a in allocatable.values())
    for name, requests, reason in (("too-much-cpu", {"cpu": str(int(cpus) + 1)}, "Insufficient cpu"),
                                   ("too-much-memory", {"memory": "10Ti"}, "Insufficient memory")):
        kube.apply(busybox_pod(name, built_mirror.test_image, namespace=NAMESPACE, requests=requests))
        assert _scheduling_failure(kube, name, reason), f"{name}: no FailedScheduling with {reason!r}"
        assert kube.phase(name, NAMESPACE) == "Pending"
    kube.run("delete", "deployment/spread", "pod/too-much-cpu", "pod/too-much-memory", "-n", NAMESPACE,
             "--wait=false")


def _scheduling_failure(kube: Kubectl, pod: str, reason: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = kube.json("get", "events", "-n", NAMESPACE, "--field-selector",
                           f"involvedObject.name={pod},reason=FailedScheduling")["items"]
        if any(reason in (e.get("message") or "") for e in events):
            return True
        time.sleep(2)
    return False


# -- Services through kube-proxy ------------------------------------------------------------------------------


def test_a_service_answers_across_nodes_and_through_a_node_port(kube: Kubectl, cluster_lab: ClusterLab,
                                                                client_pods: dict[str, str], built_mirror):
    first, second = workers(cluster_lab)
    server = deployment("web", built_mirror.test_image, 1, http_server(8080), port=8080)
    server["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": first}
    kube.apply(server, service("web", 80, 8080, kind="NodePort"))
    kube.wait_for("condition=Available", "deployment/web", "-n", NAMESPACE)
    svc = kube.json("get", "service", "web", "-n", NAMESPACE)
    cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    # ClusterIP, from a pod on the other worker.
    answer = in_pod(kube, client_pods[second], f"timeout 10 wget -qO- http://{cluster_ip}/")
    assert answer.stdout.strip().startswith("served-by-web-"), answer.stdout + answer.stderr
    # NodePort, from the controller, on each worker's own address (the server runs on one of them).
    for machine in (m for m in cluster_lab.lab.machines if m.role == "worker"):
        with urllib.request.urlopen(f"http://{machine.address}:{node_port}/", timeout=10) as response:
            assert response.read().decode().startswith("served-by-web-"), machine.name
    # The rules kube-proxy wrote for it are on every node.
    for node in workers(cluster_lab):
        rules = cluster_lab.lab.exec(node, "iptables-save -t nat").stdout
        assert f"-d {cluster_ip}/32" in rules and f"--dport {node_port}" in rules, node
        assert f'"{NAMESPACE}/web"' in rules or f"{NAMESPACE}/web" in rules, node


# -- the pod network from hosts: apiservers reach pods, hostPort through portmap -------------------------------


def test_the_apiserver_host_reaches_a_pod_on_a_worker(kube: Kubectl, cluster_lab: ClusterLab, built_mirror):
    # The master runs no kubelet, yet its apiserver calls webhook and aggregated-API pods at their pod IPs
    # (--enable-aggregator-routing): without the pod routes there, every such call timed out.
    first, _ = workers(cluster_lab)
    kube.apply(busybox_pod("pod-ip-target", built_mirror.test_image, node=first, namespace=NAMESPACE,
                           command=http_server(8080)))
    kube.wait_for("condition=Ready", "pod/pod-ip-target", "-n", NAMESPACE)
    pod_ip = kube.json("get", "pod", "pod-ip-target", "-n", NAMESPACE)["status"]["podIP"]
    master = next(m for m in cluster_lab.lab.machines if m.role == "master")
    answer = cluster_lab.lab.exec(master.name, f"curl -fsS --max-time 10 http://{pod_ip}:8080/")
    assert answer.stdout.strip() == "served-by-pod-ip-target", answer.stdout + answer.stderr


def test_a_host_port_answers_on_its_node_s_address_from_another_host(kube: Kubectl, cluster_lab: ClusterLab,
                                                                      built_mirror):
    # hostPort is the CNI portmap plugin's work, chained after the bridge in 10-bridge.conflist.
    first, second = workers(cluster_lab)
    pod = busybox_pod("host-port", built_mirror.test_image, node=first, namespace=NAMESPACE,
                      command=http_server(8080))
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8080, "hostPort": 18080}]
    kube.apply(pod)
    kube.wait_for("condition=Ready", "pod/host-port", "-n", NAMESPACE)
    address = next(m.address for m in cluster_lab.lab.machines if m.name == first)
    answer = cluster_lab.lab.exec(second, f"curl -fsS --max-time 10 http://{address}:18080/")
    assert answer.stdout.strip() == "served-by-host-port", answer.stdout + answer.stderr
    assert cluster_lab.lab.exec(first, "test -e /etc/cni/net.d/10-bridge.conf").returncode != 0  # no stale .conf


# -- Secrets at rest ------------------------------------------------------------------------------------------


def test_a_secret_is_encrypted_in_etcd(kube: Kubectl, cluster_lab: ClusterLab):
    kube.run("create", "secret", "generic", "plain-words", "-n", NAMESPACE, "--from-literal=word=swordfish")
    master = next(m for m in cluster_lab.lab.machines if m.role == "master")
    get = (f"ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints=https://127.0.0.1:2379 "
           f"--cacert={remote_path('etcd-ca.crt')} --cert={remote_path('etcd-healthcheck-client.crt')} --key={remote_path('etcd-healthcheck-client.key')} "
           f"get /registry/secrets/{NAMESPACE}/plain-words --print-value-only")
    # The stored value is binary: look at its first bytes and search it on the host.
    raw = cluster_lab.lab.exec(master.name, f"{get} | head -c 18; echo; {get} | grep -ac swordfish || true")
    prefix, found = raw.stdout.splitlines()[:2]
    # secretbox, the provider kbuild configures (authenticated; the Kubernetes docs prefer it to aescbc).
    assert prefix == "k8s:enc:secretbox:" and found.strip() == "0", raw.stdout[:200]
    assert kube.run("get", "secret", "plain-words", "-n", NAMESPACE, "-o", "jsonpath={.data.word}").stdout == \
        "c3dvcmRmaXNo"  # base64 of swordfish: the apiserver decrypts it


# -- a node that dies -----------------------------------------------------------------------------------------


def test_a_node_whose_kubelet_stops_goes_not_ready_and_its_pods_move(kube: Kubectl, cluster_lab: ClusterLab,
                                                                     built_mirror):
    first, second = workers(cluster_lab)
    app = deployment("moving", built_mirror.test_image, 2, "sleep 3600", tolerate_seconds=5)
    kube.apply(app)
    kube.wait_for("condition=Available", "deployment/moving", "-n", NAMESPACE)
    on_first = [p["metadata"]["name"] for p in pods_of(kube, "moving") if p["spec"]["nodeName"] == first]
    if not on_first:  # both landed on the second worker: pin one to the first, then let it go free
        kube.run("cordon", second)
        kube.run("delete", "pod", "-n", NAMESPACE, pods_of(kube, "moving")[0]["metadata"]["name"])
        kube.wait_for("condition=Available", "deployment/moving", "-n", NAMESPACE)
        kube.run("uncordon", second)
        on_first = [p["metadata"]["name"] for p in pods_of(kube, "moving") if p["spec"]["nodeName"] == first]
    assert on_first
    grace = load_cluster(cluster_lab.inventory, state_dir=cluster_lab.state_dir).settings.node_monitor_grace_period
    stopped = time.monotonic()
    cluster_lab.lab.exec(first, "systemctl stop kubelet")
    try:
        # A kubelet that stopped posting leaves its Node's Ready condition Unknown (not False).
        kube.wait_for("condition=Ready=Unknown", f"node/{first}", timeout=120)
        not_ready_after = time.monotonic() - stopped
        # The controller manager marks it NotReady once the grace period has passed (checked every 5 s).
        assert not_ready_after <= _seconds(grace) + 30, not_ready_after
        # Its pods are evicted after their 5 s toleration and recreated on the other worker.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            running = [p for p in pods_of(kube, "moving") if p["status"].get("phase") == "Running"
                       and not p["metadata"].get("deletionTimestamp")]
            if len(running) == 2 and {p["spec"]["nodeName"] for p in running} == {second}:
                break
            time.sleep(2)
        else:
            raise AssertionError(f"pods not moved to {second}: {[(p['metadata']['name'], p['spec'].get('nodeName'), p['status'].get('phase')) for p in pods_of(kube, 'moving')]}")
        print(f"\n[workloads] {first} NotReady after {not_ready_after:.0f}s; pods on {second} after "
              f"{time.monotonic() - stopped:.0f}s")
    finally:
        cluster_lab.lab.exec(first, "systemctl start kubelet")
        kube.wait_for("condition=Ready", f"node/{first}", timeout=180)
        kube.run("delete", "deployment/moving", "-n", NAMESPACE, "--wait=false", check=False)


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]]
