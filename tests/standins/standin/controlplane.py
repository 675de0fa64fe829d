"""kube-controller-manager and kube-scheduler stand-ins: kubeconfig, leader-election Lease, HTTPS /healthz."""

from __future__ import annotations

import json
import threading
import time
import uuid

import yaml

from . import configs, klog
from .common import (
    BuildInfo,
    Fatal,
    check_ca_file,
    check_cert_key_pair,
    check_pem_keys,
    in_cluster_error,
    listen_error,
    micro_time,
    node_hostname,
    parse_micro_time,
    self_signed_pair,
)
from .flags import Flags
from .kubeconfig import ApiClient, ApiError, TransportError, load_checked
from .tlsserver import Handler, TLSHTTPServer, server_context

LE_SRC = "leaderelection.go:257"

# From the 1.34 --controllers help text.
KNOWN_CONTROLLERS = set("""
bootstrap-signer-controller certificatesigningrequest-approving-controller certificatesigningrequest-cleaner-controller
certificatesigningrequest-signing-controller cloud-node-lifecycle-controller clusterrole-aggregation-controller
cronjob-controller daemonset-controller deployment-controller device-taint-eviction-controller disruption-controller
endpoints-controller endpointslice-controller endpointslice-mirroring-controller ephemeral-volume-controller
garbage-collector-controller horizontal-pod-autoscaler-controller job-controller
kube-apiserver-serving-clustertrustbundle-publisher-controller legacy-serviceaccount-token-cleaner-controller
namespace-controller node-ipam-controller node-lifecycle-controller node-route-controller
persistentvolume-attach-detach-controller persistentvolume-binder-controller persistentvolume-expander-controller
persistentvolume-protection-controller persistentvolumeclaim-protection-controller pod-garbage-collector-controller
podcertificaterequest-cleaner-controller replicaset-controller replicationcontroller-controller resourceclaim-controller
resourcequota-controller root-ca-certificate-publisher-controller selinux-warning-controller service-cidr-controller
service-lb-controller serviceaccount-controller serviceaccount-token-controller statefulset-controller
storage-version-migrator-controller storageversion-garbage-collector-controller taint-eviction-controller
token-cleaner-controller ttl-after-finished-controller ttl-controller validatingadmissionpolicy-status-controller
volumeattributesclass-protection-controller
""".split()) | set("""
attachdetach bootstrapsigner cloud-node-lifecycle clusterrole-aggregation cronjob csrapproving csrcleaner csrsigning
daemonset deployment disruption endpoint endpointslice endpointslicemirroring ephemeral-volume garbagecollector
horizontalpodautoscaling job legacy-service-account-token-cleaner namespace nodeipam nodelifecycle
persistentvolume-binder persistentvolume-expander podgc pv-protection pvc-protection replicaset replicationcontroller
resourceclaim resourcequota root-ca-cert-publisher route service serviceaccount serviceaccount-token statefulset
storage-version-gc tokencleaner ttl ttl-after-finished taint-eviction-controller
""".split())  # the pre-1.28 names still work as aliases (kubeadm passes bootstrapsigner,tokencleaner)


class LeaderElector:
    """client-go's leaderelection over a coordination.k8s.io Lease, with its log lines."""

    def __init__(self, client: ApiClient, namespace: str, name: str, lease: float, renew: float, retry: float,
                 stop: threading.Event) -> None:
        self.client, self.namespace, self.name = client, namespace, name
        self.lease_s, self.renew_s, self.retry_s = lease, renew, retry
        self.stop = stop
        self.identity = f"{node_hostname()}_{uuid.uuid4()}"
        self.leading = threading.Event()
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"

    def run(self) -> None:
        klog.info(LE_SRC, f"attempting to acquire leader lease {self.namespace}/{self.name}...")
        while not self.stop.is_set():
            ok = self._try()
            if ok and not self.leading.is_set():
                self.leading.set()
                klog.info(LE_SRC, f"successfully acquired lease {self.namespace}/{self.name}")
            elif not ok and self.leading.is_set():
                self.leading.clear()
                klog.error("leaderelection.go:285", "failed to renew lease", lease=f"{self.namespace}/{self.name}")
            self.stop.wait(self.retry_s)
        if self.leading.is_set():
            self._release()

    def _try(self) -> bool:
        now = time.time()
        try:
            lease = self.client.get_or_none(self.path)
        except (ApiError, TransportError) as err:
            klog.error("leaderelection.go:436", f"error retrieving resource lock {self.namespace}/{self.name}: {err}")
            return False
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_s), "renewTime": micro_time(now)}
        try:
            if lease is None:
                spec.update(acquireTime=micro_time(now), leaseTransitions=0)
                self.client.request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
                                    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                     "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec})
                return True
            cur = lease.get("spec") or {}
            holder = cur.get("holderIdentity") or ""
            expires = parse_micro_time(cur.get("renewTime", "")) + float(cur.get("leaseDurationSeconds") or 0)
            if holder and holder != self.identity and expires > now:
                return False
            if holder != self.identity:
                spec.update(acquireTime=micro_time(now), leaseTransitions=int(cur.get("leaseTransitions") or 0) + 1)
            else:
                spec.update(acquireTime=cur.get("acquireTime"), leaseTransitions=cur.get("leaseTransitions", 0))
            lease["spec"] = spec
            self.client.request("PUT", self.path, lease)
            return True
        except (ApiError, TransportError) as err:
            klog.error("leaderelection.go:448", f"error initially creating/updating leader election record: {err}")
            return False

    def _release(self) -> None:
        try:
            lease = self.client.get_or_none(self.path)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"].update(holderIdentity=None, leaseDurationSeconds=1, renewTime=micro_time())
                self.client.request("PUT", self.path, lease)
        except (ApiError, TransportError):
            pass


