"""The control-plane phase: kube-apiserver, then controller-manager and scheduler, gated on their health."""

from __future__ import annotations

from kbuild import components as table
from kbuild import layout
from kbuild.engine.resources import Directory, Service
from kbuild.engine.runner import Gate, Plan
from kbuild.engine.shell import command
from kbuild.inventory import Cluster
from kbuild.pki.certlist import remote_path
from kbuild.plays import pod_network
from kbuild.plays.components import health_checks
from kbuild.plays.desired import HostInputs, artifact_resources, parents_of, pki_resources, rendered_resources

APISERVER_TIMEOUT = 180.0
SERVICES = table.role_services(table.CONTROL_PLANE)  # in start order


def kubectl(*args: str) -> str:
    """kubectl as cluster admin; each of `args` is one argument, quoted here."""
    return command(layout.binary_path("kubectl"), f"--kubeconfig={remote_path('admin.conf')}", *args)


def gates(cluster: Cluster, components: tuple[str, ...] = SERVICES) -> list[Gate]:
    """The health gates of these control-plane components (all of them by default), in start order."""
    return [Gate(check.name, command=check.command, timeout=APISERVER_TIMEOUT, unit=component)
            for component in components for check in health_checks(cluster, component)]


def plan(cluster: Cluster, inputs: HostInputs) -> Plan:
    files = (artifact_resources(inputs, "control-plane") + pki_resources(inputs, "control-plane")
             + rendered_resources(inputs, "control-plane"))
    log_dir = Directory(str(layout.AUDIT_LOG.parent), mode=0o700)
    services = [Service(name) for name in SERVICES]
    # A control plane without a kubelet still needs the pod routes (webhooks, aggregated APIs); on a node, the
    # node phase sets them.
    routes = pod_network.route_resources(cluster, inputs.host, "control-plane")
    return Plan([*parents_of(files), log_dir, *files, *services, *routes], gates=gates(cluster))
