"""The component table: one row per thing kbuild installs on a host, as kubeadm's certlist is for certificates.

A row says which hosts run the component (its role), which release its binaries come from, the systemd
unit and the files rendered for it, the ports it holds, how to ask it whether it is healthy, how its binary
tells its version, and which upgrade step moves it. Everything that lists components derives from here:
the templates each host gets and the order its units start in (kbuild.render.files), which phase installs a
binary (kbuild.artifacts.catalogue, kbuild.plays.desired), the health gates and `kbuild status`
(kbuild.plays.components), preflight's ports and units, reset's lists, the version probe and the upgrade's
order (kbuild.plays.upgrade). Adding a component is one row here plus its templates (and its flags table in
kbuild.render.flags when it is a service).

Pure data: this module imports nothing of kbuild but the host layout, so the inventory's model can check
extra_flags against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from kbuild import layout

if TYPE_CHECKING:
    from kbuild.inventory import Cluster, Host

# The phases that install components, in the order a bootstrap runs them; "node" means a host that runs a
# kubelet (a worker, or a control plane that also is a node).
ETCD, CONTROL_PLANE, NODE = "etcd", "control-plane", "node"
ROLES = (ETCD, CONTROL_PLANE, NODE)

# The upgrade's steps that move components, in the order the Kubernetes version skew policy prescribes:
# etcd, the apiservers, then controller-manager and scheduler, then the nodes (drained one at a time).
UPGRADE_STEPS = ("etcd", "apiserver", "controllers", "workers")


def host_has_role(host: Host, role: str) -> bool:
    """Whether the host takes part in a phase: the one place a role name is turned into a host's roles."""
    if role == ETCD:
        return host.is_etcd
    if role == CONTROL_PLANE:
        return host.is_control_plane
    if role == NODE:
        return host.runs_kubelet
    raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")


def host_roles(host: Host) -> frozenset[str]:
    return frozenset(role for role in ROLES if host_has_role(host, role))


@dataclass(frozen=True)
class FileSpec:
    """A file rendered for a host from a template: where it goes and which services restart when it changes."""

    template: str
    path: PurePosixPath
    services: tuple[str, ...]  # systemd services to restart when it changes (a unit: itself)
    component: str | None = None  # a unit: ExecStart gets this component's binary and flags
    when: Callable[[Cluster], bool] | None = None  # a setting decides whether the host gets it
    mode: int = 0o644
    overrides: str | None = None  # the cluster setting merged over this YAML file (kubelet_config, ...)


@dataclass(frozen=True)
class Port:
    """A port a component listens on: fixed by kbuild (kbuild.layout), or moved by a cluster setting."""

    number: int | None = None
    setting: str | None = None  # the field of cluster settings that holds it (api_port)

    def on(self, settings: Any) -> int:
        return int(getattr(settings, self.setting)) if self.setting else int(self.number or 0)


@dataclass(frozen=True)
class Probe:
    """One health check, as data (kbuild.plays.components makes the shell test of it).

    kind: "apiserver" (the host's own apiserver, as a system:masters client, the server verified),
    "https" (a self-signed loopback endpoint, as the controllers serve unless given a certificate),
    "http" (a plain loopback endpoint), "socket" (a Unix socket exists).
    """

    kind: str
    endpoint: str  # the path asked (/readyz), or what is checked ("answering")
    port: Port | None = None
    socket: PurePosixPath | None = None  # for "socket"


@dataclass(frozen=True)
class Component:
    name: str  # its binary and its systemd unit, when it has them
    role: str  # the phase that installs it (ROLES)
    release: str | None  # the release its binaries come from (kbuild.artifacts.catalogue); None: none
    binaries: tuple[str, ...] = ()  # the release's binaries it brings
    service: bool = True  # runs as the systemd unit `name`, from the binary `name`
    files: tuple[FileSpec, ...] = ()  # rendered beside its unit (configs, manifests)
    ports: tuple[Port, ...] = ()  # what it listens on that no other program on the host may hold
    health: tuple[Probe, ...] = ()  # in the order a gate waits for them
    version_command: str | None = None  # the arguments that make its binary print its version
    upgrade_step: str | None = None  # the UPGRADE_STEPS entry that moves it; None: not moved by an upgrade
    host_tools: tuple[str, ...] = ()  # programs it runs that the host must have (preflight checks for them)

    @property
    def unit(self) -> FileSpec | None:
        """Its systemd unit's file (rendered from NAME.service.j2), for a service."""
        if not self.service:
            return None
        return FileSpec(f"{self.name}.service.j2", layout.unit_path(self.name), (self.name,), component=self.name)

    @property
    def rendered(self) -> tuple[FileSpec, ...]:
        """Every file rendered for it: the unit first, then its files."""
        return ((self.unit,) if self.unit else ()) + self.files

    def listening_ports(self, settings: Any) -> tuple[int, ...]:
        return tuple(port.on(settings) for port in self.ports)


