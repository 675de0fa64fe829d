"""kube-apiserver stand-in: validates its flags like the real one, serves HTTPS with x509 authn, stores in etcd."""

from __future__ import annotations

import csv
import http.client
import ipaddress
import json
import os
import ssl
import threading
import time
import urllib.parse

from . import apiresources as ar
from . import authz, configs, klog
from .apihandler import ApiHandler, audit_event
from .common import (
    BuildInfo,
    Fatal,
    check_ca_file,
    check_cert_key_pair,
    check_pem_keys,
    default_ipv4,
    listen_error,
    parse_ip,
    read_text,
    require_file,
    self_signed_pair,
)
from .etcd import EtcdClient, EtcdError
from .flags import Flags
from .store import Store, StoreError
from .tlsserver import TLSHTTPServer, server_context

SRC = "server.go:167"

# From the 1.33/1.34 reference (--enable-admission-plugins help text).
ADMISSION_PLUGINS = {
    "AlwaysAdmit", "AlwaysDeny", "AlwaysPullImages", "CertificateApproval", "CertificateSigning",
    "CertificateSubjectRestriction", "ClusterTrustBundleAttest", "DefaultIngressClass", "DefaultStorageClass",
    "DefaultTolerationSeconds", "DenyServiceExternalIPs", "EventRateLimit", "ExtendedResourceToleration",
    "ImagePolicyWebhook", "LimitPodHardAntiAffinityTopology", "LimitRanger", "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook", "NamespaceAutoProvision", "NamespaceExists", "NamespaceLifecycle", "NodeRestriction",
    "OwnerReferencesPermissionEnforcement", "PersistentVolumeClaimResize", "PodNodeSelector", "PodSecurity",
    "PodTolerationRestriction", "PodTopologyLabels", "Priority", "ResourceQuota", "RuntimeClass", "ServiceAccount",
    "StorageObjectInUseProtection", "TaintNodesByCondition", "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook",
}
TLS_VERSIONS = ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def service_cidrs(value: str) -> list[ipaddress._BaseNetwork]:
    nets = configs.cidr_list(value, "--service-cluster-ip-range") if value else []
    for net in nets:
        # The real limit: at most 2^20 service IPs per family.
        if net.version == 4 and net.prefixlen < 12:
            raise Fatal("specified --service-cluster-ip-range is too large; for 32-bit addresses, the mask must be >= 12")
        if net.version == 6 and net.prefixlen < 108:
            raise Fatal("specified --service-cluster-ip-range is too large; for 128-bit addresses, the mask must be >= 108")
    return nets


def validate(flags: Flags) -> list[str]:
    """The start-up checks of the real apiserver that a kbuild mistake would trip; aggregated like it does."""
    errs: list[str] = []
    if not flags.get_list("etcd-servers"):
        errs.append("--etcd-servers must be specified")
    issuers = flags.get_list("service-account-issuer")
    if not issuers:
        errs.append("service-account-issuer is a required flag")
    for issuer in issuers:
        if ":" in issuer:
            u = urllib.parse.urlsplit(issuer)
            if u.scheme != "https" or not u.netloc or u.query or u.fragment:
                errs.append(f"service-account-issuer {json.dumps(issuer)} contained a ':' but was not a valid URL")
    if not flags.get("service-account-signing-key-file") and not flags.get("service-account-signing-endpoint"):
        errs.append("--service-account-signing-key-file and --service-account-issuer are required flags")
    modes = flags.get_list("authorization-mode") if flags.given("authorization-mode") else []
    if modes and flags.get("authorization-config"):
        errs.append("--authorization-config can not be specified when --authorization-mode is specified")
    for mode in modes:
        if mode not in authz.VALID_MODES:
            errs.append(f"authorization-mode {json.dumps(mode)} is not a valid mode")
    if len(set(modes)) != len(modes):
        errs.append(f"authorization-mode {json.dumps(','.join(modes))} has mode specified more than once")
    if "ABAC" in modes and not flags.get("authorization-policy-file"):
        errs.append("authorization-mode ABAC's authorization policy file not passed")
    if "Webhook" in modes and not flags.get("authorization-webhook-config-file"):
        errs.append("authorization-mode Webhook's authorization config file not passed")
    for flag in ("enable-admission-plugins", "disable-admission-plugins"):
        for plugin in flags.get_list(flag):
            if plugin not in ADMISSION_PLUGINS:
                errs.append(f"{flag} plugin {json.dumps(plugin)} is unknown")
    tls_min = flags.get("tls-min-version")
    if tls_min and tls_min not in TLS_VERSIONS:
        errs.append(f"unknown tls version {json.dumps(tls_min)}")
    backend = flags.get("storage-backend")
    if backend and backend != "etcd3":
        errs.append("--storage-backend invalid, allowed values: etcd3. If not specified, it will default to 'etcd3'")
    port = int(flags.get("secure-port", "6443") or 0)
    if not 1 <= port <= 65535:
        errs.append(f"--secure-port {port} must be between 1 and 65535, inclusive. It cannot be turned off with 0")
    for pair in ("tls-cert-file", "tls-private-key-file"), ("kubelet-client-certificate", "kubelet-client-key"), \
            ("proxy-client-cert-file", "proxy-client-key-file"), ("etcd-certfile", "etcd-keyfile"):
        if bool(flags.get(pair[0])) != bool(flags.get(pair[1])):
            errs.append(f"--{pair[0]} and --{pair[1]} must be specified together")
    return errs


