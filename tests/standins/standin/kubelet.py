"""kubelet stand-in: config and kubeconfig checks, CRI socket check, Node registration, heartbeats, :10250/:10248."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.parse

from . import configs, klog
from .common import (
    BuildInfo,
    Fatal,
    check_ca_file,
    check_cert_key_pair,
    default_ipv4,
    go_arch,
    micro_time,
    node_hostname,
    now_rfc3339,
    parse_ip,
    self_signed_pair,
)
from .flags import Flags
from .kubeconfig import ApiClient, ApiError, TransportError, load_checked
from .tlsserver import Handler, TLSHTTPServer, server_context

SRC = "kubelet_node_status.go:75"
DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# Deprecated command-line flags that still override the config file (flag -> config field).
FLAG_TO_CONFIG = {
    "address": "address", "port": "port", "healthz-port": "healthzPort", "healthz-bind-address": "healthzBindAddress",
    "cgroup-driver": "cgroupDriver", "container-runtime-endpoint": "containerRuntimeEndpoint",
    "tls-cert-file": "tlsCertFile", "tls-private-key-file": "tlsPrivateKeyFile", "cluster-domain": "clusterDomain",
    "node-status-update-frequency": "nodeStatusUpdateFrequency", "max-pods": "maxPods", "pod-manifest-path": "staticPodPath",
}


def effective_config(flags: Flags) -> dict:
    cfg: dict = {}
    if flags.get("config"):
        cfg = configs.kubelet_config(flags.get("config"))
    else:
        klog.warning("server.go:219", "No --config given: using the built-in defaults")
    for flag, field in FLAG_TO_CONFIG.items():
        if flags.given(flag):
            cfg[field] = flags.get(flag)
    if flags.given("fail-swap-on"):
        cfg["failSwapOn"] = flags.get_bool("fail-swap-on")
    if flags.given("anonymous-auth"):
        cfg.setdefault("authentication", {}).setdefault("anonymous", {})["enabled"] = flags.get_bool("anonymous-auth")
    if flags.given("client-ca-file"):
        cfg.setdefault("authentication", {}).setdefault("x509", {})["clientCAFile"] = flags.get("client-ca-file")
    if flags.given("authorization-mode"):
        cfg.setdefault("authorization", {})["mode"] = flags.get("authorization-mode")
    if flags.given("cluster-dns"):
        cfg["clusterDNS"] = flags.get_list("cluster-dns")
    if flags.given("register-node"):
        cfg["registerNode"] = flags.get_bool("register-node")
    if flags.get("tls-cert-file") or flags.get("client-ca-file"):
        # flags re-checked here because the config-file path did not see them
        if flags.get("tls-cert-file"):
            check_cert_key_pair(flags.get("tls-cert-file"), flags.get("tls-private-key-file"), "failed to load kubelet serving certificate")
        if flags.get("client-ca-file"):
            check_ca_file(flags.get("client-ca-file"), "unable to load client CA file")
    return cfg


def check_swap(cfg: dict) -> None:
    if not cfg.get("failSwapOn", True):
        return
    try:
        with open("/proc/swaps") as fh:
            lines = fh.read().strip().splitlines()[1:]
    except OSError:
        return
    if lines:
        raise Fatal("failed to run Kubelet: running with swap on is not supported, please disable swap or set --fail-swap-on flag to false")


def runtime_socket(cfg: dict) -> str:
    endpoint = cfg.get("containerRuntimeEndpoint") or "unix:///run/containerd/containerd.sock"
    if endpoint.startswith("unix://"):
        return urllib.parse.urlsplit(endpoint).path or endpoint[len("unix://"):]
    if endpoint.startswith("/"):
        return endpoint
    raise Fatal(f'failed to run Kubelet: validate service connection: protocol {json.dumps(endpoint.split(":")[0])} not supported')


def runtime_up(path: str) -> str | None:
    """None when the CRI socket accepts a connection, else the dial error (as gRPC would word it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(path)
        except OSError as err:
            return f"dial unix {path}: connect: {(err.strerror or str(err)).lower()}"
    return None


def parse_taints(values: list[str]) -> list[dict]:
    taints = []
    for item in values:
        if isinstance(item, dict):
            taints.append(item)
            continue
        keyval, _, effect = item.partition(":")
        key, _, value = keyval.partition("=")
        if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise Fatal(f"invalid taint spec: {item}, invalid taint effect: {effect}, unsupported taint effect")
        taints.append({"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect})
    return taints


def node_object(info: BuildInfo, flags: Flags, cfg: dict, name: str, ip: str) -> dict:
    arch = go_arch()
    labels = {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
              "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    for pair in flags.get_list("node-labels"):
        k, _, v = pair.partition("=")
        labels[k] = v
    taints = parse_taints(flags.get_list("register-with-taints") or cfg.get("registerWithTaints") or [])
    cpus = str(os.cpu_count() or 1)
    mem_kib = 0
    try:
        with open("/proc/meminfo") as fh:
            mem_kib = int(fh.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    capacity = {"cpu": cpus, "memory": f"{mem_kib}Ki", "pods": str(cfg.get("maxPods", 110)), "ephemeral-storage": "10Gi"}
    spec: dict = {"taints": taints} if taints else {}
    uname = os.uname()
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
        "status": {
            "capacity": capacity, "allocatable": dict(capacity),
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": int(cfg.get("port", 10250))}},
            "nodeInfo": {"kubeletVersion": info.git_version, "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": arch, "containerRuntimeVersion": "containerd://standin",
                         "kernelVersion": uname.release, "osImage": "Debian GNU/Linux", "machineID": "", "systemUUID": "",
                         "bootID": ""},
        },
    }


def conditions(runtime_error: str | None) -> list[dict]:
    now = now_rfc3339()
    conds = []
    for ctype, reason, msg in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                               ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                               ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")):
        conds.append({"type": ctype, "status": "False", "reason": reason, "message": msg,
                      "lastHeartbeatTime": now, "lastTransitionTime": now})
    if runtime_error:
        conds.append({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                      "message": f"container runtime is down: {runtime_error}", "lastHeartbeatTime": now,
                      "lastTransitionTime": now})
    else:
        conds.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                      "lastHeartbeatTime": now, "lastTransitionTime": now})
    return conds


class Kubelet:
    def __init__(self, info: BuildInfo, flags: Flags, cfg: dict, client: ApiClient | None, name: str, ip: str,
                 sock: str, stop: threading.Event) -> None:
        self.info, self.flags, self.cfg, self.client = info, flags, cfg, client
        self.name, self.ip, self.sock, self.stop = name, ip, sock, stop
        self.registered = threading.Event()
        self._sar_cache: dict[tuple, tuple[float, bool]] = {}

    # -- API side -----------------------------------------------------------------------------------

    def register(self) -> None:
        node = node_object(self.info, self.flags, self.cfg, self.name, self.ip)
        node["status"]["conditions"] = conditions(runtime_up(self.sock))
        delay = 0.5
        while not self.stop.is_set():
            try:
                klog.info(SRC, "Attempting to register node", node=self.name)
                existing = self.client.get_or_none(f"/api/v1/nodes/{self.name}")
                if existing is None:
                    self.client.request("POST", "/api/v1/nodes", node)
                klog.info(SRC, "Successfully registered node", node=self.name)
                self.registered.set()
                return
            except (ApiError, TransportError) as err:
                klog.error(SRC, "Unable to register node with API server", err=str(err), node=self.name)
            self.stop.wait(delay)
            delay = min(delay * 2, 7)

    def heartbeat(self) -> None:
        """Node status every nodeStatusUpdateFrequency and the node Lease every 10s (the real cadence)."""
        status_every = configs.parse_duration(self.cfg.get("nodeStatusUpdateFrequency"), "nodeStatusUpdateFrequency", 10)
        lease_every = min(10.0, status_every)
        next_status = next_lease = 0.0
        while not self.stop.is_set():
            now = time.time()
            if now >= next_lease:
                self._renew_lease()
                next_lease = now + lease_every
            if now >= next_status:
                self._update_status()
                next_status = now + status_every
            self.stop.wait(min(next_lease, next_status) - time.time())

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        stamp = micro_time()
        try:
            lease = self.client.get_or_none(path)
            if lease is None:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                        "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": stamp}}
                self.client.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body)
            else:
                lease.setdefault("spec", {})["renewTime"] = stamp
                self.client.request("PUT", path, lease)
        except (ApiError, TransportError) as err:
            klog.error("controller.go:145", "Failed to ensure lease exists, will retry", err=str(err))

    def _update_status(self) -> None:
        err = runtime_up(self.sock)
        if err:
            klog.error("kubelet.go:3117", "Container runtime not ready", err=err)
        patch = {"status": {"conditions": conditions(err)}}
        try:
            self.client.request("PATCH", f"/api/v1/nodes/{self.name}/status", patch,
                                content_type="application/strategic-merge-patch+json")
        except (ApiError, TransportError) as e:
            klog.error("kubelet_node_status.go:549", "Error updating node status, will retry", err=str(e))

    # -- kubelet API authorization (webhook = SubjectAccessReview to the apiserver) -------------------

    def authorized(self, user: str, groups: list[str], verb: str, subresource: str) -> bool:
        mode = (self.cfg.get("authorization") or {}).get("mode", "Webhook")
        if mode == "AlwaysAllow":
            return True
        if self.client is None:
            return False
        key = (user, tuple(groups), verb, subresource)
        cached = self._sar_cache.get(key)
        # like the real webhook cache: allowed answers live longer than denials
        if cached and time.time() - cached[0] < (10 if cached[1] else 2):
            return cached[1]
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": user, "groups": groups,
                           "resourceAttributes": {"verb": verb, "resource": "nodes", "subresource": subresource,
                                                  "name": self.name}}}
        try:
            out = self.client.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
            allowed = bool(out.get("status", {}).get("allowed"))
        except (ApiError, TransportError) as err:
            klog.error("auth.go:57", "Failed to make webhook authorizer request", err=str(err))
            return False
        self._sar_cache[key] = (time.time(), allowed)
        return allowed


