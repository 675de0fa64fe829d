"""Preflight: is every host fit to run its roles? One read-only probe per host, every problem reported at once.

The probe is a cluster fact (kbuild.plays.clusterfacts.preflight_probe); the checks are pure functions
from those facts, so they are tested with recorded output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kbuild import components as table
from kbuild.engine.report import Event
from kbuild.engine.session import one_line
from kbuild.engine.ssh import Connection
from kbuild.errors import ExitCode, KbuildError
from kbuild.inventory import Cluster, Host
from kbuild.plays.clusterfacts import preflight_probe
from kbuild.plays.clusterfacts.preflight_probe import BASE_TOOLS, DOWNLOAD_TOOLS, MODULES, HostFacts
from kbuild.plays.components import listening_ports
from kbuild.plays.phases import Context, PhaseFailed
from kbuild.render import units_for

ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
MIN_MEMORY_MB = {"control-plane": 1700, "default": 512}  # kubeadm's control-plane minimum
MIN_CPUS_CONTROL_PLANE = 2
MIN_FREE_DISK_MB = 2048
MAX_CLOCK_SKEW_S = 2.0

@dataclass(frozen=True)
class PreflightFinding:
    host: str
    check: str
    message: str
    severity: str = "error"  # or "warning"


def required_ports(cluster: Cluster, host: Host) -> dict[int, str]:
    """Ports a host's units will listen on (from the cluster settings), with the unit that will own each."""
    ports = listening_ports(cluster)
    return {port: unit for unit in units_for(host, cluster) for port in ports.get(unit, ())}


def check_host(cluster: Cluster, host: Host, facts: HostFacts) -> list[PreflightFinding]:
    found: list[PreflightFinding] = []

    def problem(check: str, message: str, severity: str = "error") -> None:
        found.append(PreflightFinding(host.name, check, message, severity))

    if facts.kernel and facts.kernel != "Linux":
        problem("os", f"runs {facts.kernel}; kbuild needs Linux")
    arch = ARCH.get(facts.arch)
    if arch is None:
        problem("arch", f"architecture {facts.arch or 'unknown'} is not supported (amd64, arm64)")
    elif arch != host.arch:
        problem("arch", f"is {arch} but the inventory says arch: {host.arch} (hosts.{host.name}.arch)")
    if not facts.systemd:
        problem("systemd", "systemd is not running as the init system; kbuild installs systemd units")
    need_mem = MIN_MEMORY_MB["control-plane" if host.is_control_plane else "default"]
    if facts.mem_mb < need_mem:
        problem("memory", f"has {facts.mem_mb} MB of memory, needs at least {need_mem} MB")
    if host.is_control_plane and facts.cpus < MIN_CPUS_CONTROL_PLANE:
        problem("cpus", f"has {facts.cpus} CPU(s); a control plane needs at least {MIN_CPUS_CONTROL_PLANE}")
    if facts.disk_free_mb < MIN_FREE_DISK_MB:
        problem("disk", f"has {facts.disk_free_mb} MB free under /var/lib, needs at least {MIN_FREE_DISK_MB} MB")
    if host.runs_kubelet and facts.swap_kb and cluster.settings.fail_swap_on:
        problem("swap", f"swap is on ({facts.swap_kb // 1024} MB): turn it off (swapoff -a, and remove it from "
                        "/etc/fstab), or set cluster.fail_swap_on: false to let kubelet run with swap")
    for port, unit in sorted(required_ports(cluster, host).items()):
        if port in facts.listening and unit not in facts.active_units:
            problem("ports", f"port {port} (needed by {unit}) is already in use by another program")
    if host.runs_kubelet and facts.cgroupfs and facts.cgroupfs != "cgroup2fs" \
            and cluster.settings.kubelet_config.get("failCgroupV1", True) is not False:
        problem("cgroups", "runs cgroup v1, which the kubelet refuses by default (cgroup v1 is deprecated): boot "
                           "it with cgroup v2 (systemd.unified_cgroup_hierarchy=1), or set "
                           "cluster.kubelet_config.failCgroupV1: false to run on v1 anyway")
    if host.runs_kubelet:
        for module in MODULES:
            if module not in facts.modules:
                problem("modules", f"kernel module {module} is neither loaded nor available "
                                   f"(containerd and kube-proxy need it)")
    tools = BASE_TOOLS + table.host_tools(host)
    missing = [t for t in tools if t not in facts.tools]
    if cluster.artifacts.transfer == "pull" and not set(DOWNLOAD_TOOLS) & facts.tools:
        missing.append("curl or wget (artifacts.transfer: pull)")
    if missing:
        problem("tools", f"missing required tools: {', '.join(missing)}")
    return found


