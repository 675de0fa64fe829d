"""Each component's network side, written once: the ports it holds and how to ask it whether it is healthy.

The phases' gates, the upgrade's readiness gates, `kbuild status` and preflight's port check all read
this table, so a port set in the inventory (cluster.api_port) reaches every one of them. The
apiserver's port is the cluster's setting; the other ports are fixed by kbuild (kbuild.layout).
"""

from __future__ import annotations

from dataclasses import dataclass

from kbuild import layout
from kbuild.inventory import Cluster
from kbuild.pki.certlist import local_api_url, remote_path

# One timeout for a health probe wherever it runs: a gate retries it, status asks once.
CURL = "curl -fsS --max-time 5"


@dataclass(frozen=True)
class HealthCheck:
    component: str
    endpoint: str  # what is asked, e.g. /readyz
    command: str  # a read-only shell test that succeeds when the component answers

    @property
    def name(self) -> str:
        """As gates and status show it: 'kube-apiserver /readyz'."""
        return f"{self.component} {self.endpoint}"


def apiserver_get(cluster: Cluster, path: str) -> str:
    """curl on a control plane against its own apiserver, as a system:masters client, verifying the server."""
    return (f"{CURL} --cacert {remote_path('ca.crt')} --cert {remote_path('apiserver-kubelet-client.crt')} "
            f"--key {remote_path('apiserver-kubelet-client.key')} {local_api_url(cluster)}{path}")


def health_checks(cluster: Cluster, component: str) -> tuple[HealthCheck, ...]:
    """The checks a component passes when healthy, in the order a gate waits for them; () when it has none."""
    # The controllers serve /healthz with a self-signed certificate unless given one, as the real ones do.
    checks = {
        "kube-apiserver": (HealthCheck(component, "/livez", apiserver_get(cluster, "/livez")),
                           HealthCheck(component, "/readyz", apiserver_get(cluster, "/readyz"))),
        "kube-controller-manager": (HealthCheck(
            component, "/healthz", f"{CURL} -k https://127.0.0.1:{layout.CONTROLLER_MANAGER_PORT}/healthz"),),
        "kube-scheduler": (HealthCheck(
            component, "/healthz", f"{CURL} -k https://127.0.0.1:{layout.SCHEDULER_PORT}/healthz"),),
        "containerd": (HealthCheck(component, "answering", f"test -S {layout.CONTAINERD_SOCKET}"),),
        "kubelet": (HealthCheck(
            component, "/healthz", f"{CURL} http://127.0.0.1:{layout.KUBELET_HEALTHZ_PORT}/healthz"),),
        "kube-proxy": (HealthCheck(
            component, "/healthz", f"{CURL} http://127.0.0.1:{layout.KUBE_PROXY_HEALTHZ_PORT}/healthz"),),
    }
    return checks.get(component, ())


def listening_ports(cluster: Cluster) -> dict[str, tuple[int, ...]]:
    """component -> the ports it listens on that another program on the host must not hold."""
    return {
        "etcd": (layout.ETCD_CLIENT_PORT, layout.ETCD_PEER_PORT),
        "kube-apiserver": (cluster.settings.api_port,),
        "kube-controller-manager": (layout.CONTROLLER_MANAGER_PORT,),
        "kube-scheduler": (layout.SCHEDULER_PORT,),
        "kubelet": (layout.KUBELET_PORT,),
        "kube-proxy": (layout.KUBE_PROXY_HEALTHZ_PORT,),
    }
