"""Entry point of a built stand-in: pick the component's main and run it with the embedded build info."""

from __future__ import annotations

from . import _embedded
from .common import BuildInfo, run_main


def run() -> None:
    info = BuildInfo(_embedded.COMPONENT, _embedded.VERSION, _embedded.FLAGS, _embedded.SELF_SIGNED_CERT,
                     _embedded.SELF_SIGNED_KEY)
    if info.component == "kube-apiserver":
        from .apiserver import main
    elif info.component == "kubelet":
        from .kubelet import main
    elif info.component == "kube-proxy":
        from .kubeproxy import main
    elif info.component == "kube-controller-manager":
        from .controlplane import controller_manager as main
    elif info.component == "kube-scheduler":
        from .controlplane import scheduler as main
    else:
        raise SystemExit(f"unknown stand-in component {info.component!r}")
    run_main(info, main)
