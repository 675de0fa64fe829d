"""Command-line flags of every component, per minor version: what kbuild sets, and what a user may add.

FLAGS is the table kbuild renders into each unit's ExecStart: a flag applies from `since` (its
first minor) up to, not including, `until`. Everything a component can read from a config
file (kubelet, kube-proxy, kube-scheduler) is set there instead, so their tables are short.

A user's `extra_flags` are checked against the flags the configured minor really has (the
binaries' own --help, kept as data in kbuild.render.flagdata), so the inventory gets a clear
error naming its key instead of a unit that crash-loops. LIFETIMES adds what the data cannot
say: when a flag users still carry went away, and what to use instead.

Sources: the kubernetes.io command-line references and release notes (dockershim flags removed
in 1.24, --container-runtime in 1.27, insecure serving in 1.24); etcd's 3.6 upgrade guide and
server/etcdmain/config.go in release-3.6 (v2 API and v2 proxy gone, experimental-* renamed or
turned into --feature-gates); the flag lists of the real binaries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kbuild import components as table
from kbuild import layout as L
from kbuild.errors import UsageError
from kbuild.layout import ETCD_CLIENT_PORT, ETCD_METRICS_PORT, ETCD_PEER_PORT
from kbuild.pki.certlist import remote_path
from kbuild.render.host_values import Facts, node_mask
from kbuild.render.flagdata import BOOL, BOOL_VALUES, known_flags
from kbuild.render.versions import ClusterVersions, Minor, show

Value = str | Callable[[Facts], str]
Condition = Callable[[Facts, ClusterVersions], bool]

FLAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Flag:
    name: str
    value: Value
    since: Minor | None = None  # the first minor that has (or needs) it
    until: Minor | None = None  # the first minor that no longer has (or needs) it
    when: Condition | None = None  # a setting, not the version, decides

    def applies(self, minor: Minor, facts: Facts, versions: ClusterVersions) -> bool:
        if self.since is not None and minor < self.since:
            return False
        if self.until is not None and minor >= self.until:
            return False
        return self.when is None or self.when(facts, versions)

    def render(self, facts: Facts) -> str:
        return self.value if isinstance(self.value, str) else self.value(facts)


def _p(path: object) -> str:
    return str(path)


def _pki(file_id: str) -> str:
    """A PKI file's path on the hosts, from the PKI table."""
    return str(remote_path(file_id))


def _node_labels(f: Facts) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(kubelet_labels(f.host.labels).items()))


ETCD = (
    Flag("name", lambda f: f.host.name),
    Flag("data-dir", lambda f: f.cluster.etcd.data_dir),
    Flag("listen-client-urls",
         lambda f: f"https://{f.host_url_ip}:{ETCD_CLIENT_PORT},https://{f.loopback}:{ETCD_CLIENT_PORT}"),
    Flag("advertise-client-urls", lambda f: f"https://{f.host_url_ip}:{ETCD_CLIENT_PORT}"),
    Flag("listen-peer-urls", lambda f: f"https://{f.host_url_ip}:{ETCD_PEER_PORT}"),
    Flag("initial-advertise-peer-urls", lambda f: f"https://{f.host_url_ip}:{ETCD_PEER_PORT}"),
    Flag("initial-cluster", lambda f: f.etcd_initial_cluster),
    # Ignored once the member has data; a member added to a running cluster needs "existing"
    # (the play adding it overrides this through extra flags or its own step).
    Flag("initial-cluster-state", "new"),
    Flag("initial-cluster-token", lambda f: f"{f.cluster.name}-etcd"),
    Flag("listen-metrics-urls", lambda f: f"http://{f.loopback}:{ETCD_METRICS_PORT}"),
    Flag("cert-file", _pki("etcd-server.crt")),
    Flag("key-file", _pki("etcd-server.key")),
    Flag("trusted-ca-file", _pki("etcd-ca.crt")),
    Flag("client-cert-auth", "true"),
    Flag("peer-cert-file", _pki("etcd-peer.crt")),
    Flag("peer-key-file", _pki("etcd-peer.key")),
    Flag("peer-trusted-ca-file", _pki("etcd-ca.crt")),
    Flag("peer-client-cert-auth", "true"),
    # Check the data for corruption before serving (what kubeadm sets); a feature gate from 3.6.
    Flag("experimental-initial-corrupt-check", "true", until=(3, 6)),
    Flag("feature-gates", "InitialCorruptCheck=true", since=(3, 6)),
    # kube-apiserver's watch cache relies on progress notifications; 3.6 dropped "experimental-".
    Flag("experimental-watch-progress-notify-interval", "5s", until=(3, 6)),
    Flag("watch-progress-notify-interval", "5s", since=(3, 6)),
)

