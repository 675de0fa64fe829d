"""The control-plane phase: kube-apiserver, then controller-manager and scheduler, gated on their health."""

from __future__ import annotations

from kbuild import layout
from kbuild.engine.resources import Directory, Service
from kbuild.engine.runner import Gate, Plan
from kbuild.engine.shell import command
from kbuild.inventory import Cluster
from kbuild.plays.desired import HostInputs, artifact_resources, parents_of, pki_resources, rendered_resources

APISERVER_TIMEOUT = 180.0


def apiserver_get(path: str) -> str:
    """curl on a control plane against its own apiserver, as a system:masters client, verifying the server."""
    return (f"curl -fsS --max-time 5 --cacert {layout.CA_CERT} --cert {layout.APISERVER_KUBELET_CLIENT_CERT} "
            f"--key {layout.APISERVER_KUBELET_CLIENT_KEY} https://127.0.0.1:6443{path}")


def kubectl(*args: str) -> str:
    """kubectl as cluster admin; each of `args` is one argument, quoted here."""
    return command(layout.binary_path("kubectl"), f"--kubeconfig={layout.ADMIN_KUBECONFIG}", *args)


def gates() -> list[Gate]:
    # The controllers serve /healthz with a self-signed certificate unless given one, as the real ones do.
    return [
        Gate("kube-apiserver /livez", command=apiserver_get("/livez"), timeout=APISERVER_TIMEOUT),
        Gate("kube-apiserver /readyz", command=apiserver_get("/readyz"), timeout=APISERVER_TIMEOUT),
        Gate("kube-controller-manager /healthz", timeout=APISERVER_TIMEOUT,
             command=f"curl -fsSk --max-time 5 https://127.0.0.1:{layout.CONTROLLER_MANAGER_PORT}/healthz"),
        Gate("kube-scheduler /healthz", timeout=APISERVER_TIMEOUT,
             command=f"curl -fsSk --max-time 5 https://127.0.0.1:{layout.SCHEDULER_PORT}/healthz"),
    ]


def plan(cluster: Cluster, inputs: HostInputs) -> Plan:
    files = (artifact_resources(inputs, "control-plane") + pki_resources(inputs, "control-plane")
             + rendered_resources(inputs, "control-plane"))
    log_dir = Directory(str(layout.AUDIT_LOG.parent), mode=0o700)
    services = [Service("kube-apiserver"), Service("kube-controller-manager"), Service("kube-scheduler")]
    return Plan([*parents_of(files), log_dir, *files, *services], gates=gates())
