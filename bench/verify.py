"""End-state checks on the hosts, out of band: a tool that skipped work fails here and its run does not count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench import workload as wl
from bench.workload import Expected, Host

PROBE_SCRIPT = f"""
stat_line() {{ stat -c '%a %U:%G' "$1" 2>/dev/null || echo absent; }}
sum() {{ if [ -f "$1" ]; then sha256sum "$1" | cut -c1-64; else echo absent; fi; }}
echo "dir $(stat_line {wl.CONF_DIR})"
for f in {wl.CONF_DIR}/*; do [ -e "$f" ] && echo "conf $f $(stat_line "$f") $(sum "$f")"; done
echo "blob $(stat_line {wl.BLOB_PATH}) $(sum {wl.BLOB_PATH})"
echo "unit $(stat_line {wl.UNIT_PATH}) $(sum {wl.UNIT_PATH})"
echo "enabled $(systemctl is-enabled {wl.SERVICE} 2>/dev/null || true)"
echo "active $(systemctl is-active {wl.SERVICE} 2>/dev/null || true)"
echo "invocation $(systemctl show -p InvocationID --value {wl.SERVICE} 2>/dev/null)"
echo "seen $(sum {wl.SEEN})"
echo "sysctl $(cat /proc/sys/{wl.SYSCTL_KEY.replace('.', '/')})"
echo "persisted $(sed -n 's/^ *{wl.SYSCTL_KEY} *= *//p' {wl.SYSCTL_FILE} 2>/dev/null | tail -n1)"
"""


@dataclass(frozen=True)
class HostState:
    """What the probe found on one host."""

    lines: dict[str, str]  # first word -> rest, for the single-valued lines
    conf: dict[str, str]  # path -> "mode owner:group sha256"

    @classmethod
    def parse(cls, output: str) -> HostState:
        lines: dict[str, str] = {}
        conf: dict[str, str] = {}
        for line in output.splitlines():
            key, _, rest = line.partition(" ")
            if key == "conf":
                path, _, value = rest.partition(" ")
                conf[path] = value
            elif key:
                lines[key] = rest.strip()
        return cls(lines, conf)

    @property
    def invocation(self) -> str:
        return self.lines.get("invocation", "")


def problems(state: HostState, want: Expected) -> list[str]:
    """Every way the host differs from the desired state (empty when it matches)."""
    found: list[str] = []

    def expect(key: str, value: str, what: str) -> None:
        got = state.lines.get(key, "")
        if got != value:
            found.append(f"{what}: expected {value!r}, found {got!r}")

    expect("dir", f"{wl.CONF_DIR_MODE:o} root:root", f"directory {wl.CONF_DIR}")
    for path, sha in want.conf.items():
        wanted = f"{wl.CONF_MODE:o} root:root {sha}"
        if state.conf.get(path) != wanted:
            found.append(f"file {path}: expected {wanted!r}, found {state.conf.get(path, 'absent')!r}")
    for extra in sorted(set(state.conf) - set(want.conf)):
        found.append(f"file {extra}: not part of the desired state")
    expect("blob", f"{wl.BLOB_MODE:o} root:root {want.blob_sha256}", f"binary {wl.BLOB_PATH}")
    expect("unit", f"{wl.UNIT_MODE:o} root:root {want.unit_sha256}", f"unit {wl.UNIT_PATH}")
    expect("enabled", "enabled", f"service {wl.SERVICE} enabled")
    expect("active", "active", f"service {wl.SERVICE} active")
    expect("seen", want.seen_sha256, f"service {wl.SERVICE} started with the current {wl.conf_path(0)}")
    expect("sysctl", wl.SYSCTL_VALUE, f"sysctl {wl.SYSCTL_KEY}")
    expect("persisted", wl.SYSCTL_VALUE, f"sysctl {wl.SYSCTL_KEY} in {wl.SYSCTL_FILE}")
    return found


def judge(states: dict[str, HostState], hosts: Sequence[Host], wants: dict[str, Expected], *,
          restarted: bool | None, before: dict[str, HostState] | None = None) -> list[str]:
    """What is wrong on every host (as probed by PROBE_SCRIPT), as "host: problem" lines.

    `restarted`: True when the service must have restarted since `before` (a changed file it
    reads), False when it must not have (a no-op run), None when either is fine (a first run).
    """
    found: list[str] = []
    for host in hosts:
        state = states[host.name]
        found += [f"{host.name}: {p}" for p in problems(state, wants[host.name])]
        if before is not None and restarted is not None:
            same = state.invocation == before[host.name].invocation
            if restarted and same:
                found.append(f"{host.name}: service {wl.SERVICE} was not restarted after its config changed")
            if not restarted and not same:
                found.append(f"{host.name}: service {wl.SERVICE} was restarted by a run that should change nothing")
    return found
