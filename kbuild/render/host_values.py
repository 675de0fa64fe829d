"""What a host's units and configs are computed from: roles, addresses, per-node pod CIDR, paths.

Per-node pod CIDRs are static and deterministic: the n-th host that runs a kubelet (inventory
order) gets the n-th /node_cidr_mask_size block of cluster.pod_cidr, and its CNI bridge
serves that block. Because kbuild, not kube-controller-manager, owns that assignment, the
controller-manager runs with --allocate-node-cidrs=false: its range allocator hands out blocks
in node registration order, which would disagree with the bridges and give two nodes the same
block in node.spec.podCIDR. Routes between nodes can then be computed from the inventory
alone. Adding a kubelet host in the middle of the inventory renumbers the ones after it, so
new hosts belong at the end.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import PurePosixPath

from kbuild import layout
from kbuild.errors import UsageError
from kbuild.inventory import Cluster, Host
from kbuild.inventory.cluster import format_host
from kbuild.layout import ETCD_CLIENT_PORT, ETCD_PEER_PORT
from kbuild.pki.certlist import HOST_FILES

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def node_pod_cidr(cluster: Cluster, host: Host) -> IPNetwork:
    """The pod network of one kubelet host: block <index of host among kubelet hosts> of pod_cidr."""
    cidrs = cluster.derived("node_pod_cidrs", _node_pod_cidrs)
    if host.name not in cidrs:
        raise UsageError(f"host {host.name} runs no kubelet, so it has no pod CIDR")
    return cidrs[host.name]


def _node_pod_cidrs(cluster: Cluster) -> dict[str, IPNetwork]:
    pod = cluster.settings.pod_cidr
    mask = node_mask(cluster)
    if mask < pod.prefixlen:
        raise UsageError(f"cluster.node_cidr_mask_size: /{mask} is larger than cluster.pod_cidr {pod}")
    blocks = 2 ** (mask - pod.prefixlen)
    size = 2 ** (pod.max_prefixlen - mask)
    cidrs: dict[str, IPNetwork] = {}
    for index, host in enumerate(cluster.kubelet_hosts):
        if index >= blocks:
            raise UsageError(f"cluster.pod_cidr: {pod} holds {blocks} blocks of /{mask}, too few for "
                             f"{len(cluster.kubelet_hosts)} nodes (host {host.name} is number {index + 1})")
        cidrs[host.name] = ipaddress.ip_network((int(pod.network_address) + index * size, mask))
    return cidrs


def cluster_pod_routes(cluster: Cluster) -> list[dict[str, str]]:
    """The route to every kubelet host's pod network, via that host (each host's unit takes all but its own)."""
    return [{"name": h.name, "cidr": str(node_pod_cidr(cluster, h)), "via": str(h.address)}
            for h in cluster.kubelet_hosts]


def node_mask(cluster: Cluster) -> int:
    """The prefix length of one node's pod block."""
    pod = cluster.settings.pod_cidr
    mask = cluster.settings.node_cidr_mask_size
    if pod.version == 6 and mask <= pod.prefixlen:
        # node_cidr_mask_size is sized for IPv4; in a v6 range use a /64 (or 16 bits below the range).
        return max(pod.prefixlen + 16, 64)
    return mask


def paths() -> dict[str, str]:
    """Every remote path in kbuild.layout, by lower-case name, and the PKI table's, for templates (`paths.ca_cert`)."""
    found = {name.lower(): str(value) for name, value in vars(layout).items()
             if name.isupper() and isinstance(value, PurePosixPath)}
    return found | {f.template_name: str(f.remote) for f in HOST_FILES}


@dataclass(frozen=True)
class Facts:
    """Plain values derived once per host; flag tables and templates read only these."""

    cluster: Cluster
    host: Host

    @property
    def host_ip(self) -> str:
        return str(self.host.address)

    @property
    def host_url_ip(self) -> str:
        return format_host(self.host_ip)

    @property
    def etcd_servers(self) -> str:
        return ",".join(f"https://{format_host(str(h.address))}:{ETCD_CLIENT_PORT}"
                        for h in self.cluster.etcd_hosts)

    @property
    def etcd_initial_cluster(self) -> str:
        return ",".join(f"{h.name}=https://{format_host(str(h.address))}:{ETCD_PEER_PORT}"
                        for h in self.cluster.etcd_hosts)

    @property
    def loopback(self) -> str:
        return "[::1]" if self.host.address.version == 6 else "127.0.0.1"

    @property
    def service_account_issuer(self) -> str:
        # The in-cluster name of the API, as kubeadm sets it: stable across endpoint changes.
        return f"https://kubernetes.default.svc.{self.cluster.settings.cluster_domain}"

    @property
    def node_pod_cidr(self) -> IPNetwork:
        return node_pod_cidr(self.cluster, self.host)