def bridge_cni(cluster: Cluster) -> bool:
    return cluster.settings.cni == "bridge"


def _coredns_enabled(cluster: Cluster) -> bool:
    return cluster.settings.addons.coredns.enabled


def _etcd_backup(cluster: Cluster) -> bool:
    return cluster.etcd.backup.enabled


_APISERVER_PORT = Port(setting="api_port")
_KUBERNETES_VERSION = "--version"

COMPONENTS: tuple[Component, ...] = (
    Component(
        # etcdctl for health checks and snapshots; etcdutl (offline snapshot tools) exists from etcd 3.5 on.
        "etcd", ETCD, "etcd", ("etcd", "etcdctl", "etcdutl"),
        files=(
            # Scheduled snapshots (etcd.backup.enabled): a script, its oneshot service, and the timer. Only a
            # changed timer restarts anything (itself); the service and script are read afresh on each run.
            FileSpec("etcd-backup.sh.j2", layout.ETCD_BACKUP_SCRIPT, (), when=_etcd_backup, mode=0o755),
            FileSpec("etcd-backup.service.j2", layout.unit_path("etcd-backup"), (), when=_etcd_backup),
            FileSpec("etcd-backup.timer.j2", layout.UNIT_DIR / "etcd-backup.timer", ("etcd-backup.timer",),
                     when=_etcd_backup),
        ),
        ports=(Port(layout.ETCD_CLIENT_PORT), Port(layout.ETCD_PEER_PORT)),
        # etcd's health is the cluster's (kbuild.plays.etcd's gate asks every member), not a probe of its own.
        version_command="--version | head -n1",
        upgrade_step="etcd",
    ),
    Component(
        "kube-apiserver", CONTROL_PLANE, "kubernetes", ("kube-apiserver",),
        files=(
            FileSpec("audit-policy.yaml.j2", layout.AUDIT_POLICY, ("kube-apiserver",)),
            FileSpec("authentication-config.yaml.j2", layout.AUTHENTICATION_CONFIG, ("kube-apiserver",)),
            # Applied through the API by the cluster-objects phase, not read by a service.
            FileSpec("rbac-apiserver-to-kubelet.yaml.j2", layout.APISERVER_KUBELET_RBAC, ()),
        ),
        ports=(_APISERVER_PORT,),
        health=(Probe("apiserver", "/livez", _APISERVER_PORT), Probe("apiserver", "/readyz", _APISERVER_PORT)),
        version_command=_KUBERNETES_VERSION,
        upgrade_step="apiserver",
    ),
    Component(
        "kube-controller-manager", CONTROL_PLANE, "kubernetes", ("kube-controller-manager",),
        ports=(Port(layout.CONTROLLER_MANAGER_PORT),),
        health=(Probe("https", "/healthz", Port(layout.CONTROLLER_MANAGER_PORT)),),
        version_command=_KUBERNETES_VERSION,
        upgrade_step="controllers",
    ),
    Component(
        "kube-scheduler", CONTROL_PLANE, "kubernetes", ("kube-scheduler",),
        files=(FileSpec("kube-scheduler-config.yaml.j2", layout.SCHEDULER_CONFIG, ("kube-scheduler",)),),
        ports=(Port(layout.SCHEDULER_PORT),),
        health=(Probe("https", "/healthz", Port(layout.SCHEDULER_PORT)),),
        version_command=_KUBERNETES_VERSION,
        upgrade_step="controllers",
    ),
    Component(
        # The cluster DNS addon: a manifest the addons phase applies through the API (no binary, no unit).
        "coredns", CONTROL_PLANE, None, service=False,
        files=(FileSpec("addons/coredns.yaml.j2", layout.COREDNS_MANIFEST, (), when=_coredns_enabled),),
    ),
    Component(
        # The containerd tarball also carries containerd-shim, -shim-runc-v1 and -stress: obsolete or
        # test-only, so hosts do not get them.
        "containerd", NODE, "containerd", ("containerd", "containerd-shim-runc-v2", "ctr"),
        files=(
            FileSpec("containerd-config.toml.j2", layout.CONTAINERD_CONFIG, ("containerd",),
                     overrides="containerd_config"),
            # containerd watches the CNI directory and reloads it; a restart would change nothing more.
            FileSpec("cni-bridge.conflist.j2", layout.CNI_BRIDGE_CONF, (), when=bridge_cni),
            FileSpec("cni-loopback.conf.j2", layout.CNI_LOOPBACK_CONF, (), when=bridge_cni),
        ),
        health=(Probe("socket", "answering", socket=layout.CONTAINERD_SOCKET),),
        version_command="--version",
        upgrade_step="workers",
    ),
    Component(
        "kubelet", NODE, "kubernetes", ("kubelet",),
        files=(FileSpec("kubelet-config.yaml.j2", layout.KUBELET_CONFIG, ("kubelet",), overrides="kubelet_config"),),
        ports=(Port(layout.KUBELET_PORT),),
        health=(Probe("http", "/healthz", Port(layout.KUBELET_HEALTHZ_PORT)),),
        version_command=_KUBERNETES_VERSION,
        upgrade_step="workers",
    ),
    Component(
        "kube-proxy", NODE, "kubernetes", ("kube-proxy",),
        files=(FileSpec("kube-proxy-config.yaml.j2", layout.KUBE_PROXY_CONFIG, ("kube-proxy",),
                        overrides="kube_proxy_config"),),
        ports=(Port(layout.KUBE_PROXY_HEALTHZ_PORT),),
        health=(Probe("http", "/healthz", Port(layout.KUBE_PROXY_HEALTHZ_PORT)),),
        version_command=_KUBERNETES_VERSION,
        upgrade_step="workers",
        host_tools=("iptables",),  # it writes the Services' rules with iptables-restore (proxy_mode iptables)
    ),
    # Executed afresh for each container or command: nothing restarts when they change.
    Component("runc", NODE, "runc", ("runc",), service=False),
    # What the bridge network kbuild renders (10-bridge.conflist, 99-loopback.conf) and hostPort need.
    Component("cni-plugins", NODE, "cni-plugins", ("bridge", "host-local", "loopback", "portmap"), service=False),
    Component("crictl", NODE, "crictl", ("crictl",), service=False),
    # For the cluster objects and addons kbuild applies, and drains; last, as the kubernetes release lists it.
    Component("kubectl", CONTROL_PLANE, "kubernetes", ("kubectl",), service=False),
)

