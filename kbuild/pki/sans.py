"""Subject alternative names: a name-or-IP set, its parsing, and the SANs each kind of certificate needs."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from kbuild.inventory import Cluster, Host
from kbuild.inventory.model import DNS_NAME
from kbuild.pki.errors import PKIError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AltNames:
    """DNS names and IP addresses, deduplicated, in first-seen order (so issued certificates are stable)."""

    dns: tuple[str, ...] = ()
    ips: tuple[IPAddress, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dns or self.ips)

    def as_strings(self) -> list[str]:
        return [*self.dns, *(str(ip) for ip in self.ips)]

    def diff(self, other: AltNames) -> tuple[list[str], list[str]]:
        """(in self but not other, in other but not self), as text."""
        mine, theirs = set(self.as_strings()), set(other.as_strings())
        return ([s for s in self.as_strings() if s not in theirs], [s for s in other.as_strings() if s not in mine])

    def same_set(self, other: AltNames) -> bool:
        return set(self.dns) == set(other.dns) and set(self.ips) == set(other.ips)


def alt_names(values: Iterable[str | IPAddress], *, source: str = "SAN") -> AltNames:
    """Sort names from addresses; a value that is neither raises PKIError naming `source`."""
    dns: dict[str, None] = {}
    ips: dict[IPAddress, None] = {}
    for value in values:
        if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            ips[value] = None
            continue
        text = str(value).strip()
        try:
            ips[ipaddress.ip_address(text)] = None
            continue
        except ValueError:
            pass
        name = text.lower().rstrip(".")
        # All-digit dotted strings would be read as (bad) addresses by clients, so they are not names.
        if not DNS_NAME.match(name) or name.replace(".", "").isdigit():
            raise PKIError(f"{source}: {text!r} is neither a DNS name nor an IP address",
                           hint="fix it in the inventory (cluster.extra_sans / cluster.api_endpoint)")
        dns[name] = None
    return AltNames(tuple(dns), tuple(ips))


# -- the SANs of each certificate kind: functions of (cluster, host) named in the certificate table --


def apiserver_sans(cluster: Cluster, host: Host | None) -> AltNames:
    """One shared serving certificate: valid whichever master (or the load balancer) a client reaches."""
    domain = cluster.settings.cluster_domain
    values: list[str | IPAddress] = [
        "kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{domain}",
        "localhost", cluster.kubernetes_service_ip, ipaddress.ip_address("127.0.0.1"),
    ]
    for master in cluster.control_plane_hosts:
        values += [master.name, master.address]
    values.append(cluster.api_endpoint_host)
    names = alt_names(values, source="cluster.api_endpoint")
    extra = alt_names(cluster.settings.extra_sans, source="cluster.extra_sans")
    return alt_names([*names.dns, *extra.dns, *names.ips, *extra.ips])


def etcd_sans(cluster: Cluster, host: Host | None) -> AltNames:
    """etcd serves (and peers) on the host's address and on loopback for local clients."""
    assert host is not None
    return alt_names([host.name, "localhost", host.address, ipaddress.ip_address("127.0.0.1")])


def kubelet_sans(cluster: Cluster, host: Host | None) -> AltNames:
    """The apiserver reaches a kubelet by the node's name or address (its preferred address types)."""
    assert host is not None
    return alt_names([host.name, host.address])