class HealthHandler(Handler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        allowed = self.server.always_allow
        if path in ("/healthz", "/livez", "/readyz"):
            if path in allowed or self.peer_identity():
                self.send_text(200, "ok")
                return
        if path not in allowed:
            user = self.peer_identity()
            name = user[0] if user else "system:anonymous"
            self.send_json(403, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": f'forbidden: User "{name}" cannot get path "{path}"', "reason": "Forbidden",
                                 "details": {}, "code": 403})
            return
        self.send_text(404, "404 page not found\n")


def node_lifecycle(client: ApiClient, elector: LeaderElector | None, grace: float, period: float,
                   stop: threading.Event) -> None:
    """Mark Ready=Unknown on nodes whose kubelet stopped posting status (the node-lifecycle-controller's job)."""
    while not stop.wait(period):
        if elector is not None and not elector.leading.is_set():
            continue
        try:
            nodes = client.request("GET", "/api/v1/nodes").get("items", [])
        except (ApiError, TransportError) as err:
            klog.error("node_lifecycle_controller.go:720", "Error listing nodes", err=str(err))
            continue
        now = time.time()
        for node in nodes:
            conds = node.get("status", {}).get("conditions") or []
            ready = next((c for c in conds if c.get("type") == "Ready"), None)
            if not ready or ready.get("status") == "Unknown":
                continue
            seen = parse_micro_time(ready.get("lastHeartbeatTime", ""))
            if seen and now - seen > grace:
                ready.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                             lastTransitionTime=micro_time(now)[:19] + "Z")
                name = node["metadata"]["name"]
                try:
                    client.request("PUT", f"/api/v1/nodes/{name}/status", node)
                    klog.info("node_lifecycle_controller.go:1132", "Node is unresponsive. Marking it NotReady", node=name)
                except (ApiError, TransportError) as err:
                    klog.error("node_lifecycle_controller.go:1140", "Error updating node", node=name, err=str(err))


def serve_health(info: BuildInfo, flags: Flags, default_port: int) -> TLSHTTPServer | None:
    port = int(flags.get("secure-port", str(default_port)) or 0)
    if port == 0:
        return None
    cert, key = flags.get("tls-cert-file"), flags.get("tls-private-key-file")
    if cert:
        check_cert_key_pair(cert, key, "failed to load serving certificate")
    else:
        cert, key = self_signed_pair(info)
    ca = flags.get("client-ca-file") or None
    if ca:
        check_ca_file(ca, "unable to load client CA file")
    bind = flags.get("bind-address", "0.0.0.0") or "0.0.0.0"
    try:
        srv = TLSHTTPServer((bind, port), HealthHandler, server_context(cert, key, ca, False), "server.go:3413")
    except OSError as e:
        raise Fatal(listen_error(bind, port, e)) from e
    srv.always_allow = set(flags.get_list("authorization-always-allow-paths", ["/healthz", "/readyz", "/livez"]))
    srv.serve_in_thread()
    klog.info("secure_serving.go:213", f"Serving securely on {bind}:{port}")
    return srv


def delegated_auth(info: BuildInfo, flags: Flags) -> None:
    """--authentication-kubeconfig: the real one reads kube-system/extension-apiserver-authentication at start."""
    for flag in ("authentication-kubeconfig", "authorization-kubeconfig"):
        if flags.get(flag):
            load_checked(flags.get(flag), f"--{flag}")
    path = flags.get("authentication-kubeconfig")
    if not path:
        return
    client = ApiClient(load_checked(path, "--authentication-kubeconfig"), f"{info.component}/{info.git_version}")
    try:
        client.request("GET", "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication")
    except ApiError as err:
        klog.warning("authentication.go:397", "Unable to get configmap/extension-apiserver-authentication in kube-system.",
                     err=str(err))
    except TransportError as err:
        if flags.get_bool("authentication-tolerate-lookup-failure", info.component == "kube-scheduler"):
            klog.warning("authentication.go:401", "Continuing without authentication configuration.", err=str(err))
        else:
            raise Fatal(f"unable to load configmap based request-header-client-ca-file: {err}") from err


