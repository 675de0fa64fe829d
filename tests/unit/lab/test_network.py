"""Reading `ip -j` output, spotting address clashes, and the host knobs (modules, kernel settings, FORWARD rule)."""

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


def fake_proc(root, values: dict[str, str]):
    """A /proc tree holding these sysctls, as the kernel shows them (value and newline)."""
    for name, value in values.items():
        path = root / "sys" / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return root


def read_proc(root, name: str) -> str:
    return (root / "sys" / name.replace(".", "/")).read_text()


def test_kernel_settings_the_kubelet_wants_are_set_where_they_differ(tmp_path):
    wanted = hostknobs.KUBELET_KERNEL_SETTINGS
    current = {**wanted, "vm.overcommit_memory": "0", "kernel.panic": "0"}
    proc = fake_proc(tmp_path, current)
    assert hostknobs.set_kernel_settings(proc) == ["vm.overcommit_memory 0 -> 1", "kernel.panic 0 -> 10"]
    assert {name: read_proc(proc, name) for name in wanted} == {name: f"{value}\n" for name, value in wanted.items()}
    assert hostknobs.set_kernel_settings(proc) == []  # already right: nothing to change, nothing said


def test_shared_limits_are_raised_to_their_minimums_and_never_lowered(tmp_path):
    proc = fake_proc(tmp_path, {**hostknobs.KUBELET_KERNEL_SETTINGS, "fs.inotify.max_user_instances": "128",
                                "fs.inotify.max_user_watches": "1048576"})
    # The host's default of 128 instances is what left kubelets with "inotify_init: too many open files".
    assert hostknobs.set_kernel_settings(proc) == ["fs.inotify.max_user_instances 128 -> 8192"]
    assert read_proc(proc, "fs.inotify.max_user_instances") == "8192\n"
    assert read_proc(proc, "fs.inotify.max_user_watches") == "1048576\n"  # already above: kept
    assert hostknobs.set_kernel_settings(proc) == []


def test_kernel_settings_this_kernel_lacks_or_refuses_are_left_to_the_kubelet(tmp_path):
    proc = fake_proc(tmp_path, {"vm.panic_on_oom": "1"})  # and no other setting: not this kernel's
    (proc / "sys/kernel/panic").mkdir(parents=True)  # there, but reading and writing fail (OSError), as root too
    assert hostknobs.set_kernel_settings(proc) == ["vm.panic_on_oom 1 -> 0"]
    assert read_proc(proc, "vm.panic_on_oom") == "0\n"
