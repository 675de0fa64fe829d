"""Fact: the components installed on a host, each with the version its binary reports, whether its unit runs,
and whether the running process is older than the binary (a restart still owed). One script per host."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from kbuild.engine.facts import FACT_FUNCTIONS, q
from kbuild.engine import shell
from kbuild.plays.clusterfacts.version import Version

MARK = "@@kbuild-version"


@dataclass(frozen=True)
class Installed:
    """One component as found on a host."""

    component: str
    version: Version | None  # None: no binary (or one that does not say its version)
    active: bool = False
    stale: bool = False  # the binary is newer than the running process: a restart is still owed
    raw: str = ""  # what the binary printed, for messages

    @property
    def present(self) -> bool:
        return self.version is not None

    def at(self, version: Version) -> bool:
        """Fully at `version`: that binary, running, and running that binary (not an older process)."""
        return self.version == version and self.active and not self.stale

    def describe(self) -> str:
        if self.version is None:
            return "not installed"
        state = "" if self.active else " (not running)"
        if self.active and self.stale:
            state = " (binary replaced, restart pending)"
        return f"{self.version}{state}"


@dataclass(frozen=True)
class HostVersions:
    host: str
    components: dict[str, Installed] = field(default_factory=dict)

    def get(self, component: str) -> Installed | None:
        return self.components.get(component)

    def describe(self) -> str:
        return ", ".join(f"{c} {i.describe()}" for c, i in self.components.items()) or "no components"


@dataclass(frozen=True)
class Probed:
    """A component to look for: its name, its binary's path on the host and its systemd unit."""

    name: str
    binary: str
    unit: str


def start_time_command(unit: str) -> str:
    """Prints when `unit`'s main process started, as @seconds since the epoch by the host's own clock."""
    return shell.command("systemctl", "show", "-P", "ExecMainStartTimestamp", "--timestamp=unix", unit)


def command(components: Iterable[Probed], known: dict[str, tuple[str, str]] | None = None) -> str:
    """Version, unit state, process start and binary mtime of each component.

    `known` maps a component to (sha256, version) of a binary kbuild already knows: when the file on
    the host has that checksum (read from the engine's upload stamp, no hashing), its version is
    known without running it, which keeps a no-op `kbuild bootstrap` free of process spawns.
    """
    known = known or {}
    lines = [FACT_FUNCTIONS]
    for component in components:
        b, name, unit = q(component.binary), component.name, q(component.unit)
        sha_version = known.get(name)
        version = f'v=$({b} --version 2>&1 | head -n 3 | tr "\\n" " ")'
        if sha_version:
            sha, ver = sha_version
            version = f'if [ "$(kb_sum {b})" = {q(sha)} ]; then v={q("known " + ver)}; else {version}; fi'
        lines += [
            f"if [ -x {b} ]; then {version}; else v=absent; fi",
            f'printf "{MARK} {name} version %s\\n" "$v"',
            f'printf "{MARK} {name} active %s\\n" "$(systemctl is-active {unit} 2>/dev/null || true)"',
            (f'printf "{MARK} {name} started %s\\n" '
             f'"$({start_time_command(component.unit)} 2>/dev/null || true)"'),
            f'printf "{MARK} {name} mtime %s\\n" "$(stat -c %Y {b} 2>/dev/null || true)"',
        ]
    return "\n".join(lines)


def parse(host: str, output: str) -> HostVersions:
    """The script's output -> what the host has. Tests feed recorded output here."""
    fields: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        if not line.startswith(MARK + " "):
            continue
        parts = line[len(MARK) + 1:].split(" ", 2)
        if len(parts) < 2:
            continue
        component, key = parts[0], parts[1]
        fields.setdefault(component, {})[key] = parts[2].strip() if len(parts) > 2 else ""
    found: dict[str, Installed] = {}
    for component, values in fields.items():
        raw = values.get("version", "absent")
        version = None if raw == "absent" else Version.find(raw.removeprefix("known "))
        active = values.get("active") == "active"
        started = _int(values.get("started", "").lstrip("@"))
        mtime = _int(values.get("mtime", ""))
        # Strictly newer: an upload and a restart within the same second is the normal case, not a stale one.
        stale = active and started is not None and mtime is not None and mtime > started
        found[component] = Installed(component, version, active, stale, raw)
    return HostVersions(host, found)


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
