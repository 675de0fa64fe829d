"""The PKI table: every CA, certificate, key pair, kubeconfig and the encryption config, declared as data.

After kubeadm's certlist. One table (PKI_TABLE) drives generation, reuse, renewal, `kbuild certs
check`, the help text and what each host gets: a row names its file in the state directory, its
path on the hosts, the roles that get it and the services that read it there (restarted when it
changes). Keys, kubeconfigs (they embed a key) and the encryption config are secret (0600),
certificates and public keys are not (0644). CAs come first, and every certificate names its
signing CA, which must appear earlier (a unit test says so). Rows with `hosts` are issued once per
selected host ("etcd-server/m1"); `{host}` in the file and common name is replaced by its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from pathlib import PurePosixPath

from kbuild import layout
from kbuild.inventory import Cluster, Host
from kbuild.pki.sans import AltNames, apiserver_sans, etcd_sans, kubelet_sans
from kbuild.state import PUBLIC_MODE, SECRET_MODE

SanFunc = Callable[[Cluster, "Host | None"], AltNames]
HostsFunc = Callable[[Cluster], "list[Host]"]

# Key usage names are cryptography's KeyUsage fields. key_encipherment is only meaningful for RSA
# keys (RSA key transport); RFC 5480 forbids it for ECDSA keys, so it is dropped for those.
CA_USAGES = ("digital_signature", "key_cert_sign", "crl_sign")
LEAF_USAGES = ("digital_signature", "key_encipherment")
SERVER, CLIENT = "server", "client"

MASTERS_GROUP = "system:masters"


# -- where a row's files go and who reads them ----------------------------------------------------------

# The services (systemd units) that read PKI files; a changed file restarts exactly its readers.
ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KUBELET, KUBE_PROXY = (
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")

# The host roles a file can be placed on.
HOST_ROLES: dict[str, Callable[[Host], bool]] = {
    "etcd": lambda host: host.is_etcd,
    "control-plane": lambda host: host.is_control_plane,
    "kubelet": lambda host: host.runs_kubelet,
}

# role -> the services that read the file on hosts of that role; a role with () gets the file, read by none.
Readers = tuple[tuple[str, tuple[str, ...]], ...]

# Suffixes of the two files of a pair, in the state directory and on the hosts alike.
CERT_SUFFIX, KEY_SUFFIX, PUB_SUFFIX = ".crt", ".key", ".pub"
STATE_PKI_DIR = "pki"  # under the state directory: keys, certificates, the encryption config


def state_file(file: str, suffix: str) -> str:
    """A pair's file in the state directory: state_file("etcd/ca", ".crt") is pki/etcd/ca.crt."""
    return f"{STATE_PKI_DIR}/{file}{suffix}"


def readers(*, etcd: tuple[str, ...] | None = None, control_plane: tuple[str, ...] | None = None,
            kubelet: tuple[str, ...] | None = None) -> Readers:
    """Who reads a file, by role: readers(control_plane=(APISERVER,), kubelet=(KUBELET,))."""
    given = {"etcd": etcd, "control-plane": control_plane, "kubelet": kubelet}
    return tuple((role, services) for role, services in given.items() if services is not None)


def _kubelet_hosts(cluster: Cluster) -> list[Host]:
    return cluster.kubelet_hosts


def _etcd_hosts(cluster: Cluster) -> list[Host]:
    return cluster.etcd_hosts


