"""The resolved cluster: validated inventory with every default applied, as the plays consume it."""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, TypeVar

from kbuild.inventory.model import (
    ArtifactSettings,
    Bastion,
    ClusterSettings,
    EtcdSettings,
    HostKeyPolicy,
    PKISettings,
    Role,
)

T = TypeVar("T")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class HostSSH:
    """Where and how to reach one host (per-host overrides already merged)."""

    host: str
    port: int
    user: str
    key_file: str | None
    become: bool
    bastion: Bastion | None
    connect_timeout: float
    retries: int
    persist: float = 0.0


@dataclass(frozen=True)
class Host:
    name: str
    address: IPAddress
    roles: frozenset[Role]
    arch: str
    ssh: HostSSH
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    taints: tuple[str, ...] = ()
    extra_flags: dict[str, dict[str, str]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_etcd(self) -> bool:
        return Role.ETCD in self.roles

    @property
    def is_control_plane(self) -> bool:
        return Role.CONTROL_PLANE in self.roles

    @property
    def is_worker(self) -> bool:
        return Role.WORKER in self.roles

    @property
    def runs_kubelet(self) -> bool:
        """Hosts that run containerd, kubelet and kube-proxy: the workers. A control plane becomes a node
        only by also having the worker role; otherwise it is a pure control plane with no Node object.
        PKI, templates and plays all ask this one question."""
        return self.is_worker

    @property
    def role_names(self) -> list[str]:
        order = [Role.ETCD, Role.CONTROL_PLANE, Role.WORKER]
        return [r.value for r in order if r in self.roles]


@dataclass(frozen=True)
class Cluster:
    name: str
    settings: ClusterSettings
    pki: PKISettings
    etcd: EtcdSettings
    artifacts: ArtifactSettings
    hosts: tuple[Host, ...]
    inventory_path: Path
    state_dir: Path
    host_key_policy: HostKeyPolicy
    known_hosts: Path
    warnings: tuple[str, ...] = ()
    state_dir_given: bool = False  # by --state-dir or KBUILD_STATE_DIR, not by the inventory

    def command(self, subcommand: str) -> str:
        """`kbuild SUBCOMMAND -i INV` as the user would type it again: with the -i and --state-dir they gave."""
        words = ["kbuild", *subcommand.split(), "-i", str(self.inventory_path)]
        if self.state_dir_given:
            words += ["--state-dir", str(self.state_dir)]
        return shlex.join(words)

    # -- host selections -------------------------------------------------
    # Asked once per host by render, preflight and the plays: made once (a scan per question made render
    # of 400 hosts take 50 s). Each property returns a list of its own, which a caller may extend.
    @cached_property
    def _by_name(self) -> dict[str, Host]:
        return {h.name: h for h in self.hosts}

    @cached_property
    def _selections(self) -> dict[str, tuple[Host, ...]]:
        return {"etcd": tuple(h for h in self.hosts if h.is_etcd),
                "control-plane": tuple(h for h in self.hosts if h.is_control_plane),
                "worker": tuple(h for h in self.hosts if h.is_worker),
                "kubelet": tuple(h for h in self.hosts if h.runs_kubelet)}

    def host(self, name: str) -> Host:
        return self._by_name[name]

    @property
    def etcd_hosts(self) -> list[Host]:
        return list(self._selections["etcd"])

    @property
    def control_plane_hosts(self) -> list[Host]:
        return list(self._selections["control-plane"])

    @property
    def worker_hosts(self) -> list[Host]:
        return list(self._selections["worker"])

    @property
    def kubelet_hosts(self) -> list[Host]:
        return list(self._selections["kubelet"])

    def derived(self, key: str, compute: Callable[[Cluster], T]) -> T:
        """A table derived from this (immutable) cluster, computed on first use and kept with it, so that
        work done once per host that needs a fact about every host (pod routes) stays linear."""
        tables = self.__dict__.setdefault("_derived", {})  # not a field: equality and replace() ignore it
        if key not in tables:
            tables[key] = compute(self)
        return tables[key]

    # -- derived network facts --------------------------------------------
    @property
    def api_endpoint_host(self) -> str:
        """The name or address clients use for the API: the inventory's endpoint or the first control plane."""
        if self.settings.api_endpoint:
            return split_host_port(self.settings.api_endpoint, self.settings.api_port)[0]
        return str(self.control_plane_hosts[0].address)

    @property
    def api_endpoint_port(self) -> int:
        if self.settings.api_endpoint:
            return split_host_port(self.settings.api_endpoint, self.settings.api_port)[1]
        return self.settings.api_port

    @property
    def api_server_url(self) -> str:
        return f"https://{format_host(self.api_endpoint_host)}:{self.api_endpoint_port}"

    @property
    def kubernetes_service_ip(self) -> IPAddress:
        return kubernetes_service_ip(self.settings.service_cidr)

    @property
    def cluster_dns_ip(self) -> IPAddress:
        if self.settings.cluster_dns is not None:
            return self.settings.cluster_dns
        return self.settings.service_cidr.network_address + 10


def kubernetes_service_ip(service_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> IPAddress:
    """The first address of the service CIDR: kube-apiserver gives it to the `kubernetes` Service (so it is a SAN of
    the apiserver's certificate), and no other Service can have it."""
    return service_cidr.network_address + 1


def format_host(host: str) -> str:
    """Bracket an IPv6 literal for use in a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def split_host_port(endpoint: str, default_port: int) -> tuple[str, int]:
    """Split `host`, `host:port`, `[v6]` or `[v6]:port`; raises ValueError with a readable reason."""
    endpoint = endpoint.strip()
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{endpoint!r} is not host or host:port")
        port_text = rest[1:] if rest else ""
    elif endpoint.count(":") == 1:
        host, port_text = endpoint.split(":")
    else:
        host, port_text = endpoint, ""
    if not host:
        raise ValueError(f"{endpoint!r} has no host")
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{endpoint!r} has a bad port {port_text!r}")
        return host, int(port_text)
    return host, default_port
