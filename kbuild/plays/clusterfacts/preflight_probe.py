"""Fact: what preflight needs to know of a host (kernel, arch, OS, init, resources, ports held, modules, tools,
kbuild's units running, its clock), read by one read-only script whose output is `key value` lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kbuild.components import COMPONENTS, SERVICES

# Units kbuild installs: a port they hold is theirs, not a conflict, on a re-run.
KBUILD_UNITS = SERVICES
BASE_TOOLS = ("sh", "tar", "sha256sum", "mktemp", "stat", "base64", "systemctl", "mount")
COMPONENT_TOOLS = tuple(dict.fromkeys(tool for c in COMPONENTS for tool in c.host_tools))
DOWNLOAD_TOOLS = ("curl", "wget")  # one of them, for artifacts.transfer: pull
MODULES = ("overlay", "br_netfilter")

COMMAND = r"""
echo "kernel $(uname -s)"
echo "arch $(uname -m)"
( . /etc/os-release 2>/dev/null; echo "os ${PRETTY_NAME:-unknown}" )
if [ -d /run/systemd/system ]; then echo "systemd yes"; else echo "systemd no"; fi
echo "hostname $(hostname 2>/dev/null || cat /etc/hostname)"
echo "machine_id $(cat /etc/machine-id 2>/dev/null)"
echo "cgroupfs $(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
echo "cpus $(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)"
awk '/^MemTotal:/ {print "mem_kb " $2}' /proc/meminfo
echo "swap_kb $(awk 'NR > 1 {s += $3} END {print s + 0}' /proc/swaps)"
mkdir -p /var/lib 2>/dev/null; echo "disk_free_kb $(df -Pk /var/lib | awk 'NR == 2 {print $4}')"
for f in /proc/net/tcp /proc/net/tcp6; do
  [ -r "$f" ] && awk 'NR > 1 && $4 == "0A" {split($2, a, ":"); print "listen " a[2]}' "$f"
done
grep -qw overlay /proc/filesystems 2>/dev/null && echo "module overlay"
for m in MODULES; do
  if [ -d "/sys/module/$m" ] || grep -q "^$m " /proc/modules 2>/dev/null \
     || modprobe -n "$m" >/dev/null 2>&1 || grep -qs "/$m.ko" "/lib/modules/$(uname -r)/modules.builtin"; then
    echo "module $m"
  fi
done
[ -d /proc/sys/net/bridge ] && echo "module br_netfilter"
for t in TOOLS; do
  command -v "$t" >/dev/null 2>&1 && echo "tool $t"
done
for u in UNITS; do
  [ "$(systemctl is-active "$u" 2>/dev/null)" = active ] && echo "active $u"
done
echo "time $(date +%s.%N)"
""".replace("MODULES", " ".join(MODULES)).replace("TOOLS", " ".join(BASE_TOOLS + COMPONENT_TOOLS + DOWNLOAD_TOOLS)) \
   .replace("UNITS", " ".join(KBUILD_UNITS))

_TEXT = ("kernel", "arch", "os", "hostname", "machine_id", "cgroupfs")
_KB = {"mem_kb": "mem_mb", "disk_free_kb": "disk_free_mb"}  # reported in kB, kept in MB


@dataclass(frozen=True)
class HostFacts:
    kernel: str = ""
    arch: str = ""
    os: str = ""
    systemd: bool = False
    hostname: str = ""
    machine_id: str = ""
    cgroupfs: str = ""  # cgroup2fs: cgroup v2; tmpfs: the v1 (or hybrid) layout
    cpus: int = 0
    mem_mb: int = 0
    swap_kb: int = 0
    disk_free_mb: int = 0
    listening: frozenset[int] = field(default_factory=frozenset)
    modules: frozenset[str] = field(default_factory=frozenset)
    tools: frozenset[str] = field(default_factory=frozenset)
    active_units: frozenset[str] = field(default_factory=frozenset)
    clock_offset: float = 0.0  # host clock minus controller clock, seconds (round trip accounted for)

    @classmethod
    def parse(cls, output: str, *, sent: float = 0.0, received: float = 0.0) -> HostFacts:
        """The probe's output; `sent`/`received`: this machine's clock around the round trip (0: no clock
        check). A line it cannot read is left out, so a check sees the fact as missing, never a crash."""
        values: dict[str, Any] = {}
        sets: dict[str, set[Any]] = {"listening": set(), "modules": set(), "tools": set(), "active_units": set()}
        for line in output.splitlines():
            key, _, value = line.partition(" ")
            value = value.strip()
            if key in _TEXT:
                values[key] = value
            elif key == "systemd":
                values["systemd"] = value == "yes"
            elif key in ("cpus", "swap_kb") and value.isdigit():
                values[key] = int(value)
            elif key in _KB and value.isdigit():
                values[_KB[key]] = int(value) // 1024
            elif key == "listen":
                try:
                    sets["listening"].add(int(value, 16))
                except ValueError:
                    pass
            elif key in ("module", "tool", "active"):
                sets[{"module": "modules", "tool": "tools", "active": "active_units"}[key]].add(value)
            elif key == "time" and sent:
                try:
                    values["clock_offset"] = float(value) - (sent + received) / 2
                except ValueError:
                    pass
        return cls(**values, **{k: frozenset(v) for k, v in sets.items()})