@dataclass(frozen=True)
class HostFile:
    """One file of the table as hosts get it: where it is in the state directory and where it goes."""

    id: str  # the row's name and the file's suffix: "ca.crt", "sa.pub", "admin.conf", "encryption-config"
    local: str  # relative to the state directory; {host} is the receiving host's name
    remote: PurePosixPath
    secret: bool  # a key, or a file holding one: 0600 on hosts, redacted in diffs and logs
    readers: Readers
    when: Callable[[Cluster], bool] | None = None  # placed only on clusters where this holds

    @property
    def mode(self) -> int:
        return SECRET_MODE if self.secret else PUBLIC_MODE

    def wanted(self, cluster: Cluster, host: Host) -> bool:
        return any(HOST_ROLES[role](host) for role, _ in self.readers) and (self.when is None or self.when(cluster))

    def services_on(self, host: Host) -> tuple[str, ...]:
        """The services that read this file on `host` (the union over its roles), in table order."""
        return tuple(dict.fromkeys(s for role, services in self.readers if HOST_ROLES[role](host) for s in services))

    @property
    def template_name(self) -> str:
        """How templates name the remote path (`paths.etcd_ca_cert`, `paths.scheduler_kubeconfig`)."""
        name = self.id
        for suffix, word in ((CERT_SUFFIX, "_cert"), (KEY_SUFFIX, "_key"), (PUB_SUFFIX, "_pub"),
                             (".conf", "_kubeconfig")):
            name = name.removesuffix(suffix) + word if name.endswith(suffix) else name
        return name.replace("-", "_")


def _pair(name: str, file: str, remote: PurePosixPath | None, public: tuple[str, Readers],
          private: Readers) -> tuple[HostFile, ...]:
    """The placed files of a key pair: `public` is (its suffix, readers), the key is secret."""
    if remote is None:
        return ()
    suffix, public_readers = public
    found = [(suffix, public_readers, False), (KEY_SUFFIX, private, True)]
    return tuple(HostFile(f"{name}{sfx}", state_file(file, sfx), remote.parent / f"{remote.name}{sfx}",
                          secret, placed)
                 for sfx, placed, secret in found if placed)


@dataclass(frozen=True)
class CertSpec:
    """A row: a CA (ca is None) or a certificate signed by the CA named `ca`, and where its pair goes."""

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
    remote: PurePosixPath | None = None  # on the hosts, without .crt/.key; None: stays on the controller
    cert_to: Readers = ()
    key_to: Readers = ()  # () for every CA key but the cluster CA's (kube-controller-manager signs with it)

    @property
    def is_ca(self) -> bool:
        return self.ca is None

    def host_files(self) -> tuple[HostFile, ...]:
        return _pair(self.name, self.file, self.remote, (CERT_SUFFIX, self.cert_to), self.key_to)


@dataclass(frozen=True)
class KeyPairSpec:
    """A row: a key pair that is not a certificate (the service-account token signer, sa.key and sa.pub)."""

    kind: ClassVar[str] = "key-pair"
    name: str
    file: str  # under <state>/pki/, without .key/.pub
    description: str
    remote: PurePosixPath
    pub_to: Readers
    key_to: Readers

    @property
    def key_file(self) -> str:
        return state_file(self.file, KEY_SUFFIX)

    @property
    def pub_file(self) -> str:
        return state_file(self.file, PUB_SUFFIX)

    def host_files(self) -> tuple[HostFile, ...]:
        return _pair(self.name, self.file, self.remote, (PUB_SUFFIX, self.pub_to), self.key_to)


@dataclass(frozen=True)
class EncryptionSpec:
    """A row: the encryption-at-rest configuration, a secret made once (kbuild.pki.encryption)."""

    kind: ClassVar[str] = "encryption-config"
    name: str
    file: str  # relative to the state directory
    description: str
    remote: PurePosixPath
    to: Readers
    when: Callable[[Cluster], bool]

    def host_files(self) -> tuple[HostFile, ...]:
        return (HostFile(self.name, self.file, self.remote, True, self.to, self.when),)


# Where the rows below put their files on the hosts.
_PKI, _ETCD_PKI, _K8S = layout.PKI_DIR, layout.ETCD_PKI_DIR, layout.K8S_DIR

