"""The lab bridge on the host: create it with the gateway address, recognise it as ours, delete it.

A bridge is marked as a lab's by its interface alias (`kbuild-lab:<name>`), so kbuild never
reuses or deletes an interface it did not create.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from kbuild.lab.errors import LabError
from kbuild.lab.proc import run

BRIDGE_NF_CALL_IPTABLES = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


def owner_tag(lab: str) -> str:
    return f"kbuild-lab:{lab}"


@dataclass(frozen=True)
class Interface:
    name: str
    kind: str  # "bridge", "veth", ... ("" for plain devices)
    alias: str
    up: bool
    addresses: tuple[ipaddress.IPv4Interface, ...]


def parse_ip_json(link_json: str, addr_json: str) -> dict[str, Interface]:
    """Interfaces from `ip -j -d link show` and `ip -j addr show`."""
    addresses: dict[str, list[ipaddress.IPv4Interface]] = {}
    for entry in json.loads(addr_json or "[]"):
        for info in entry.get("addr_info", []):
            if info.get("family") == "inet":
                addresses.setdefault(entry["ifname"], []).append(
                    ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}"))
    found: dict[str, Interface] = {}
    for entry in json.loads(link_json or "[]"):
        name = entry["ifname"]
        kind = (entry.get("linkinfo") or {}).get("info_kind", "")
        flags = entry.get("flags", [])
        found[name] = Interface(name, kind, entry.get("ifalias", ""), "UP" in flags,
                                tuple(addresses.get(name, [])))
    return found


def interfaces() -> dict[str, Interface]:
    return parse_ip_json(run(["ip", "-j", "-d", "link", "show"]).stdout, run(["ip", "-j", "addr", "show"]).stdout)


def address_conflicts(subnet: ipaddress.IPv4Network, wanted: list[ipaddress.IPv4Address], bridge: str,
                      found: dict[str, Interface]) -> list[str]:
    """Host interfaces (other than our bridge) that already hold one of the lab's addresses or its whole subnet."""
    problems: list[str] = []
    for iface in found.values():
        if iface.name == bridge:
            continue
        for address in iface.addresses:
            if address.ip in wanted:
                problems.append(f"{address.ip} is already an address of {iface.name}")
            elif address.network == subnet:
                problems.append(f"{subnet} is already the network of {iface.name}")
    return problems


def ensure_bridge(name: str, gateway_cidr: str, lab: str) -> bool:
    """Create the bridge with the gateway address and bring it up; return True if it was created."""
    tag = owner_tag(lab)
    current = interfaces().get(name)
    created = False
    if current is None:
        run(["ip", "link", "add", name, "type", "bridge"])
        run(["ip", "link", "set", "dev", name, "alias", tag])
        created = True
    elif current.alias != tag or current.kind != "bridge":
        raise LabError(f"interface {name} exists but was not made by kbuild lab {lab!r} "
                       f"(kind {current.kind or 'device'}, alias {current.alias!r}); remove it or pick another --name")
    gateway = ipaddress.IPv4Interface(gateway_cidr)
    if current is None or gateway not in current.addresses:
        run(["ip", "addr", "replace", gateway_cidr, "dev", name])
    run(["ip", "link", "set", "dev", name, "up"])
    return created


def delete_bridge(name: str, lab: str) -> bool:
    """Delete the bridge if it exists and is this lab's; return True if it was deleted."""
    current = interfaces().get(name)
    if current is None:
        return False
    if current.alias != owner_tag(lab):
        raise LabError(f"interface {name} was not made by kbuild lab {lab!r} (alias {current.alias!r}); "
                       "not deleting it")
    run(["ip", "link", "delete", name])
    return True


def bridged_traffic_filtered() -> bool:
    """True when the host sends bridged frames through iptables (br_netfilter on), so FORWARD rules apply."""
    try:
        return BRIDGE_NF_CALL_IPTABLES.read_text().strip() == "1"
    except OSError:
        return False
