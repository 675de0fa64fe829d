"""Preflight checks: recorded probe output in, findings out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kbuild.plays.clusterfacts.preflight_probe import COMMAND as PROBE
from kbuild.plays.clusterfacts.preflight_probe import HostFacts
from kbuild.engine.ssh import Result, SSHTarget
from kbuild.plays.preflight import check_cluster, check_host, probe
from tests.unit.fakes import ScriptedHost

HEALTHY = """\
kernel Linux
arch x86_64
os Debian GNU/Linux 12 (bookworm)
systemd yes
hostname {name}
machine_id {mid}
cgroupfs cgroup2fs
cpus 2
mem_kb 4000000
swap_kb 0
disk_free_kb 20000000
listen 0016
module overlay
module br_netfilter
tool sh
tool tar
tool sha256sum
tool mktemp
tool stat
tool base64
tool systemctl
tool mount
tool iptables
tool curl
time {time}
"""


@pytest.fixture
def cluster(cluster_from):
    return cluster_from("""\
        cluster: {name: t}
        hosts:
          m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
          w1: {address: 198.18.0.11, roles: [worker]}
        """)


def facts(name="m1", mid="a" * 32, time=1000.0, **changes) -> HostFacts:
    text = HEALTHY.format(name=name, mid=mid, time=time)
    for key, value in changes.items():
        lines = [line for line in text.splitlines() if not line.startswith(key + " ")]
        lines += [f"{key} {v}" for v in (value if isinstance(value, list) else [value]) if v is not None]
        text = "\n".join(lines)
    return HostFacts.parse(text, sent=999.9, received=1000.1)


def messages(findings):
    return [f"{f.check}: {f.message}" for f in findings]


def test_healthy_hosts_pass(cluster):
    assert check_host(cluster, cluster.host("m1"), facts()) == []
    assert check_host(cluster, cluster.host("w1"), facts("w1", "b" * 32)) == []


def test_parse_ports_and_clock():
    f = facts(listen=["0016", "094B"])
    assert f.listening == {22, 2379}
    assert abs(f.clock_offset) < 1e-6


@pytest.mark.parametrize("host,changes,expected", [
    ("m1", {"arch": "aarch64"}, "arch: is arm64 but the inventory says arch: amd64 (hosts.m1.arch)"),
    ("m1", {"arch": "riscv64"}, "arch: architecture riscv64 is not supported"),
    ("m1", {"systemd": "no"}, "systemd: systemd is not running as the init system"),
    ("m1", {"mem_kb": "1000000"}, "memory: has 976 MB of memory, needs at least 1700 MB"),
    ("m1", {"cpus": "1"}, "cpus: has 1 CPU(s); a control plane needs at least 2"),
    ("m1", {"disk_free_kb": "100000"}, "disk: has 97 MB free under /var/lib"),
    ("w1", {"swap_kb": "2097152"}, "swap: swap is on (2048 MB)"),
    ("m1", {"listen": ["0016", "094B"]}, "ports: port 2379 (needed by etcd) is already in use by another program"),
    ("w1", {"listen": "280A"}, "ports: port 10250 (needed by kubelet) is already in use"),
    ("w1", {"module": ["overlay"]}, "modules: kernel module br_netfilter is neither loaded nor available"),
    ("w1", {"tool": ["sh", "tar"]}, "tools: missing required tools: sha256sum, mktemp, stat, base64, systemctl, mount, iptables"),
    ("m1", {"kernel": "FreeBSD"}, "os: runs FreeBSD; kbuild needs Linux"),
])
def test_each_problem_is_named(cluster, host, changes, expected):
    found = messages(check_host(cluster, cluster.host(host), facts(host, **changes)))
    assert any(m.startswith(expected) for m in found), found


def test_a_port_held_by_our_own_running_unit_is_fine(cluster):
    f = facts(listen=["094B", "094C"], active=["etcd"])
    assert check_host(cluster, cluster.host("m1"), f) == []


def all_in_one(cluster_from, settings: str):
    """A one-host cluster (m1 has every role) with these cluster settings (YAML flow mapping entries)."""
    return cluster_from(f"cluster: {{name: t, {settings}}}\nhosts:\n"
                        "  m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}\n")


def test_swap_tolerated_when_configured(cluster_from):
    cluster = all_in_one(cluster_from, "fail_swap_on: false")
    assert check_host(cluster, cluster.host("m1"), facts(swap_kb="2097152")) == []


def test_cluster_wide_checks(cluster):
    same = {"m1": facts("node", "c" * 32), "w1": facts("node", "c" * 32)}
    found = messages(check_cluster(cluster, same))
    assert any("same host name (node) as m1" in m for m in found)
    assert any("same machine id" in m for m in found)
    skewed = {"m1": facts("m1", "a" * 32, time=1000.0), "w1": facts("w1", "b" * 32, time=1010.0)}
    assert any(m.startswith("clock: clock is 10.0s ahead") for m in messages(check_cluster(cluster, skewed)))
    assert check_cluster(cluster, {"m1": facts("m1", "a" * 32), "w1": facts("w1", "b" * 32)}) == []


V1 = "runs cgroup v1, which the kubelet refuses by default (cgroup v1 is deprecated)"


def test_a_kubelet_host_on_cgroup_v1_is_refused_with_the_two_ways_out(cluster):
    f = facts("w1", "b" * 32, cgroupfs="tmpfs")  # what `stat -fc %T /sys/fs/cgroup` says of the v1 layout
    assert f.cgroupfs == "tmpfs"
    [finding] = check_host(cluster, cluster.host("w1"), f)
    assert f"{finding.check}: {finding.message}".startswith(f"cgroups: {V1}")
    assert "systemd.unified_cgroup_hierarchy=1" in finding.message
    assert "cluster.kubelet_config.failCgroupV1: false" in finding.message


@pytest.mark.parametrize("fail, refused", [("false", False), ("true", True)])
def test_failcgroupv1_in_the_inventory_decides_whether_v1_is_refused(cluster_from, fail, refused):
    cluster = all_in_one(cluster_from, f"kubelet_config: {{failCgroupV1: {fail}}}")
    found = check_host(cluster, cluster.host("m1"), facts(cgroupfs="tmpfs"))
    assert [f.check for f in found] == (["cgroups"] if refused else [])


def test_cgroup_v1_is_fine_where_no_kubelet_runs(cluster):
    assert check_host(cluster, cluster.host("m1"), facts(cgroupfs="tmpfs")) == []


@pytest.mark.parametrize("cgroupfs", ["cgroup2fs", None])  # cgroup v2, or a probe that could not tell
def test_no_cgroup_finding_on_cgroup_v2_or_when_unknown(cluster, cgroupfs):
    f = facts("w1", "b" * 32, cgroupfs=cgroupfs)
    assert f.cgroupfs == (cgroupfs or "")
    assert check_host(cluster, cluster.host("w1"), f) == []


def cgroup_mount_type() -> str:
    """What is mounted on /sys/fs/cgroup here, from the kernel's mount table (the last mount there wins)."""
    found = "sysfs"  # nothing mounted: the directory of /sys itself
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/sys/fs/cgroup":
            found = fields[fields.index("-") + 1]
    return found


def test_the_probe_reports_this_machine_s_cgroup_filesystem():
    out = subprocess.run(["sh", "-c", PROBE], capture_output=True, text=True, check=True).stdout
    # statfs names a cgroup v2 mount cgroup2fs; the v1 (and hybrid) layout is a tmpfs of per-controller mounts.
    expected = {"cgroup2": "cgroup2fs"}.get(cgroup_mount_type(), cgroup_mount_type())
    assert HostFacts.parse(out, sent=0.0, received=0.0).cgroupfs == expected


def test_probe_runs_the_script_on_the_host_and_reads_its_answer():
    # The whole path bootstrap takes: the script sent over the connection, run by a POSIX sh, its output parsed.
    def run_locally(host: str, command: str) -> Result:
        proc = subprocess.run(["sh", "-c", command], capture_output=True)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    log: list[tuple[str, str]] = []
    facts = probe(ScriptedHost(SSHTarget("m1", "198.18.0.10"), run_locally, log, {}))
    assert log == [("m1", PROBE)]
    assert facts.cpus >= 1 and facts.mem_mb > 0 and "sh" in facts.tools
    assert abs(facts.clock_offset) < 5  # this machine's clock against itself