CERTS: tuple[CertSpec, ...] = (
    # -- certificate authorities ------------------------------------------------------------------
    # The cluster CA key goes to control planes: kube-controller-manager signs kubelet and other CSRs with it.
    # kubelets verify client certificates (the apiserver's) against the cluster CA.
    CertSpec("ca", "ca", None, "kubernetes", "cluster CA: the API server, kubelets and every client identity",
             key_usage=CA_USAGES, remote=_PKI / "ca",
             cert_to=readers(control_plane=(APISERVER, CONTROLLER_MANAGER), kubelet=(KUBELET,)),
             key_to=readers(control_plane=(CONTROLLER_MANAGER,))),
    CertSpec("etcd-ca", "etcd/ca", None, "etcd-ca",
             "etcd CA: kept apart so cluster identities cannot talk to etcd or join it as peers",
             key_usage=CA_USAGES, remote=_ETCD_PKI / "ca",
             cert_to=readers(etcd=(ETCD,), control_plane=(APISERVER,))),
    CertSpec("front-proxy-ca", "front-proxy-ca", None, "front-proxy-ca",
             "front-proxy CA: the aggregation layer's request-header authentication", key_usage=CA_USAGES,
             # kube-controller-manager reads it too (--requestheader-client-ca-file).
             remote=_PKI / "front-proxy-ca", cert_to=readers(control_plane=(APISERVER, CONTROLLER_MANAGER))),
    # -- control plane ---------------------------------------------------------------------------
    CertSpec("apiserver", "apiserver", "ca", "kube-apiserver",
             "serving certificate of kube-apiserver, one shared by all control planes",
             ext_key_usage=(SERVER,), sans=apiserver_sans,
             remote=_PKI / "apiserver", cert_to=readers(control_plane=(APISERVER,)),
             key_to=readers(control_plane=(APISERVER,))),
    # The apiserver calls kubelets (logs, exec, port-forward); system:masters is authorized by
    # every kubelet's webhook without an RBAC binding kbuild would have to create first.
    CertSpec("apiserver-kubelet-client", "apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client",
             "client certificate of kube-apiserver towards kubelets", org=(MASTERS_GROUP,),
             ext_key_usage=(CLIENT,), remote=_PKI / "apiserver-kubelet-client",
             cert_to=readers(control_plane=(APISERVER,)), key_to=readers(control_plane=(APISERVER,))),
    # etcd authenticates by CN only (and only with etcd auth on); no organization needed.
    CertSpec("apiserver-etcd-client", "apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client",
             "client certificate of kube-apiserver towards etcd", ext_key_usage=(CLIENT,),
             remote=_PKI / "apiserver-etcd-client", cert_to=readers(control_plane=(APISERVER,)),
             key_to=readers(control_plane=(APISERVER,))),
    CertSpec("front-proxy-client", "front-proxy-client", "front-proxy-ca", "front-proxy-client",
             "client certificate of kube-apiserver towards aggregated API servers", ext_key_usage=(CLIENT,),
             remote=_PKI / "front-proxy-client", cert_to=readers(control_plane=(APISERVER,)),
             key_to=readers(control_plane=(APISERVER,))),
    # -- etcd --------------------------------------------------------------------------------------
    # etcd (since 3.2) also uses its server certificate as a client (gateway, grpc-proxy,
    # self-connections), so server certificates carry clientAuth too, as kubeadm's do.
    CertSpec("etcd-server", "hosts/{host}/etcd-server", "etcd-ca", "{host}", "etcd serving certificate",
             ext_key_usage=(SERVER, CLIENT), sans=etcd_sans, hosts=_etcd_hosts,
             remote=_ETCD_PKI / "server", cert_to=readers(etcd=(ETCD,)), key_to=readers(etcd=(ETCD,))),
    CertSpec("etcd-peer", "hosts/{host}/etcd-peer", "etcd-ca", "{host}", "etcd peer certificate",
             ext_key_usage=(SERVER, CLIENT), sans=etcd_sans, hosts=_etcd_hosts,
             remote=_ETCD_PKI / "peer", cert_to=readers(etcd=(ETCD,)), key_to=readers(etcd=(ETCD,))),
    # Read by no service: etcdctl and the health probes use it on the etcd members.
    CertSpec("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd-ca", "kube-etcd-healthcheck-client",
             "client certificate for etcd health checks (etcdctl)", ext_key_usage=(CLIENT,),
             remote=_ETCD_PKI / "healthcheck-client", cert_to=readers(etcd=()), key_to=readers(etcd=())),
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
             sans=kubelet_sans, hosts=_kubelet_hosts,
             remote=layout.KUBELET_PKI_DIR / "kubelet", cert_to=readers(kubelet=(KUBELET,)),
             key_to=readers(kubelet=(KUBELET,))),
)

