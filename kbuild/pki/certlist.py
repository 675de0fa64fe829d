"""The certificate table: every CA and certificate the cluster needs, declared as data (after kubeadm's certlist).

One table drives generation, reuse, renewal, `kbuild certs check` and the help text. CAs come
first, and every certificate names its signing CA, which must appear earlier (a unit test says so).
Entries with `hosts` are issued once per selected host ("etcd-server/m1"); `{host}` in the file
and common name is replaced by the host's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kbuild.inventory import Cluster, Host
from kbuild.pki.sans import AltNames, apiserver_sans, etcd_sans, kubelet_sans

SanFunc = Callable[[Cluster, "Host | None"], AltNames]
HostsFunc = Callable[[Cluster], "list[Host]"]

# Key usage names are cryptography's KeyUsage fields. key_encipherment is only meaningful for RSA
# keys (RSA key transport); RFC 5480 forbids it for ECDSA keys, so it is dropped for those.
CA_USAGES = ("digital_signature", "key_cert_sign", "crl_sign")
LEAF_USAGES = ("digital_signature", "key_encipherment")
SERVER, CLIENT = "server", "client"

MASTERS_GROUP = "system:masters"


def _kubelet_hosts(cluster: Cluster) -> list[Host]:
    return cluster.kubelet_hosts


def _etcd_hosts(cluster: Cluster) -> list[Host]:
    return cluster.etcd_hosts


@dataclass(frozen=True)
class CertSpec:
    """One row of the table: a CA (ca is None) or a certificate signed by the CA named `ca`."""

    name: str
    file: str  # under <state>/pki/, without .crt/.key
    ca: str | None
    cn: str
    description: str
    org: tuple[str, ...] = ()
    key_usage: tuple[str, ...] = LEAF_USAGES
    ext_key_usage: tuple[str, ...] = ()
    sans: SanFunc | None = None
    hosts: HostsFunc | None = None  # set: one certificate per host it returns

    @property
    def is_ca(self) -> bool:
        return self.ca is None


CERTS: tuple[CertSpec, ...] = (
    # -- certificate authorities ------------------------------------------------------------------
    CertSpec("ca", "ca", None, "kubernetes", "cluster CA: the API server, kubelets and every client identity",
             key_usage=CA_USAGES),
    CertSpec("etcd-ca", "etcd/ca", None, "etcd-ca",
             "etcd CA: kept apart so cluster identities cannot talk to etcd or join it as peers",
             key_usage=CA_USAGES),
    CertSpec("front-proxy-ca", "front-proxy-ca", None, "front-proxy-ca",
             "front-proxy CA: the aggregation layer's request-header authentication", key_usage=CA_USAGES),
    # -- control plane ---------------------------------------------------------------------------
    CertSpec("apiserver", "apiserver", "ca", "kube-apiserver",
             "serving certificate of kube-apiserver, one shared by all control planes",
             ext_key_usage=(SERVER,), sans=apiserver_sans),
    # The apiserver calls kubelets (logs, exec, port-forward); system:masters is authorized by
    # every kubelet's webhook without an RBAC binding kbuild would have to create first.
    CertSpec("apiserver-kubelet-client", "apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client",
             "client certificate of kube-apiserver towards kubelets", org=(MASTERS_GROUP,),
             ext_key_usage=(CLIENT,)),
    # etcd authenticates by CN only (and only with etcd auth on); no organization needed.
    CertSpec("apiserver-etcd-client", "apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client",
             "client certificate of kube-apiserver towards etcd", ext_key_usage=(CLIENT,)),
    CertSpec("front-proxy-client", "front-proxy-client", "front-proxy-ca", "front-proxy-client",
             "client certificate of kube-apiserver towards aggregated API servers", ext_key_usage=(CLIENT,)),
    # -- etcd --------------------------------------------------------------------------------------
    # etcd (since 3.2) also uses its server certificate as a client (gateway, grpc-proxy,
    # self-connections), so server certificates carry clientAuth too, as kubeadm's do.
    CertSpec("etcd-server", "hosts/{host}/etcd-server", "etcd-ca", "{host}", "etcd serving certificate",
             ext_key_usage=(SERVER, CLIENT), sans=etcd_sans, hosts=_etcd_hosts),
    CertSpec("etcd-peer", "hosts/{host}/etcd-peer", "etcd-ca", "{host}", "etcd peer certificate",
             ext_key_usage=(SERVER, CLIENT), sans=etcd_sans, hosts=_etcd_hosts),
    CertSpec("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd-ca", "kube-etcd-healthcheck-client",
             "client certificate for etcd health checks (etcdctl)", ext_key_usage=(CLIENT,)),
    # -- kubeconfig identities -------------------------------------------------------------------
    # A hard-way cluster has one administrator credential: CN=admin in system:masters works before
    # any RBAC object exists. (kubeadm >= 1.29 splits it into admin.conf in kubeadm:cluster-admins,
    # bound by RBAC at init, plus a break-glass super-admin.conf; kbuild has no such init step.)
    CertSpec("admin", "admin", "ca", "admin", "client certificate of admin.conf (cluster administrator)",
             org=(MASTERS_GROUP,), ext_key_usage=(CLIENT,)),
    CertSpec("controller-manager", "controller-manager", "ca", "system:kube-controller-manager",
             "client certificate of kube-controller-manager", ext_key_usage=(CLIENT,)),
    CertSpec("scheduler", "scheduler", "ca", "system:kube-scheduler",
             "client certificate of kube-scheduler", ext_key_usage=(CLIENT,)),
    CertSpec("kube-proxy", "kube-proxy", "ca", "system:kube-proxy", "client certificate of kube-proxy",
             org=("system:node-proxier",), ext_key_usage=(CLIENT,)),
    # -- nodes -------------------------------------------------------------------------------------
    CertSpec("kubelet-client", "hosts/{host}/kubelet-client", "ca", "system:node:{host}",
             "client certificate of a kubelet (Node authorizer identity)", org=("system:nodes",),
             ext_key_usage=(CLIENT,), hosts=_kubelet_hosts),
    CertSpec("kubelet-serving", "hosts/{host}/kubelet", "ca", "system:node:{host}",
             "serving certificate of a kubelet", org=("system:nodes",), ext_key_usage=(SERVER,),
             sans=kubelet_sans, hosts=_kubelet_hosts),
)


def spec(name: str) -> CertSpec:
    for entry in CERTS:
        if entry.name == name:
            return entry
    raise KeyError(name)


@dataclass(frozen=True)
class CertInstance:
    """A table row applied to the cluster (and a host, for per-host rows): what one certificate must be."""

    spec: CertSpec
    host: str | None
    cn: str
    file: str
    sans: AltNames

    @property
    def name(self) -> str:
        return f"{self.spec.name}/{self.host}" if self.host else self.spec.name

    @property
    def ca(self) -> str | None:
        return self.spec.ca


def _targets(hosts: HostsFunc | None, cluster: Cluster) -> list[Host | None]:
    """The hosts a per-host table row is issued for, or [None] for a cluster-wide row."""
    return list(hosts(cluster)) if hosts else [None]


def instances(cluster: Cluster) -> list[CertInstance]:
    """Every certificate of the cluster, in table order (CAs first)."""
    found: list[CertInstance] = []
    for entry in CERTS:
        for host in _targets(entry.hosts, cluster):
            name = host.name if host else ""
            found.append(CertInstance(
                spec=entry,
                host=host.name if host else None,
                cn=entry.cn.format(host=name),
                file=entry.file.format(host=name),
                sans=entry.sans(cluster, host) if entry.sans else AltNames(),
            ))
    return found


# -- kubeconfigs -----------------------------------------------------------------------------------


def local_api_url(cluster: Cluster) -> str:
    """Components on a master talk to their own apiserver, so they keep working if the endpoint is down."""
    return f"https://127.0.0.1:{cluster.settings.api_port}"


def endpoint_api_url(cluster: Cluster) -> str:
    return cluster.api_server_url


@dataclass(frozen=True)
class KubeconfigSpec:
    name: str
    file: str  # relative to the state directory
    cert: str  # the client certificate's table name
    server: Callable[[Cluster], str]
    description: str
    hosts: HostsFunc | None = None


KUBECONFIGS: tuple[KubeconfigSpec, ...] = (
    KubeconfigSpec("admin.conf", "admin.conf", "admin", endpoint_api_url, "cluster administrator"),
    KubeconfigSpec("controller-manager.conf", "kubeconfigs/controller-manager.conf", "controller-manager",
                   local_api_url, "kube-controller-manager"),
    KubeconfigSpec("scheduler.conf", "kubeconfigs/scheduler.conf", "scheduler", local_api_url, "kube-scheduler"),
    KubeconfigSpec("kube-proxy.conf", "kubeconfigs/kube-proxy.conf", "kube-proxy", endpoint_api_url,
                   "kube-proxy (shared by every node)"),
    KubeconfigSpec("kubelet.conf", "kubeconfigs/kubelet-{host}.conf", "kubelet-client", endpoint_api_url,
                   "kubelet", hosts=_kubelet_hosts),
)


@dataclass(frozen=True)
class KubeconfigInstance:
    spec: KubeconfigSpec
    host: str | None
    file: str
    cert: str  # instance name of the client certificate
    server: str

    @property
    def name(self) -> str:
        return f"{self.spec.name}/{self.host}" if self.host else self.spec.name


def kubeconfig_instances(cluster: Cluster) -> list[KubeconfigInstance]:
    found: list[KubeconfigInstance] = []
    for entry in KUBECONFIGS:
        for host in _targets(entry.hosts, cluster):
            name = host.name if host else ""
            found.append(KubeconfigInstance(
                spec=entry,
                host=host.name if host else None,
                file=entry.file.format(host=name),
                cert=f"{entry.cert}/{name}" if host else entry.cert,
                server=entry.server(cluster),
            ))
    return found
