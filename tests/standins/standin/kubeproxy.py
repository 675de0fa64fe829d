"""kube-proxy stand-in: KubeProxyConfiguration, API connection, healthz :10256, metrics :10249, netfilter chains."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

from . import configs, klog
from .common import BuildInfo, Fatal, in_cluster_error, listen_error, node_hostname, split_host_port
from .flags import Flags
from .kubeconfig import ApiClient, ApiError, TransportError, load_checked
from .tlsserver import Handler, TLSHTTPServer

# Chains the real iptables proxier owns (enough for `kbuild reset` to have something real to clean).
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-FORWARD")
JUMPS = (("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals"),
         ("nat", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals"),
         ("nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules"),
         ("filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules"))


def netfilter_allowed() -> bool:
    # Tests on a developer machine must not touch the host's firewall; lab hosts leave this unset.
    return os.environ.get("KBUILD_STANDIN_NO_NETFILTER") != "1"


def _ipt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)


def ensure_iptables() -> None:
    if not netfilter_allowed() or not shutil.which("iptables"):
        klog.warning("proxier.go:246", "iptables is not available; not programming rules")
        return
    for table, chains in (("nat", NAT_CHAINS), ("filter", FILTER_CHAINS)):
        for chain in chains:
            _ipt("-t", table, "-N", chain)  # exists already: fine
    for table, parent, chain, comment in JUMPS:
        rule = ["-m", "comment", "--comment", comment, "-j", chain]
        if _ipt("-t", table, "-C", parent, *rule).returncode != 0:
            res = _ipt("-t", table, "-I", parent, *rule)
            if res.returncode != 0:
                klog.error("proxier.go:826", "Failed to ensure chain jumps", table=table, srcChain=parent,
                           dstChain=chain, err=res.stderr.strip())


def cleanup_iptables() -> None:
    if not netfilter_allowed() or not shutil.which("iptables"):
        return
    for table, parent, chain, comment in JUMPS:
        _ipt("-t", table, "-D", parent, "-m", "comment", "--comment", comment, "-j", chain)
    for table, chains in (("nat", NAT_CHAINS), ("filter", FILTER_CHAINS)):
        for chain in chains:
            _ipt("-t", table, "-F", chain)
            _ipt("-t", table, "-X", chain)


def ensure_nftables() -> None:
    if not netfilter_allowed() or not shutil.which("nft"):
        klog.warning("proxier.go:236", "nft is not available; not programming rules")
        return
    for family in ("ip", "ip6"):
        script = f"add table {family} kube-proxy\nadd chain {family} kube-proxy services\nadd chain {family} kube-proxy nodeports\n"
        res = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
        if res.returncode != 0:
            klog.error("proxier.go:560", "nftables sync failed", family=family, err=res.stderr.strip())


class ProxyState:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.last_sync = 0.0


class HealthzHandler(Handler):
    def do_GET(self) -> None:
        st: ProxyState = self.server.state
        path = self.path.split("?")[0]
        if path in ("/healthz", "/livez"):
            now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            last = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.last_sync)) if st.last_sync else ""
            ok = st.last_sync > 0
            body = {"lastUpdated": last, "currentTime": now, "nodeEligible": True}
            self.send_json(200 if ok else 503, body)
        else:
            self.send_text(404, "404 page not found\n")


class MetricsHandler(Handler):
    def do_GET(self) -> None:
        st: ProxyState = self.server.state
        path = self.path.split("?")[0]
        if path == "/proxyMode":
            self.send_text(200, st.mode)
        elif path == "/metrics":
            self.send_text(200, f"kubeproxy_sync_proxy_rules_last_timestamp_seconds {st.last_sync}\n")
        elif path == "/healthz":
            self.send_text(200, "ok")
        else:
            self.send_text(404, "404 page not found\n")


def main(info: BuildInfo, flags: Flags, stop: threading.Event) -> None:
    cfg: dict = {}
    if flags.get("config"):
        cfg = configs.kube_proxy_config(flags.get("config"))
    mode = cfg.get("mode") or flags.get("proxy-mode") or "iptables"
    configs.check_proxy_mode(mode)
    if flags.get_bool("cleanup"):
        cleanup_iptables()
        return
    cluster_cidr = cfg.get("clusterCIDR") or flags.get("cluster-cidr")
    if cluster_cidr:
        configs.cidr_list(cluster_cidr, "KubeProxyConfiguration.ClusterCIDR")
    kubeconfig = (cfg.get("clientConnection") or {}).get("kubeconfig") or flags.get("kubeconfig")
    if not kubeconfig and not flags.get("master"):
        raise in_cluster_error()
    client = ApiClient(load_checked(kubeconfig, "--kubeconfig"), f"kube-proxy/{info.git_version}")
    name = (cfg.get("hostnameOverride") or flags.get("hostname-override") or node_hostname()).lower()
    if flags.get_bool("init-only"):
        return
    state = ProxyState(mode)
    servers = []
    for key, flag, default, handler in (("healthzBindAddress", "healthz-bind-address", "0.0.0.0:10256", HealthzHandler),
                                        ("metricsBindAddress", "metrics-bind-address", "127.0.0.1:10249", MetricsHandler)):
        addr = cfg.get(key) or flags.get(flag) or default
        host, port = configs.host_port(addr, key) if ":" in addr else split_host_port(addr, 0)
        if port == 0:
            continue
        try:
            srv = TLSHTTPServer((host, port), handler, None, "server.go:3413")
        except OSError as e:
            raise Fatal(listen_error(host, port, e)) from e
        srv.state = state
        srv.serve_in_thread()
        servers.append(srv)
    klog.info("server.go:529", "Version info", version=info.git_version)
    klog.info("server_linux.go:232", "Using " + mode + " Proxier")
    sync_every = configs.parse_duration((cfg.get("iptables") or {}).get("syncPeriod") or flags.get("iptables-sync-period"),
                                        "iptables.syncPeriod", 30)
    while not stop.is_set():
        try:
            if client.get_or_none(f"/api/v1/nodes/{name}") is None:
                klog.warning("node.go:61", "Can't get Node, assuming iptables can use loopback", node=name)
            client.request("GET", "/api/v1/services")
            client.request("GET", "/apis/discovery.k8s.io/v1/endpointslices")
            if mode == "nftables":
                ensure_nftables()
            else:
                ensure_iptables()
            if not state.last_sync:
                klog.info("proxier.go:813", "Syncing " + mode + " rules")
            state.last_sync = time.time()
        except (ApiError, TransportError) as err:
            klog.error("reflector.go:166", "Failed to watch", err=str(err))
        stop.wait(min(sync_every, 30) if state.last_sync else 2)
    for srv in servers:
        srv.shutdown()