BY_NAME = {c.name: c for c in COMPONENTS}

# Start order on a host that has them all: etcd before the apiserver, the apiserver before the controllers,
# the runtime before the kubelet (the table's order).
SERVICES = tuple(c.name for c in COMPONENTS if c.service)


def component(name: str) -> Component:
    return BY_NAME[name]


def of_role(role: str) -> tuple[Component, ...]:
    return tuple(c for c in COMPONENTS if c.role == role)


def role_services(role: str) -> tuple[str, ...]:
    """The services a phase starts, in start order."""
    return tuple(c.name for c in of_role(role) if c.service)


def host_components(host: Host) -> list[Component]:
    """The components the host's roles run, in table order."""
    roles = host_roles(host)
    return [c for c in COMPONENTS if c.role in roles]


def host_tools(host: Host) -> tuple[str, ...]:
    """The programs the host's components need from the host, each once."""
    return tuple(dict.fromkeys(tool for c in host_components(host) for tool in c.host_tools))


def upgraded(step: str | None = None) -> tuple[Component, ...]:
    """The components an upgrade moves (those of one step), in start order."""
    return tuple(c for c in COMPONENTS if c.upgrade_step and (step is None or c.upgrade_step == step))


def release_binaries(release: str) -> tuple[str, ...]:
    """The binaries kbuild takes from a release, in table order (the catalogue drops those a version lacks)."""
    return tuple(name for c in COMPONENTS if c.release == release for name in c.binaries)


def binary_owner(release: str, binary: str) -> Component:
    """The row that brings `binary` of `release`."""
    for c in COMPONENTS:
        if c.release == release and binary in c.binaries:
            return c
    raise KeyError(f"no component brings {binary} of {release}")