def subresource_for(path: str) -> str:
    for prefix, sub in (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/checkpoint", "checkpoint"),
                        ("/healthz", "healthz"), ("/pods", "pods"), ("/configz", "configz")):
        if path == prefix or path.startswith(prefix + "/"):
            return sub
    return "proxy"


class KubeletHandler(Handler):
    def do_GET(self) -> None:
        kl: Kubelet = self.server.kubelet
        ident = self.peer_identity()
        anonymous = ((kl.cfg.get("authentication") or {}).get("anonymous") or {}).get("enabled", False)
        if ident:
            user, groups = ident[0], ident[1] + ["system:authenticated"]
        elif anonymous:
            user, groups = "system:anonymous", ["system:unauthenticated"]
        else:
            self.send_text(401, "Unauthorized")
            return
        path = self.path.split("?")[0]
        sub = subresource_for(path)
        if not (kl.authorized(user, groups, "get", sub) or (sub in ("healthz", "pods", "configz")
                                                             and kl.authorized(user, groups, "get", "proxy"))):
            self.send_text(403, f"Forbidden (user={user}, verb=get, resource=nodes, subresource={sub})")
            return
        if path == "/healthz":
            self.send_text(200, "ok")
        elif path == "/pods":
            self.send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []})
        elif path == "/configz":
            self.send_json(200, {"kubeletconfig": kl.cfg})
        elif path == "/metrics":
            self.send_text(200, f'kubernetes_build_info{{git_version="{kl.info.git_version}"}} 1\n')
        else:
            self.send_text(404, "404 page not found\n")