KUBE_APISERVER = (
    Flag("advertise-address", lambda f: f.host_ip),
    Flag("allow-privileged", "true"),
    Flag("authorization-mode", "Node,RBAC"),
    Flag("enable-admission-plugins", "NodeRestriction"),
    Flag("secure-port", lambda f: str(f.cluster.settings.api_port)),
    Flag("service-cluster-ip-range", lambda f: str(f.cluster.settings.service_cidr)),
    Flag("tls-cert-file", _pki("apiserver.crt")),
    Flag("tls-private-key-file", _pki("apiserver.key")),
    Flag("client-ca-file", _pki("ca.crt")),
    # Anonymous requests: only the health endpoints, through the authentication configuration
    # (CIS 1.2.1's current form).
    Flag("authentication-config", _p(L.AUTHENTICATION_CONFIG)),
    Flag("etcd-servers", lambda f: f.etcd_servers),
    Flag("etcd-cafile", _pki("etcd-ca.crt")),
    Flag("etcd-certfile", _pki("apiserver-etcd-client.crt")),
    Flag("etcd-keyfile", _pki("apiserver-etcd-client.key")),
    Flag("encryption-provider-config", _pki("encryption-config"),
         when=lambda f, _: f.cluster.settings.encryption_at_rest),
    Flag("audit-policy-file", _p(L.AUDIT_POLICY)),
    Flag("audit-log-path", _p(L.AUDIT_LOG)),
    Flag("audit-log-maxage", "30"),
    Flag("audit-log-maxbackup", "10"),
    Flag("audit-log-maxsize", "100"),
    # On SIGTERM the apiserver stops listening at once but by default leaves its watches open until the HTTP
    # server's 60 s shutdown deadline: a restart kept the API away for a minute, longer than the 40 s node
    # grace period, so Nodes that reach the API through this host went NotReady and their pods left every
    # Service. Watches closed within 10 s make a restart a matter of seconds (k0s does the same).
    Flag("shutdown-watch-termination-grace-period", "10s"),
    Flag("service-account-issuer", lambda f: f.service_account_issuer),
    Flag("service-account-key-file", _pki("sa.pub")),
    Flag("service-account-signing-key-file", _pki("sa.key")),
    Flag("kubelet-certificate-authority", _pki("ca.crt")),
    Flag("kubelet-client-certificate", _pki("apiserver-kubelet-client.crt")),
    Flag("kubelet-client-key", _pki("apiserver-kubelet-client.key")),
    Flag("kubelet-preferred-address-types", "InternalIP,Hostname"),
    # The aggregation layer: the apiserver proves itself to extension apiservers with the
    # front-proxy client certificate, and trusts the X-Remote-* headers only from that CN.
    Flag("proxy-client-cert-file", _pki("front-proxy-client.crt")),
    Flag("proxy-client-key-file", _pki("front-proxy-client.key")),
    Flag("requestheader-client-ca-file", _pki("front-proxy-ca.crt")),
    Flag("requestheader-allowed-names", "front-proxy-client"),
    Flag("requestheader-username-headers", "X-Remote-User"),
    Flag("requestheader-group-headers", "X-Remote-Group"),
    Flag("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
    # Without kube-proxy on this host a Service IP leads nowhere: reach aggregated APIs by endpoint.
    Flag("enable-aggregator-routing", "true", when=lambda f, _: not f.host.runs_kubelet),
)

KUBE_CONTROLLER_MANAGER = (
    Flag("kubeconfig", _pki("controller-manager.conf")),
    Flag("authentication-kubeconfig", _pki("controller-manager.conf")),
    Flag("authorization-kubeconfig", _pki("controller-manager.conf")),
    Flag("bind-address", "127.0.0.1"),
    Flag("client-ca-file", _pki("ca.crt")),
    Flag("requestheader-client-ca-file", _pki("front-proxy-ca.crt")),
    Flag("cluster-name", lambda f: f.cluster.name),
    Flag("cluster-signing-cert-file", _pki("ca.crt")),
    Flag("cluster-signing-key-file", _pki("ca.key")),
    Flag("root-ca-file", _pki("ca.crt")),
    Flag("service-account-private-key-file", _pki("sa.key")),
    Flag("use-service-account-credentials", "true"),
    Flag("leader-elect", "true"),
    Flag("service-cluster-ip-range", lambda f: str(f.cluster.settings.service_cidr)),
    Flag("cluster-cidr", lambda f: str(f.cluster.settings.pod_cidr)),
    # kbuild assigns each node's pod block itself (see kbuild.render.host_values); the allocator would
    # hand out different blocks in registration order.
    Flag("allocate-node-cidrs", "false"),
    Flag("node-cidr-mask-size", lambda f: str(node_mask(f.cluster)),
         when=lambda f, _: f.cluster.settings.pod_cidr.version == 4),
    Flag("node-cidr-mask-size-ipv6", lambda f: str(node_mask(f.cluster)),
         when=lambda f, _: f.cluster.settings.pod_cidr.version == 6),
    Flag("node-monitor-period", lambda f: f.cluster.settings.node_monitor_period),
    Flag("node-monitor-grace-period", lambda f: f.cluster.settings.node_monitor_grace_period),
)

KUBE_SCHEDULER = (
    Flag("config", _p(L.SCHEDULER_CONFIG)),
    Flag("authentication-kubeconfig", _pki("scheduler.conf")),
    Flag("authorization-kubeconfig", _pki("scheduler.conf")),
    Flag("bind-address", "127.0.0.1"),
)

# Only what KubeletConfiguration cannot hold; everything else is in its config file.
KUBELET = (
    Flag("config", _p(L.KUBELET_CONFIG)),
    Flag("kubeconfig", _pki("kubelet.conf")),
    Flag("hostname-override", lambda f: f.host.name),  # must match the CN system:node:<name>
    Flag("node-ip", lambda f: f.host_ip),
    Flag("node-labels", _node_labels, when=lambda f, _: bool(kubelet_labels(f.host.labels))),
)

KUBE_PROXY = (
    Flag("config", _p(L.KUBE_PROXY_CONFIG)),
)

CONTAINERD = (
    Flag("config", _p(L.CONTAINERD_CONFIG)),
)

FLAGS: dict[str, tuple[Flag, ...]] = {
    "etcd": ETCD,
    "kube-apiserver": KUBE_APISERVER,
    "kube-controller-manager": KUBE_CONTROLLER_MANAGER,
    "kube-scheduler": KUBE_SCHEDULER,
    "kubelet": KUBELET,
    "kube-proxy": KUBE_PROXY,
    "containerd": CONTAINERD,
}


@dataclass(frozen=True)
class Lifetime:
    """The minors that have a flag: [since, until). None: no bound known (or needed)."""

    since: Minor | None = None
    until: Minor | None = None
    hint: str = ""


_DOCKERSHIM = "removed with dockershim in 1.24; containerd is configured in its own config.toml"
_ETCD_RENAMED = "etcd {minor} spells it --experimental-{name}"

LIFETIMES: dict[str, dict[str, Lifetime]] = {
    "kube-apiserver": {
        "insecure-port": Lifetime(until=(1, 24), hint="only the secure port is served"),
        "insecure-bind-address": Lifetime(until=(1, 24), hint="only the secure port is served"),
        "address": Lifetime(until=(1, 24), hint="use --bind-address"),
        "port": Lifetime(until=(1, 24), hint="use --secure-port"),
        "kubelet-https": Lifetime(until=(1, 22), hint="the apiserver always uses HTTPS to kubelets"),
        "basic-auth-file": Lifetime(until=(1, 19)),
        "service-account-api-audiences": Lifetime(until=(1, 25), hint="use --api-audiences"),
    },
    "kube-controller-manager": {
        "address": Lifetime(until=(1, 24), hint="use --bind-address"),
        "port": Lifetime(until=(1, 24), hint="use --secure-port"),
        "experimental-cluster-signing-duration": Lifetime(until=(1, 25), hint="use --cluster-signing-duration"),
        "pod-eviction-timeout": Lifetime(until=(1, 27), hint="taint-based eviction: tolerationSeconds on pods"),
        "enable-taint-manager": Lifetime(until=(1, 27)),
    },
    "kube-scheduler": {
        "address": Lifetime(until=(1, 24), hint="use --bind-address"),
        "port": Lifetime(until=(1, 24), hint="use --secure-port"),
        "algorithm-provider": Lifetime(until=(1, 23), hint="use a KubeSchedulerConfiguration profile"),
        "policy-config-file": Lifetime(until=(1, 23), hint="use a KubeSchedulerConfiguration profile"),
        "policy-configmap": Lifetime(until=(1, 23), hint="use a KubeSchedulerConfiguration profile"),
        "policy-configmap-namespace": Lifetime(until=(1, 23)),
        "use-legacy-policy-config": Lifetime(until=(1, 23)),
    },
    "kubelet": {
        "network-plugin": Lifetime(until=(1, 24), hint=_DOCKERSHIM),
        "network-plugin-mtu": Lifetime(until=(1, 24), hint=_DOCKERSHIM),
        "cni-bin-dir": Lifetime(until=(1, 24), hint=_DOCKERSHIM),
        "cni-conf-dir": Lifetime(until=(1, 24), hint=_DOCKERSHIM),
        "cni-cache-dir": Lifetime(until=(1, 24), hint=_DOCKERSHIM),
        "docker-endpoint": Lifetime(until=(1, 24), hint=_DOCKERSHIM),
        "image-pull-progress-deadline": Lifetime(until=(1, 24), hint=_DOCKERSHIM),
        "experimental-dockershim-root-directory": Lifetime(until=(1, 24), hint=_DOCKERSHIM),
        "container-runtime": Lifetime(until=(1, 27), hint="only remote (CRI) runtimes remain"),
    },
    "kube-proxy": {
        "resource-container": Lifetime(until=(1, 16)),
    },
    "etcd": {
        "enable-v2": Lifetime(until=(3, 6), hint="the v2 API is gone; migrate v2 data first"),
        "experimental-enable-v2v3": Lifetime(until=(3, 6), hint="the v2 API is gone"),
        **{f"proxy{suffix}": Lifetime(until=(3, 6), hint="the v2 proxy is gone; use grpc-proxy")
           for suffix in ("", "-failure-wait", "-refresh-interval", "-dial-timeout", "-write-timeout",
                          "-read-timeout")},
        "feature-gates": Lifetime(since=(3, 6), hint="etcd {minor} uses --experimental-* flags instead"),
        "log-format": Lifetime(since=(3, 6)),
        **{name: Lifetime(since=(3, 6), hint=_ETCD_RENAMED)
           for name in ("watch-progress-notify-interval", "compact-hash-check-time", "corrupt-check-time",
                        "compaction-batch-limit", "compaction-sleep-interval", "warning-apply-duration",
                        "bootstrap-defrag-threshold-megabytes", "max-learners", "snapshot-catchup-entries",
                        "memory-mlock", "downgrade-check-time", "peer-skip-client-san-verification",
                        "enable-distributed-tracing", "distributed-tracing-address",
                        "distributed-tracing-instance-id", "distributed-tracing-sampling-rate",
                        "distributed-tracing-service-name")},
    },
}

# Flags the component refuses together: (user flag, kbuild flag, why).
CONFLICTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "kube-apiserver": (
        ("anonymous-auth", "authentication-config",
         "anonymous access is set in the authentication configuration (template authentication-config.yaml.j2)"),
        ("oidc-issuer-url", "authentication-config",
         "JWT issuers belong in the authentication configuration (template authentication-config.yaml.j2)"),
    ),
}


