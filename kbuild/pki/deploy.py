"""What PKI files each host gets, where, with which mode, and which services must restart when one changes.

The plays call host_files(cluster, host); it only reads the state directory (generation is
`ensure`'s job) and says clearly when something has not been generated yet. One table below
decides the files per role; a path listed for several roles of one host is sent once, with the
union of the services that read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbuild import layout
from kbuild.inventory import Cluster, Host
from kbuild.pki.certlist import KUBECONFIGS, spec
from kbuild.pki.errors import PKIError
from kbuild.pki.store import StateFiles, read_bytes
from kbuild.state import PUBLIC_MODE, SECRET_MODE

ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KUBELET, KUBE_PROXY = (
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
SERVICE_ORDER = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KUBELET, KUBE_PROXY)


@dataclass(frozen=True)
class PKIFile:
    """One file to put on a host: the engine uploads it (atomically, with mode) and restarts `services` on change."""

    path: PurePosixPath
    content: bytes
    mode: int  # 0o600 for keys, kubeconfigs and the encryption config; 0o644 for certificates
    secret: bool  # redact in diffs and logs
    services: tuple[str, ...]  # systemd units that read the file


Source = Callable[[StateFiles, str], Path]


def _cert(name: str) -> Source:
    return lambda files, host: files.cert(spec(name).file.format(host=host))


def _key(name: str) -> Source:
    return lambda files, host: files.key(spec(name).file.format(host=host))


def _kubeconfig(name: str) -> Source:
    entry = next(k for k in KUBECONFIGS if k.name == name)
    return lambda files, host: files.kubeconfig(entry.file.format(host=host))


def _sa_key(files: StateFiles, host: str) -> Path:
    return files.sa_key


def _sa_pub(files: StateFiles, host: str) -> Path:
    return files.sa_pub


def _encryption(files: StateFiles, host: str) -> Path:
    return files.encryption_config


@dataclass(frozen=True)
class _Entry:
    role: str  # etcd | control-plane | kubelet
    path: PurePosixPath
    source: Source
    secret: bool
    services: tuple[str, ...]
    when: Callable[[Cluster], bool] | None = None


_ROLES: dict[str, Callable[[Host], bool]] = {
    "etcd": lambda h: h.is_etcd,
    "control-plane": lambda h: h.is_control_plane,
    "kubelet": lambda host: host.runs_kubelet,
}

FILES: tuple[_Entry, ...] = (
    # etcd members: their CA, serving and peer pairs, and a client for health checks (etcdctl).
    _Entry("etcd", layout.ETCD_CA_CERT, _cert("etcd-ca"), False, (ETCD,)),
    _Entry("etcd", layout.ETCD_SERVER_CERT, _cert("etcd-server"), False, (ETCD,)),
    _Entry("etcd", layout.ETCD_SERVER_KEY, _key("etcd-server"), True, (ETCD,)),
    _Entry("etcd", layout.ETCD_PEER_CERT, _cert("etcd-peer"), False, (ETCD,)),
    _Entry("etcd", layout.ETCD_PEER_KEY, _key("etcd-peer"), True, (ETCD,)),
    _Entry("etcd", layout.ETCD_HEALTHCHECK_CLIENT_CERT, _cert("etcd-healthcheck-client"), False, ()),
    _Entry("etcd", layout.ETCD_HEALTHCHECK_CLIENT_KEY, _key("etcd-healthcheck-client"), True, ()),
    # control planes. The cluster CA key is here because kube-controller-manager signs kubelet
    # and other CSRs with it; the etcd and front-proxy CA keys never leave the controller.
    _Entry("control-plane", layout.CA_CERT, _cert("ca"), False, (APISERVER, CONTROLLER_MANAGER)),
    _Entry("control-plane", layout.CA_KEY, _key("ca"), True, (CONTROLLER_MANAGER,)),
    _Entry("control-plane", layout.APISERVER_CERT, _cert("apiserver"), False, (APISERVER,)),
    _Entry("control-plane", layout.APISERVER_KEY, _key("apiserver"), True, (APISERVER,)),
    _Entry("control-plane", layout.APISERVER_KUBELET_CLIENT_CERT, _cert("apiserver-kubelet-client"), False,
           (APISERVER,)),
    _Entry("control-plane", layout.APISERVER_KUBELET_CLIENT_KEY, _key("apiserver-kubelet-client"), True,
           (APISERVER,)),
    _Entry("control-plane", layout.APISERVER_ETCD_CLIENT_CERT, _cert("apiserver-etcd-client"), False,
           (APISERVER,)),
    _Entry("control-plane", layout.APISERVER_ETCD_CLIENT_KEY, _key("apiserver-etcd-client"), True, (APISERVER,)),
    _Entry("control-plane", layout.ETCD_CA_CERT, _cert("etcd-ca"), False, (APISERVER,)),
    # kube-controller-manager also reads the front-proxy CA (--requestheader-client-ca-file).
    _Entry("control-plane", layout.FRONT_PROXY_CA_CERT, _cert("front-proxy-ca"), False,
           (APISERVER, CONTROLLER_MANAGER)),
    _Entry("control-plane", layout.FRONT_PROXY_CLIENT_CERT, _cert("front-proxy-client"), False, (APISERVER,)),
    _Entry("control-plane", layout.FRONT_PROXY_CLIENT_KEY, _key("front-proxy-client"), True, (APISERVER,)),
    # sa.key: the apiserver signs tokens with it, the controller-manager's token controller too.
    _Entry("control-plane", layout.SA_KEY, _sa_key, True, (APISERVER, CONTROLLER_MANAGER)),
    _Entry("control-plane", layout.SA_PUB, _sa_pub, False, (APISERVER,)),
    _Entry("control-plane", layout.ENCRYPTION_CONFIG, _encryption, True, (APISERVER,),
           when=lambda c: c.settings.encryption_at_rest),
    _Entry("control-plane", layout.CONTROLLER_MANAGER_KUBECONFIG, _kubeconfig("controller-manager.conf"), True,
           (CONTROLLER_MANAGER,)),
    _Entry("control-plane", layout.SCHEDULER_KUBECONFIG, _kubeconfig("scheduler.conf"), True, (SCHEDULER,)),
    _Entry("control-plane", layout.ADMIN_KUBECONFIG, _kubeconfig("admin.conf"), True, ()),
    # nodes: kubelet verifies client certificates (the apiserver's) against the cluster CA.
    _Entry("kubelet", layout.CA_CERT, _cert("ca"), False, (KUBELET,)),
    _Entry("kubelet", layout.KUBELET_KUBECONFIG, _kubeconfig("kubelet.conf"), True, (KUBELET,)),
    _Entry("kubelet", layout.KUBELET_SERVING_CERT, _cert("kubelet-serving"), False, (KUBELET,)),
    _Entry("kubelet", layout.KUBELET_SERVING_KEY, _key("kubelet-serving"), True, (KUBELET,)),
    _Entry("kubelet", layout.KUBE_PROXY_KUBECONFIG, _kubeconfig("kube-proxy.conf"), True, (KUBE_PROXY,)),
)


def host_files(cluster: Cluster, host: Host) -> list[PKIFile]:
    """The PKI files `host` needs for its roles, read from the state directory (never generated here)."""
    files = StateFiles(cluster.state_dir)
    chosen: dict[PurePosixPath, tuple[Path, bool, set[str]]] = {}
    for entry in FILES:
        if not _ROLES[entry.role](host) or (entry.when and not entry.when(cluster)):
            continue
        source = entry.source(files, host.name)
        if entry.path in chosen:
            first, secret, services = chosen[entry.path]
            assert first == source, f"{entry.path} has two sources"  # a table error, not a user error
            services.update(entry.services)
        else:
            chosen[entry.path] = (source, entry.secret, set(entry.services))

    result: list[PKIFile] = []
    missing: list[Path] = []
    for path, (source, secret, services) in chosen.items():
        content = read_bytes(source)
        if content is None:
            missing.append(source)
            continue
        result.append(PKIFile(path, content, SECRET_MODE if secret else PUBLIC_MODE, secret,
                              tuple(s for s in SERVICE_ORDER if s in services)))
    if missing:
        shown = ", ".join(str(p) for p in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise PKIError(f"{host.name}: the PKI is not generated for this host yet (missing {shown})",
                       hint=f"run: kbuild certs generate -i {cluster.inventory_path}")
    return result