class HealthzHandler(Handler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/healthz":
            self.send_text(200, "ok")
        else:
            self.send_text(404, "404 page not found\n")


def main(info: BuildInfo, flags: Flags, stop: threading.Event) -> None:
    cfg = effective_config(flags)
    name = (flags.get("hostname-override") or node_hostname()).strip().lower()
    if not DNS1123.fullmatch(name) or len(name) > 253:
        raise Fatal(f"failed to run Kubelet: node name {json.dumps(name)} is not a valid DNS-1123 subdomain")
    client = None
    kubeconfig = flags.get("kubeconfig")
    if kubeconfig:
        if not os.path.exists(kubeconfig) and flags.get("bootstrap-kubeconfig"):
            raise Fatal("failed to run Kubelet: TLS bootstrapping (--bootstrap-kubeconfig) is not implemented by the stand-in")
        client = ApiClient(load_checked(kubeconfig, "--kubeconfig"), f"kubelet/{info.git_version} (linux/{go_arch()}) kubernetes/standin")
    check_swap(cfg)
    sock = runtime_socket(cfg)
    err = runtime_up(sock)
    if err:
        endpoint = cfg.get("containerRuntimeEndpoint") or "unix:///run/containerd/containerd.sock"
        raise Fatal(f'failed to run Kubelet: validate service connection: validate CRI v1 runtime API for endpoint {json.dumps(endpoint)}: '
                    f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: {err}"')
    ip = parse_ip(flags.get("node-ip").split(",")[0], "--node-ip") if flags.get("node-ip") else default_ipv4()
    kl = Kubelet(info, flags, cfg, client, name, ip, sock, stop)
    klog.info("server.go:530", "Kubelet version", kubeletVersion=info.git_version)

    hz_port = int(cfg.get("healthzPort", 10248))
    if hz_port:
        hz = TLSHTTPServer((cfg.get("healthzBindAddress") or "127.0.0.1", hz_port), HealthzHandler, None, "server.go:224")
        hz.serve_in_thread()
    cert, key = cfg.get("tlsCertFile"), cfg.get("tlsPrivateKeyFile")
    if not cert:
        cert, key = self_signed_pair(info)
    ca = ((cfg.get("authentication") or {}).get("x509") or {}).get("clientCAFile")
    address, port = cfg.get("address") or "0.0.0.0", int(cfg.get("port", 10250))
    try:
        srv = TLSHTTPServer((address, port), KubeletHandler, server_context(cert, key, ca, False), "server.go:3413")
    except OSError as e:
        raise Fatal(f"failed to run Kubelet: listen tcp {address}:{port}: bind: {(e.strerror or str(e)).lower()}") from e
    srv.kubelet = kl
    srv.serve_in_thread()
    klog.info("server.go:182", "Starting to listen", address=address, port=port)
    if client is not None and cfg.get("registerNode", True):
        def run_api() -> None:
            kl.register()
            kl.heartbeat()
        threading.Thread(target=run_api, daemon=True).start()
    stop.wait()
    srv.shutdown()
