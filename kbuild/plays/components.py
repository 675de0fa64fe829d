"""Each component's network side as commands: the component table's ports and health checks (kbuild.components)
made into shell tests for a cluster.

The phases' gates, the upgrade's readiness gates, `kbuild status` and preflight's port check all read
these, so a port set in the inventory (cluster.api_port) reaches every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kbuild import components as table
from kbuild.components import Probe
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


def probe_command(cluster: Cluster, probe: Probe) -> str:
    """The shell test of one of the table's health checks."""
    if probe.kind == "apiserver":
        return apiserver_get(cluster, probe.endpoint)
    if probe.kind == "socket":
        return f"test -S {probe.socket}"
    assert probe.port is not None, probe
    port = probe.port.on(cluster.settings)
    if probe.kind == "https":
        # The controllers serve /healthz with a self-signed certificate unless given one, as the real ones do.
        return f"{CURL} -k https://127.0.0.1:{port}{probe.endpoint}"
    return f"{CURL} http://127.0.0.1:{port}{probe.endpoint}"


def health_checks(cluster: Cluster, component: str) -> tuple[HealthCheck, ...]:
    """The checks a component passes when healthy, in the order a gate waits for them; () when it has none."""
    row = table.BY_NAME.get(component)  # kbuild's own units (the pod routes) are no component
    return tuple(HealthCheck(component, probe.endpoint, probe_command(cluster, probe))
                 for probe in (row.health if row else ()))


def listening_ports(cluster: Cluster) -> dict[str, tuple[int, ...]]:
    """component -> the ports it listens on that another program on the host must not hold."""
    return {c.name: c.listening_ports(cluster.settings) for c in table.COMPONENTS if c.ports}
