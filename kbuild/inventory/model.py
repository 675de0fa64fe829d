"""The inventory schema: what a user may write, with types and defaults (pydantic, unknown keys refused)."""

from __future__ import annotations

import ipaddress
import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from kbuild.components import SERVICES
from kbuild.imageref import ImageRef
from kbuild.inventory.safe import (
    DNS_LABEL,
    DNS_NAME,
    AsciiText,
    DataDir,
    DnsLabel,
    DnsName,
    DnsUpstream,
    Duration,
    HostAddress,
    KnownHosts,
    LabelKey,
    LabelValue,
    LocalDir,
    LocalPath,
    Network,
    Port,
    Seconds,
    ServiceAddress,
    Sha256,
    SSHHost,
    SSHUser,
    StrictInt,
    Switch,
    Taint,
    Text,
    version,
)
from kbuild.releases import UnsupportedRelease, check_supported

__all__ = ["DNS_LABEL", "DNS_NAME"]  # re-exported: the loader checks host names with them


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Role(str, Enum):
    ETCD = "etcd"
    CONTROL_PLANE = "control-plane"
    WORKER = "worker"


class HostKeyPolicy(str, Enum):
    ACCEPT_NEW = "accept-new"  # record a host's key on first contact; refuse a changed one
    STRICT = "strict"  # only keys already in known_hosts


Version = Annotated[str, Field(description="X.Y.Z (a leading v is accepted)")]


class Bastion(Strict):
    host: SSHHost
    port: Port = 22
    user: SSHUser | None = None
    key_file: LocalPath | None = None


class SSHSettings(Strict):
    """How kbuild reaches hosts. Every field may be overridden per host."""

    user: SSHUser = "root"
    port: Port = 22
    key_file: LocalPath | None = None  # else ssh-agent and ~/.ssh/id_* keys
    become: Switch = False  # run remote commands through `sudo -n` (a non-root user with sudo)
    bastion: Bastion | None = None
    host_key_policy: HostKeyPolicy = HostKeyPolicy.ACCEPT_NEW
    known_hosts: KnownHosts | None = None  # default: <state dir>/known_hosts
    connect_timeout: Seconds = Field(10.0, gt=0, le=600)
    retries: StrictInt = Field(2, ge=0, le=10)
    # Keep each connection this many seconds after a run for the next one (kbuild.engine.muxd); 0: off.
    persist: Seconds = Field(0.0, ge=0, le=3600)


class SSHOverrides(Strict):
    """Per-host SSH settings; unset fields fall back to the inventory's `ssh` section."""

    host: SSHHost | None = None  # connect here instead of `address` (NAT, port forwarding)
    user: SSHUser | None = None
    port: Port | None = None
    key_file: LocalPath | None = None
    become: Switch | None = None
    bastion: Bastion | None = None
    connect_timeout: Seconds | None = Field(None, gt=0, le=600)
    retries: StrictInt | None = Field(None, ge=0, le=10)
    persist: Seconds | None = Field(None, ge=0, le=3600)


class Versions(Strict):
    """Releases upstream supports (as of kbuild's release); `crictl: null` leaves crictl out."""

    kubernetes: str = "1.37.2"
    etcd: str = "3.6.16"
    containerd: str = "2.4.2"
    runc: str = "1.5.3"
    cni_plugins: str = "1.10.0"
    crictl: str | None = "1.37.0"  # the CRI debugging CLI, as kubespray installs it; follows the Kubernetes minor

    @field_validator("*", mode="before")
    @classmethod
    def _check(cls, value: object) -> str | None:
        return None if value is None else version(value)

    @field_validator("kubernetes", "etcd", "containerd", "runc")
    @classmethod
    def _supported(cls, value: str, info: ValidationInfo) -> str:
        try:
            check_supported(str(info.field_name), value)
        except UnsupportedRelease as exc:
            raise ValueError(str(exc)) from None
        return value