def check_cluster(cluster: Cluster, facts: dict[str, HostFacts]) -> list[PreflightFinding]:
    """Checks across hosts: unique host names and machine ids, clock skew."""
    found: list[PreflightFinding] = []
    for attribute, what, fix in (
        ("hostname", "host name", "give each host its own (hostnamectl set-hostname)"),
        ("machine_id", "machine id", "cloned machines: regenerate /etc/machine-id on each"),
    ):
        seen: dict[str, str] = {}
        for name, f in facts.items():
            value = getattr(f, attribute)
            if not value:
                continue
            if value in seen:
                found.append(PreflightFinding(name, attribute,
                                              f"has the same {what} ({value}) as {seen[value]}: {fix}"))
            else:
                seen[value] = name
    if len(facts) > 1:
        offsets = {name: f.clock_offset for name, f in facts.items()}
        spread = max(offsets.values()) - min(offsets.values())
        if spread > MAX_CLOCK_SKEW_S:
            ahead = max(offsets, key=offsets.__getitem__)
            behind = min(offsets, key=offsets.__getitem__)
            found.append(PreflightFinding(ahead, "clock", f"clock is {spread:.1f}s ahead of {behind}'s; etcd and "
                                          "certificate checks need synchronised clocks (run NTP/chrony everywhere)"))
    return found


def probe(conn: Connection) -> HostFacts:
    """The host's facts, its clock read against this machine's across the round trip."""
    sent = time.time()
    result = conn.run(preflight_probe.COMMAND)
    received = time.time()
    if not result.ok and not result.out:
        raise KbuildError(f"{conn.target.name}: the preflight probe failed: {one_line(result.err)[-300:]}")
    return HostFacts.parse(result.out, sent=sent, received=received)


class PreflightFailed(KbuildError):
    exit_code = ExitCode.PREFLIGHT

    def __init__(self, findings: list[PreflightFinding]) -> None:
        errors = [f for f in findings if f.severity == "error"]
        lines = [f"preflight found {len(errors)} problem{'s' if len(errors) != 1 else ''}; nothing was changed:"]
        lines += [f"  {f.host}: [{f.check}] {f.message}" for f in errors]
        super().__init__("\n".join(lines))
        self.findings = findings


def run(ctx: Context) -> list[PreflightFinding]:
    """Probe every selected host, check them all, and stop with every problem listed before anything changes."""
    cluster = ctx.cluster
    facts: dict[str, HostFacts] = {}

    def task(conn: Connection) -> str:
        facts[conn.target.name] = probe(conn)
        f = facts[conn.target.name]
        return f"{ARCH.get(f.arch, f.arch)}, {f.os}, {f.cpus} CPU, {f.mem_mb} MB"

    outcomes = ctx.session.each("preflight", [h.name for h in ctx.session.hosts], task,
                               describe="checking every host before anything changes")
    unreachable = [n for n, o in outcomes.items() if o.status.value in ("unreachable", "failed")]
    findings: list[PreflightFinding] = []
    for host in ctx.session.hosts:
        if host.name in facts:
            findings += check_host(cluster, host, facts[host.name])
    findings += check_cluster(cluster, facts)
    for finding in findings:
        ctx.reporter.emit(Event("preflight", host=finding.host, phase="preflight", status=finding.severity,
                                resource=finding.check, message=finding.message))
    if unreachable:
        raise PhaseFailed("preflight", outcomes)
    if any(f.severity == "error" for f in findings):
        raise PreflightFailed(findings)
    return findings