def check_files(flags: Flags) -> None:
    """Every file a flag names must exist and hold what it should (the real one fails at start-up)."""
    if flags.get("tls-cert-file"):
        check_cert_key_pair(flags.get("tls-cert-file"), flags.get("tls-private-key-file"), "failed to load serving certificate")
    for flag in ("client-ca-file", "requestheader-client-ca-file", "etcd-cafile", "kubelet-certificate-authority", "oidc-ca-file"):
        if flags.get(flag):
            check_ca_file(flags.get(flag), f"unable to load --{flag}")
    for cert, key in (("etcd-certfile", "etcd-keyfile"), ("kubelet-client-certificate", "kubelet-client-key"),
                      ("proxy-client-cert-file", "proxy-client-key-file")):
        if flags.get(cert) and flags.get(key):
            check_cert_key_pair(flags.get(cert), flags.get(key), f"unable to load --{cert}/--{key}")
    for path in flags.get_list("service-account-key-file"):
        check_pem_keys(path, "failed to parse service-account-issuer-key-file")
    if flags.get("service-account-signing-key-file"):
        check_pem_keys(flags.get("service-account-signing-key-file"), "failed to parse service-account-signing-key-file")
    for flag in ("admission-control-config-file", "authentication-config", "authorization-config", "authorization-policy-file",
                 "token-auth-file", "egress-selector-config-file", "audit-webhook-config-file", "tracing-config-file",
                 "authentication-token-webhook-config-file", "authorization-webhook-config-file"):
        if flags.get(flag):
            require_file(flags.get(flag), f"--{flag}")
    if flags.get("encryption-provider-config"):
        configs.encryption_config(flags.get("encryption-provider-config"))
    if flags.get("audit-policy-file"):
        configs.audit_policy(flags.get("audit-policy-file"))


def load_tokens(path: str) -> dict[str, tuple[str, list[str]]]:
    tokens = {}
    for row in csv.reader(read_text(path, "--token-auth-file").splitlines()):
        if len(row) < 3:
            continue
        groups = [g for g in (row[3].split(",") if len(row) > 3 else []) if g]
        tokens[row[0]] = (row[1], groups)
    return tokens