class PKISettings(Strict):
    key_algorithm: Literal["rsa-2048", "rsa-4096", "ecdsa-p256"] = "rsa-2048"
    ca_validity_days: StrictInt = Field(3650, ge=1, le=36500)
    cert_validity_days: StrictInt = Field(365, ge=1, le=3650)
    renew_before_days: StrictInt = Field(30, ge=0, le=3650)  # reissue leaves expiring within this window

    @model_validator(mode="after")
    def _window_fits(self) -> PKISettings:
        if self.renew_before_days >= self.cert_validity_days:
            raise ValueError(f"renew_before_days ({self.renew_before_days}) must be shorter than cert_validity_days "
                             f"({self.cert_validity_days}): every certificate would be due for renewal on every run")
        return self


class EtcdBackupSettings(Strict):
    enabled: Switch = False
    schedule: AsciiText = "daily"  # a systemd OnCalendar= expression
    keep: StrictInt = Field(7, ge=1, le=1000)
    dir: DataDir = "/var/backups/etcd"

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        # Checked fully by systemd on the host; here only what would break the rendered timer.
        # OnCalendar's own characters (weekdays, ranges, repetitions, a time zone) and nothing a shell or a
        # unit file would read as more than a value.
        if not value.strip() or len(value) > 256 or not re.fullmatch(r"[A-Za-z0-9 *,:./~_+-]+", value, re.ASCII):
            raise ValueError(f"{value!r} is not a systemd OnCalendar expression (e.g. daily, *-*-* 02:30:00)")
        return value.strip()


class EtcdSettings(Strict):
    data_dir: DataDir = "/var/lib/etcd"
    backup: EtcdBackupSettings = EtcdBackupSettings()

    @model_validator(mode="after")
    def _apart(self) -> EtcdSettings:
        # Reset moves the data directory aside and retention deletes in the backup directory: neither may
        # hold the other.
        data, backups = self.data_dir, self.backup.dir
        if data == backups or backups.startswith(data + "/") or data.startswith(backups + "/"):
            raise ValueError(f"data_dir {data} and backup.dir {backups} must be separate directories, "
                             "neither inside the other")
        return self


class ImageSettings(Strict):
    """Where the nodes' container images come from.

    registry: containerd pulls them (online clusters). archives: kbuild sends OCI image archives
    from the mirror, a bundle or `files` to the nodes and imports them (air-gapped clusters).
    auto: archives when artifacts.mirror is set (a mirror means no internet), else registry.
    """

    source: Literal["auto", "registry", "archives"] = "auto"
    preload: list[str] = []  # more images for every node, from archives (applications, tests)
    files: dict[str, LocalPath] = {}  # image reference -> local archive (absolute, or relative to the inventory)

    @field_validator("preload")
    @classmethod
    def _refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            ImageRef.parse(ref)
        if len(set(value)) != len(value):
            raise ValueError("an image is listed twice")
        return value

    @field_validator("files")
    @classmethod
    def _file_refs(cls, value: dict[str, str]) -> dict[str, str]:
        for ref in value:
            ImageRef.parse(ref)
        return value


class ArtifactSettings(Strict):
    mirror: AsciiText | None = None  # base URL or local directory laid out like the official sites
    images: ImageSettings = ImageSettings()
    transfer: Literal["push", "pull"] = "push"
    cache_dir: LocalDir | None = None  # default: ~/.cache/kbuild/artifacts
    checksums: dict[AsciiText, Sha256] = {}  # pin: file name or URL -> sha256

    @model_validator(mode="after")
    def _archives_have_a_source(self) -> ArtifactSettings:
        images = self.images
        from_archives = images.source == "archives" or (images.source == "auto" and bool(self.mirror))
        if (images.preload or images.files) and not from_archives:
            raise ValueError("images.preload and images.files are archives kbuild imports, but images come from "
                             "registries here: set artifacts.mirror, or images.source: archives (a bundle)")
        return self


class CoreDNSSettings(Strict):
    """CoreDNS as kbuild deploys it: a Deployment and the kube-dns Service at cluster_dns."""

    enabled: Switch = True
    replicas: StrictInt = Field(2, ge=1, le=100)
    # Where names outside the cluster domain go: resolv.conf paths or addresses (each with an optional
    # :port); the default is the nodes' own resolvers. An empty list answers only cluster names.
    forward: list[DnsUpstream] = ["/etc/resolv.conf"]