SERVICE_ACCOUNT = KeyPairSpec(
    "sa", "sa", "service-account token signer (sa.key signs, sa.pub verifies); like a CA, never replaced",
    remote=_PKI / "sa",
    # The apiserver signs tokens with sa.key (and verifies with sa.pub), the controller-manager's token
    # controller signs with it too.
    pub_to=readers(control_plane=(APISERVER,)), key_to=readers(control_plane=(APISERVER, CONTROLLER_MANAGER)))


def _encryption_at_rest(cluster: Cluster) -> bool:
    return cluster.settings.encryption_at_rest


ENCRYPTION_CONFIG = EncryptionSpec(
    "encryption-config", f"{STATE_PKI_DIR}/encryption-config.yaml",
    "kube-apiserver's encryption-at-rest key for Secrets (cluster.encryption_at_rest)",
    remote=_K8S / "encryption-config.yaml", to=readers(control_plane=(APISERVER,)), when=_encryption_at_rest)


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
    """A row: a kubeconfig embedding the CA and a client certificate of the table (secret: it holds the key)."""

    name: str
    file: str  # relative to the state directory
    cert: str  # the client certificate's table name
    server: Callable[[Cluster], str]
    description: str
    hosts: HostsFunc | None = None
    remote: PurePosixPath | None = None  # on the hosts; None: stays on the controller
    to: Readers = ()

    def host_files(self) -> tuple[HostFile, ...]:
        return (HostFile(self.name, self.file, self.remote, True, self.to),) if self.remote else ()


KUBECONFIGS: tuple[KubeconfigSpec, ...] = (
    # On control planes too, for kubectl there (kbuild's own API calls go through it); read by no service.
    KubeconfigSpec("admin.conf", "admin.conf", "admin", endpoint_api_url, "cluster administrator",
                   remote=_K8S / "admin.conf", to=readers(control_plane=())),
    KubeconfigSpec("controller-manager.conf", "kubeconfigs/controller-manager.conf", "controller-manager",
                   local_api_url, "kube-controller-manager", remote=_K8S / "controller-manager.conf",
                   to=readers(control_plane=(CONTROLLER_MANAGER,))),
    KubeconfigSpec("scheduler.conf", "kubeconfigs/scheduler.conf", "scheduler", local_api_url, "kube-scheduler",
                   remote=_K8S / "scheduler.conf", to=readers(control_plane=(SCHEDULER,))),
    KubeconfigSpec("kube-proxy.conf", "kubeconfigs/kube-proxy.conf", "kube-proxy", endpoint_api_url,
                   "kube-proxy (shared by every node)", remote=_K8S / "kube-proxy.conf",
                   to=readers(kubelet=(KUBE_PROXY,))),
    KubeconfigSpec("kubelet.conf", "kubeconfigs/kubelet-{host}.conf", "kubelet-client", endpoint_api_url,
                   "kubelet", hosts=_kubelet_hosts, remote=_K8S / "kubelet.conf", to=readers(kubelet=(KUBELET,))),
)

# -- the whole table, and what it derives ------------------------------------------------------------------

Row = CertSpec | KeyPairSpec | KubeconfigSpec | EncryptionSpec
PKI_TABLE: tuple[Row, ...] = (*CERTS, SERVICE_ACCOUNT, *KUBECONFIGS, ENCRYPTION_CONFIG)

# Every file hosts get, in table order; a host gets those of its roles (HostFile.wanted).
HOST_FILES: tuple[HostFile, ...] = tuple(f for row in PKI_TABLE for f in row.host_files())
_BY_ID = {f.id: f for f in HOST_FILES}


def remote_path(file_id: str) -> PurePosixPath:
    """Where a file of the table is on the hosts, by its id: remote_path("etcd-ca.crt"), ("admin.conf")."""
    try:
        return _BY_ID[file_id].remote
    except KeyError:  # a programming error in a flag table or play, caught by the unit tests
        raise KeyError(f"no PKI file {file_id!r} is placed on hosts; known: {', '.join(_BY_ID)}") from None


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
