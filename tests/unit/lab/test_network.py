"""Reading `ip -j` output, spotting address clashes, and the host-level knobs (modules, FORWARD rule)."""

from __future__ import annotations

import ipaddress
import json

from kbuild.lab import hostknobs
from kbuild.lab.network import address_conflicts, owner_tag, parse_ip_json

LINKS = json.dumps([
    {"ifname": "lo", "flags": ["LOOPBACK", "UP"]},
    {"ifname": "eth0", "flags": ["BROADCAST", "UP"]},
    {"ifname": "kb-lab", "flags": ["BROADCAST", "UP"], "ifalias": "kbuild-lab:lab",
     "linkinfo": {"info_kind": "bridge"}},
    {"ifname": "docker0", "flags": ["BROADCAST"], "linkinfo": {"info_kind": "bridge"}},
])
ADDRS = json.dumps([
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24},
                                     {"family": "inet6", "local": "fd00::2", "prefixlen": 64}]},
    {"ifname": "kb-lab", "addr_info": [{"family": "inet", "local": "198.18.0.1", "prefixlen": 24}]},
])


def test_parse_ip_json():
    found = parse_ip_json(LINKS, ADDRS)
    lab = found["kb-lab"]
    assert (lab.kind, lab.alias, lab.up) == ("bridge", owner_tag("lab"), True)
    assert lab.addresses == (ipaddress.IPv4Interface("198.18.0.1/24"),)
    assert found["eth0"].addresses == (ipaddress.IPv4Interface("192.0.2.2/24"),)  # IPv6 ignored
    assert (found["docker0"].kind, found["docker0"].up, found["docker0"].alias) == ("bridge", False, "")


def test_address_conflicts():
    found = parse_ip_json(LINKS, ADDRS)
    same = ipaddress.IPv4Network("198.18.0.0/24")
    addresses = [ipaddress.IPv4Address("198.18.0.1"), ipaddress.IPv4Address("198.18.0.10")]
    assert address_conflicts(same, addresses, "kb-other", found) == ["198.18.0.1 is already an address of kb-lab"]
    assert address_conflicts(same, addresses, "kb-lab", found) == []  # our own bridge is fine
    # a smaller lab network inside the default one, with other addresses, can live beside it
    inner = ipaddress.IPv4Network("198.18.0.192/26")
    assert address_conflicts(inner, [ipaddress.IPv4Address("198.18.0.193")], "kb-kbtest", found) == []
    assert address_conflicts(ipaddress.IPv4Network("192.0.2.0/24"), [ipaddress.IPv4Address("192.0.2.1")],
                             "kb-x", found) == ["192.0.2.0/24 is already the network of eth0"]


def test_forward_rule_is_tagged_with_the_lab():
    assert hostknobs.forward_rule("kb-lab", "lab") == [
        "FORWARD", "-i", "kb-lab", "-o", "kb-lab", "-m", "comment", "--comment", "kbuild-lab:lab", "-j", "ACCEPT"]
    assert hostknobs.forward_drops("-P FORWARD DROP\n-N DOCKER-USER\n")
    assert not hostknobs.forward_drops("-P FORWARD ACCEPT\n-A FORWARD -j DROP-ISH\n")


def test_missing_modules_judged_by_what_they_provide(tmp_path):
    (tmp_path / "filesystems").write_text("nodev\tproc\n\text4\n")
    assert hostknobs.missing_modules(tmp_path) == ["overlay", "br_netfilter"]
    (tmp_path / "filesystems").write_text("nodev\tproc\nnodev\toverlay\n")
    (tmp_path / "sys/net/bridge").mkdir(parents=True)
    assert hostknobs.missing_modules(tmp_path) == []