class FlagError(UsageError):
    """An inventory extra flag the configured component version does not accept."""

    def __init__(self, key: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{key}: {message}", hint=hint or None)
        self.key = key


def component_minor(component: str, versions: ClusterVersions) -> Minor:
    """The minor of the release the component comes from (its flags change with that release's)."""
    return getattr(versions, str(table.component(component).release))


def extra_flags(facts: Facts, component: str) -> dict[str, tuple[str, str]]:
    """The inventory's extra flags for a component on a host: name -> (value, inventory key).

    The cluster's come first and the host's override them.
    """
    merged: dict[str, tuple[str, str]] = {}
    sources = (("cluster.extra_flags", facts.cluster.settings.extra_flags),
               (f"hosts.{facts.host.name}.extra_flags", facts.host.extra_flags))
    for prefix, table in sources:
        for raw, value in table.get(component, {}).items():
            key = f"{prefix}.{component}.{raw}"
            name = raw.lstrip("-")
            if not FLAG_NAME.match(name):
                raise FlagError(key, f"{raw!r} is not a flag name", hint="write it as in `--name`, without a value")
            merged[name] = (str(value), key)
    return merged


def build(component: str, facts: Facts, versions: ClusterVersions) -> list[tuple[str, str]]:
    """The (name, value) flags of a component's ExecStart on this host, sorted by name."""
    minor = component_minor(component, versions)
    flags = {f.name: f.render(facts) for f in FLAGS[component] if f.applies(minor, facts, versions)}
    extras = extra_flags(facts, component)
    for name, (value, key) in extras.items():
        _check_known(component, name, value, minor, key)
        for user_flag, kbuild_flag, why in CONFLICTS.get(component, ()):
            if name == user_flag and kbuild_flag in flags and kbuild_flag not in extras:
                raise FlagError(key, f"{component} refuses --{user_flag} together with --{kbuild_flag}",
                                hint=why)
        flags[name] = value
    return sorted(flags.items())


def _check_known(component: str, name: str, value: str, minor: Minor, key: str) -> None:
    """Refuse a flag the minor does not have, and a boolean flag's value it would not parse."""
    known = known_flags(component, minor)
    life = LIFETIMES.get(component, {}).get(name)
    what = f"{component} {show(minor)} has no flag --{name}"
    hint = life.hint.format(minor=show(minor), name=name) if life and life.hint else None
    if life is not None and life.until is not None and minor >= life.until:
        raise FlagError(key, f"{what} (removed in {show(life.until)})", hint=hint)
    if life is not None and life.since is not None and minor < life.since:
        raise FlagError(key, f"{what} (added in {show(life.since)})", hint=hint)
    if known is None:
        return  # a minor kbuild has no flag list for (a containerd minor it was not built with)
    if name not in known:
        raise FlagError(key, what, hint=hint or f"the flags are those of `{component} --help` of that release")
    if known[name] == BOOL and value not in BOOL_VALUES:
        raise FlagError(key, f"--{name} is a boolean flag; {value!r} is not true or false")


# -- node labels ---------------------------------------------------------------------------------

# NodeRestriction lets a kubelet set only these labels in the kubernetes.io / k8s.io namespaces
# (and the kubelet refuses to start with any other there); the rest go on through the API.
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/instance-type", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/instance-type", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "failure-domain.kubernetes.io/zone", "failure-domain.kubernetes.io/region",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "node.kubernetes.io/instance-type",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def kubelet_may_set(label: str) -> bool:
    prefix, _, _ = label.rpartition("/")
    if not prefix:
        return True
    restricted = prefix in ("kubernetes.io", "k8s.io") or prefix.endswith((".kubernetes.io", ".k8s.io"))
    if not restricted:
        return True
    return label in KUBELET_LABELS or prefix in KUBELET_LABEL_NAMESPACES or \
        prefix.endswith(tuple(f".{ns}" for ns in KUBELET_LABEL_NAMESPACES))


def kubelet_labels(labels: dict[str, str]) -> dict[str, str]:
    """The labels the kubelet registers itself with (--node-labels)."""
    return {k: v for k, v in labels.items() if kubelet_may_set(k)}


def api_labels(labels: dict[str, str]) -> dict[str, str]:
    """The labels a kubelet may not set (node-role.kubernetes.io/... and the like): the bootstrap play
    applies these with admin credentials."""
    return {k: v for k, v in labels.items() if not kubelet_may_set(k)}