def run_leader(info: BuildInfo, client: ApiClient, le: dict, stop: threading.Event,
               default_name: str) -> LeaderElector | None:
    if not le.get("leaderElect", True):
        klog.info("server.go:196", "Leader election is disabled")
        return None
    elector = LeaderElector(client, le.get("resourceNamespace") or "kube-system", le.get("resourceName") or default_name,
                            configs.parse_duration(le.get("leaseDuration"), "leaseDuration", 15),
                            configs.parse_duration(le.get("renewDeadline"), "renewDeadline", 10),
                            configs.parse_duration(le.get("retryPeriod"), "retryPeriod", 2), stop)
    threading.Thread(target=elector.run, daemon=True).start()
    return elector


def leader_flags(flags: Flags) -> dict:
    return {"leaderElect": flags.get_bool("leader-elect", True),
            "resourceName": flags.get("leader-elect-resource-name"),
            "resourceNamespace": flags.get("leader-elect-resource-namespace"),
            "leaseDuration": flags.get("leader-elect-lease-duration") or None,
            "renewDeadline": flags.get("leader-elect-renew-deadline") or None,
            "retryPeriod": flags.get("leader-elect-retry-period") or None}


def controller_manager(info: BuildInfo, flags: Flags, stop: threading.Event) -> None:
    for ctl in flags.get_list("controllers", ["*"]):
        name = ctl.lstrip("-")
        if name != "*" and name not in KNOWN_CONTROLLERS:
            raise Fatal(f"{json.dumps(name)} is not in the list of known controllers")
    generic = [flags.get("cluster-signing-cert-file"), flags.get("cluster-signing-key-file")]
    if any(generic):
        if not all(generic):
            raise Fatal("cluster-signing-cert-file and cluster-signing-key-file must be specified together")
        check_cert_key_pair(generic[0], generic[1], "failed to start certificate controller: error reading CA cert file")
    if flags.get("root-ca-file"):
        check_ca_file(flags.get("root-ca-file"), "error reading root-ca-file")
    if flags.get("service-account-private-key-file"):
        check_pem_keys(flags.get("service-account-private-key-file"), "error reading key for service account token controller")
    if flags.get("cluster-cidr"):
        configs.cidr_list(flags.get("cluster-cidr"), "--cluster-cidr")
    if flags.get_bool("allocate-node-cidrs") and not flags.get("cluster-cidr"):
        raise Fatal('failed to start controller "node-ipam-controller": kube-controller-manager must be configured '
                    "with --cluster-cidr when --allocate-node-cidrs is true")
    if flags.get("service-cluster-ip-range"):
        configs.cidr_list(flags.get("service-cluster-ip-range"), "--service-cluster-ip-range")
    if not flags.get("kubeconfig") and not flags.get("master"):
        raise in_cluster_error()
    client = ApiClient(load_checked(flags.get("kubeconfig"), "--kubeconfig"), f"kube-controller-manager/{info.git_version}")
    delegated_auth(info, flags)
    klog.info("controllermanager.go:191", "Starting", version=info.git_version)
    srv = serve_health(info, flags, 10257)
    elector = run_leader(info, client, leader_flags(flags), stop, "kube-controller-manager")
    grace = configs.parse_duration(flags.get("node-monitor-grace-period") or None, "--node-monitor-grace-period", 50)
    period = configs.parse_duration(flags.get("node-monitor-period") or None, "--node-monitor-period", 5)
    threading.Thread(target=node_lifecycle, args=(client, elector, grace, period, stop), daemon=True).start()
    stop.wait()
    if srv:
        srv.shutdown()


def scheduler(info: BuildInfo, flags: Flags, stop: threading.Event) -> None:
    cfg: dict = {}
    if flags.get("config"):
        cfg = configs.scheduler_config(flags.get("config"))
    kubeconfig = (cfg.get("clientConnection") or {}).get("kubeconfig") or flags.get("kubeconfig")
    if flags.get("write-config-to"):
        with open(flags.get("write-config-to"), "w") as fh:
            yaml.safe_dump(cfg or {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"}, fh)
        klog.info("server.go:112", "Wrote configuration", file=flags.get("write-config-to"))
        return
    if not kubeconfig and not flags.get("master"):
        raise in_cluster_error()
    client = ApiClient(load_checked(kubeconfig, "--kubeconfig"), f"kube-scheduler/{info.git_version}")
    delegated_auth(info, flags)
    klog.info("server.go:167", "Starting Kubernetes Scheduler", version=info.git_version)
    srv = serve_health(info, flags, 10259)
    le = cfg.get("leaderElection") if cfg else None
    run_leader(info, client, le if le is not None else leader_flags(flags), stop, "kube-scheduler")
    stop.wait()
    if srv:
        srv.shutdown()