class AddonSettings(Strict):
    """Cluster addons kbuild applies through the API after the nodes are up."""

    coredns: CoreDNSSettings = CoreDNSSettings()


class ClusterSettings(Strict):
    name: DnsLabel
    versions: Versions = Versions()
    pod_cidr: Network = ipaddress.ip_network("10.200.0.0/16")
    node_cidr_mask_size: StrictInt = Field(24, ge=8, le=30)
    service_cidr: Network = ipaddress.ip_network("10.32.0.0/24")
    cluster_domain: DnsName = "cluster.local"
    cluster_dns: ServiceAddress | None = None  # default: 10th service IP
    api_endpoint: AsciiText | None = None  # host or host:port of a load balancer / VIP; default: first control plane
    api_port: Port = 6443
    extra_sans: list[AsciiText] = []
    proxy_mode: Literal["iptables", "nftables", "ipvs"] = "iptables"
    # bridge: kbuild's own pod network (a bridge per node, host-local addresses, routes between nodes);
    # none: no pod network, bring your own CNI (nodes stay NotReady until one is installed).
    cni: Literal["bridge", "none"] = "bridge"
    addons: AddonSettings = AddonSettings()
    node_monitor_period: Duration = "5s"
    node_monitor_grace_period: Duration = "40s"
    fail_swap_on: Switch = True  # false: kubelet tolerates swap (NodeSwap)
    encryption_at_rest: Switch = True
    templates_dir: LocalPath | None = None  # user templates overriding the shipped ones, same names
    extra_flags: dict[str, dict[AsciiText, Text]] = {}  # component -> flag -> value
    # Merged over the KubeletConfiguration / KubeProxyConfiguration (camelCase keys, as in those APIs) and
    # containerd's config.toml kbuild writes, for what has no setting of its own here: eviction
    # thresholds, image GC, conntrack, containerd plugin options.
    kubelet_config: dict[str, Any] = {}
    kube_proxy_config: dict[str, Any] = {}
    containerd_config: dict[str, Any] = {}

    @field_validator("kubelet_config", "kube_proxy_config", "containerd_config")
    @classmethod
    def _owned_keys(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        owned = sorted(set(value) & OWNED_CONFIG_KEYS[str(info.field_name)])
        if owned:
            raise ValueError(f"{', '.join(owned)}: set by kbuild (credentials and who may connect); "
                             "change them through a template override (cluster.templates_dir) if you must")
        return value

    @field_validator("extra_flags")
    @classmethod
    def _components(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(value) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown component {', '.join(unknown)}; known: {', '.join(COMPONENTS)}")
        return value


# Keys of the component configs that carry kbuild's security settings and its credentials' paths.
OWNED_CONFIG_KEYS = {
    "kubelet_config": {"apiVersion", "kind", "authentication", "authorization", "tlsCertFile", "tlsPrivateKeyFile",
                       "readOnlyPort", "staticPodPath"},
    "kube_proxy_config": {"apiVersion", "kind", "clientConnection"},
    "containerd_config": {"version", "grpc"},
}

# The components extra_flags may be given for: every service of the component table.
COMPONENTS = SERVICES


class HostSpec(Strict):
    address: HostAddress
    roles: list[Role] = Field(min_length=1)
    arch: Literal["amd64", "arm64"] = "amd64"
    ssh: SSHOverrides = SSHOverrides()
    labels: dict[LabelKey, LabelValue] = {}
    taints: list[Taint] = []
    extra_flags: dict[str, dict[AsciiText, Text]] = {}

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, value: list[Role]) -> list[Role]:
        if len(set(value)) != len(value):
            raise ValueError("a role is listed twice")
        return value


class InventorySpec(Strict):
    """The whole inventory file."""

    cluster: ClusterSettings
    ssh: SSHSettings = SSHSettings()
    pki: PKISettings = PKISettings()
    etcd: EtcdSettings = EtcdSettings()
    artifacts: ArtifactSettings = ArtifactSettings()
    state_dir: LocalDir | None = None  # default: .kbuild/<cluster name> next to the inventory
    hosts: dict[str, HostSpec] = Field(min_length=1)