class ApiServer:
    """State shared by request handlers."""

    def __init__(self, info: BuildInfo, flags: Flags, stop: threading.Event) -> None:
        self.info = info
        self.flags = flags
        self.stop = stop
        self.anonymous = flags.get_bool("anonymous-auth", True)
        self.tokens = load_tokens(flags.get("token-auth-file")) if flags.get("token-auth-file") else {}
        self.authz_modes = self._modes()
        enabled = set(flags.get_list("enable-admission-plugins"))
        self.node_restriction = "NodeRestriction" in enabled or "Node" in self.authz_modes
        etcd = EtcdClient(flags.get_list("etcd-servers"), flags.get("etcd-cafile") or None,
                          flags.get("etcd-certfile") or None, flags.get("etcd-keyfile") or None)
        self.store = Store(etcd, flags.get("etcd-prefix", "/registry"))
        self.port = int(flags.get("secure-port", "6443"))
        self.bind = flags.get("bind-address", "0.0.0.0") or "0.0.0.0"
        adv = flags.get("advertise-address") or (self.bind if self.bind not in ("0.0.0.0", "::") else default_ipv4())
        self.advertise_ip = parse_ip(adv, "--advertise-address")
        self.advertise = f"{self.advertise_ip}:{self.port}"
        self.service_nets = service_cidrs(flags.get("service-cluster-ip-range"))
        self.kubelet_address_types = flags.get_list("kubelet-preferred-address-types",
                                                    ["Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP"])
        self.kubelet_context = self._kubelet_context()
        self.bootstrapped = threading.Event()
        self.shutting_down = threading.Event()
        self._etcd_ok = (0.0, False)
        self._policy_cache: tuple[float, authz.Policy] | None = None
        self._audit_lock = threading.Lock()
        self.audit_path = flags.get("audit-log-path")
        self.audit_level = "Metadata"
        if flags.get("audit-policy-file"):
            levels = [r.get("level") for r in configs.audit_policy(flags.get("audit-policy-file")).get("rules")]
            self.audit_level = next((lv for lv in levels if lv != "None"), "None")

    def _modes(self) -> list[str]:
        if self.flags.get("authorization-config"):
            doc = configs.load_typed(self.flags.get("authorization-config"), "--authorization-config",
                                     "AuthorizationConfiguration", ("apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1beta1"))
            return [a.get("type") for a in doc.get("authorizers") or []]
        return self.flags.get_list("authorization-mode", ["AlwaysAllow"])

    def _kubelet_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.flags.get("kubelet-certificate-authority"):
            ctx.load_verify_locations(cafile=self.flags.get("kubelet-certificate-authority"))
        else:
            # without --kubelet-certificate-authority the real apiserver does not verify kubelets either
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.flags.get("kubelet-client-certificate"):
            ctx.load_cert_chain(self.flags.get("kubelet-client-certificate"), self.flags.get("kubelet-client-key"))
        return ctx

    def kubelet_get(self, host: str, port: int, path: str) -> tuple[int, str, bytes]:
        timeout = configs.parse_duration(self.flags.get("kubelet-timeout") or None, "--kubelet-timeout", 5)
        conn = http.client.HTTPSConnection(host, port, context=self.kubelet_context, timeout=timeout)
        try:
            conn.request("GET", path, headers={"User-Agent": f"kube-apiserver/{self.info.git_version}"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type") or "text/plain", resp.read()
        finally:
            conn.close()

    # -- health -------------------------------------------------------------------------------------

    def etcd_healthy(self) -> bool:
        checked, ok = self._etcd_ok
        if time.time() - checked > 1:
            ok = self.store.etcd.health()
            self._etcd_ok = (time.time(), ok)
        return ok

    def health_checks(self, kind: str) -> dict[str, bool]:
        checks = {"ping": True, "log": True}
        if kind != "livez":
            checks["etcd"] = self.etcd_healthy()
        checks["poststarthook/rbac/bootstrap-roles"] = self.bootstrapped.is_set() or kind == "livez"
        checks["poststarthook/start-system-namespaces-controller"] = self.bootstrapped.is_set() or kind == "livez"
        if kind == "readyz":
            checks["etcd-readiness"] = checks["etcd"]
            checks["shutdown"] = not self.shutting_down.is_set()
        return checks

    # -- authorization policy -----------------------------------------------------------------------

    def load_policy(self) -> authz.Policy:
        if self._policy_cache and time.time() - self._policy_cache[0] < 1:
            return self._policy_cache[1]
        policy = authz.Policy()
        crs, _ = self.store.list(ar.find("rbac.authorization.k8s.io", "v1", "clusterroles"), "")
        policy.cluster_roles = {o["metadata"]["name"]: o for o in crs}
        policy.cluster_role_bindings, _ = self.store.list(ar.find("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), "")
        roles, _ = self.store.list(ar.find("rbac.authorization.k8s.io", "v1", "roles"), "")
        policy.roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in roles}
        rbs, _ = self.store.list(ar.find("rbac.authorization.k8s.io", "v1", "rolebindings"), "")
        for rb in rbs:
            policy.role_bindings.setdefault(rb["metadata"]["namespace"], []).append(rb)
        self._policy_cache = (time.time(), policy)
        return policy

    def on_write(self, res: ar.Resource, obj: dict) -> dict:
        if res.group == "rbac.authorization.k8s.io":
            self._policy_cache = None
        return obj

    # -- audit --------------------------------------------------------------------------------------

    def audit(self, handler, user) -> None:
        if not self.audit_path or self.audit_level == "None":
            return
        line = json.dumps(audit_event(handler, user, self.audit_level)) + "\n"
        with self._audit_lock:
            if self.audit_path == "-":
                print(line, end="", flush=True)
            else:
                with open(self.audit_path, "a") as fh:
                    fh.write(line)

    # -- bootstrap (the real post-start hooks) ------------------------------------------------------

    def bootstrap(self) -> None:
        """Create system namespaces, bootstrap RBAC and the kubernetes Service; retry until etcd answers."""
        while not self.stop.is_set():
            try:
                self._bootstrap_once()
                self.bootstrapped.set()
                klog.info("storage_rbac.go:226", "created system namespaces, bootstrap roles and the kubernetes service")
                return
            except (EtcdError, StoreError) as err:
                klog.error("storage_rbac.go:187", "unable to initialize bootstrap objects, will retry", err=str(err))
                self.stop.wait(2)

    def _ensure(self, res: ar.Resource, namespace: str, obj: dict) -> None:
        try:
            self.store.create(res, namespace, obj)
        except StoreError as err:
            if err.code != 409:
                raise

    def _bootstrap_once(self) -> None:
        ns = ar.find("", "v1", "namespaces")
        for name in SYSTEM_NAMESPACES:
            self._ensure(ns, "", {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                                  "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        roles, bindings = authz.bootstrap_policy()
        for role in roles:
            self._ensure(ar.find("rbac.authorization.k8s.io", "v1", "clusterroles"), "", role)
        for binding in bindings:
            self._ensure(ar.find("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), "", binding)
        if self.flags.get("client-ca-file"):
            # read by controller-manager/scheduler at start-up (--authentication-kubeconfig)
            ca = read_text(self.flags.get("client-ca-file"), "--client-ca-file")
            self._ensure(ar.find("", "v1", "configmaps"), "kube-system",
                         {"metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
                          "data": {"client-ca-file": ca}})
        if self.service_nets:
            cluster_ip = str(next(self.service_nets[0].hosts()))
            svc = {"metadata": {"name": "kubernetes", "namespace": "default",
                                "labels": {"component": "apiserver", "provider": "kubernetes"}},
                   "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}],
                            "sessionAffinity": "None"}}
            self._ensure(ar.find("", "v1", "services"), "default", svc)
            eps = {"metadata": {"name": "kubernetes", "namespace": "default"},
                   "subsets": [{"addresses": [{"ip": self.advertise_ip}],
                                "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}]}]}
            self._ensure(ar.find("", "v1", "endpoints"), "default", eps)


def main(info: BuildInfo, flags: Flags, stop: threading.Event) -> None:
    errs = validate(flags)
    if errs:
        raise Fatal("[" + ", ".join(errs) + "]" if len(errs) > 1 else errs[0])
    check_files(flags)
    if not flags.get("service-cluster-ip-range"):
        klog.warning("services.go:37", "No CIDR for service cluster IPs specified. Default value which was 10.0.0.0/24 is "
                     "deprecated and will be removed in future releases. Please specify it using "
                     "--service-cluster-ip-range on kube-apiserver.")
        flags.values["service-cluster-ip-range"] = ["10.0.0.0/24"]
    api = ApiServer(info, flags, stop)
    klog.info("options.go:249", "external host was not specified, using " + api.advertise_ip)
    klog.info(SRC, "Version info", version=info.git_version)
    if api.audit_path and api.audit_path != "-":
        os.makedirs(os.path.dirname(os.path.abspath(api.audit_path)), exist_ok=True)
    if api.store.etcd.health():
        klog.info("etcd.go:70", "etcd is healthy", endpoints=",".join(flags.get_list("etcd-servers")))
    else:
        klog.error("etcd.go:75", "Failed to connect to etcd; /readyz will fail until it answers",
                   endpoints=",".join(flags.get_list("etcd-servers")))
    if flags.get("tls-cert-file"):
        cert, key = flags.get("tls-cert-file"), flags.get("tls-private-key-file")
    else:
        cert, key = self_signed_pair(info)
        klog.info("serving.go:374", "Generated self-signed cert", path=cert)
    ctx = server_context(cert, key, flags.get("client-ca-file") or None, require_client_cert=False)
    try:
        server = TLSHTTPServer((api.bind, api.port), ApiHandler, ctx, "server.go:3413")
    except OSError as err:
        raise Fatal(listen_error(api.bind, api.port, err)) from err
    server.api = api
    server.serve_in_thread()
    klog.info("secure_serving.go:213", "Serving securely on " + f"{api.bind}:{api.port}")
    threading.Thread(target=api.bootstrap, daemon=True).start()
    stop.wait()
    api.shutting_down.set()
    delay = 0.0
    if flags.get("shutdown-delay-duration"):
        delay = configs.parse_duration(flags.get("shutdown-delay-duration"), "--shutdown-delay-duration", 0)
    time.sleep(min(delay, 5))
    server.shutdown()
    server.server_close()
    klog.info("secure_serving.go:258", "Stopped listening", address=f"{api.bind}:{api.port}")
