"""What runs where: component versions read from the binaries on each host (one probe per host)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kbuild import layout
from kbuild.engine.facts import FACT_FUNCTIONS, q
from kbuild.engine.ssh import Connection
from kbuild.errors import KbuildError
from kbuild.inventory import Cluster, Host
from kbuild.plays.clusterfacts.version import Version

@dataclass(frozen=True)
class Component:
    """A long-running component kbuild upgrades: its binary, its unit, and which inventory version it follows."""

    name: str
    follows: str  # field of cluster.versions: kubernetes | etcd | containerd
    role: str  # etcd | control-plane | node: which hosts run it

    @property
    def binary(self) -> str:
        return str(layout.binary_path(self.name))

    @property
    def service(self) -> str:
        return self.name


COMPONENTS = (
    Component("etcd", "etcd", "etcd"),
    Component("kube-apiserver", "kubernetes", "control-plane"),
    Component("kube-controller-manager", "kubernetes", "control-plane"),
    Component("kube-scheduler", "kubernetes", "control-plane"),
    Component("containerd", "containerd", "node"),
    Component("kubelet", "kubernetes", "node"),
    Component("kube-proxy", "kubernetes", "node"),
)
BY_NAME = {c.name: c for c in COMPONENTS}


def host_components(host: Host) -> list[Component]:
    has = {"etcd": host.is_etcd, "control-plane": host.is_control_plane, "node": host.runs_kubelet}
    return [c for c in COMPONENTS if has[c.role]]


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


# -- the probe: one shell script per host, parsed by a pure function -------------------------------------

MARK = "@@kbuild-version"


def probe_script(host: Host, known: dict[str, tuple[str, str]] | None = None) -> str:
    """Version, unit state, process start and binary mtime of every component the host runs.

    `known` maps a component to (sha256, version) of a binary kbuild already knows: when the file on
    the host has that checksum (read from the engine's upload stamp, no hashing), its version is
    known without running it, which keeps a no-op `kbuild bootstrap` free of process spawns.
    """
    known = known or {}
    lines = [FACT_FUNCTIONS]
    for component in host_components(host):
        b, name, unit = q(component.binary), component.name, q(component.service)
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
             f'"$(systemctl show -P ExecMainStartTimestamp --timestamp=unix {unit} 2>/dev/null || true)"'),
            f'printf "{MARK} {name} mtime %s\\n" "$(stat -c %Y {b} 2>/dev/null || true)"',
        ]
    return "\n".join(lines)


def parse_probe(host: str, output: str) -> HostVersions:
    """The probe's output -> what the host has. Tests feed recorded output here."""
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


def detect(ctx, hosts: list[Host], known: dict[str, dict[str, tuple[str, str]]] | None = None  # noqa: ANN001
           ) -> dict[str, HostVersions]:
    """Probe `hosts` in parallel (one round trip each); an unreachable or failing host is an error,
    since an upgrade decided without knowing every host's versions could break the skew policy."""
    results: dict[str, HostVersions] = {}
    by_name = {h.name: h for h in hosts}

    def probe(conn: Connection) -> str:
        host = by_name[conn.target.name]
        result = conn.run(probe_script(host, (known or {}).get(host.name)))
        if not result.ok:
            raise KbuildError(f"{host.name}: reading component versions failed (exit {result.rc}): "
                              f"{result.err.strip() or result.out.strip()[-300:]}")
        found = parse_probe(host.name, result.out)
        results[host.name] = found
        return ", ".join(f"{c} {i.describe()}" for c, i in found.components.items()) or "no components"

    outcomes = ctx.runner.each("upgrade-versions", list(by_name), probe,
                               describe="component versions from the binaries on every host")
    bad = {n: o for n, o in outcomes.items() if n not in results}
    if bad:
        lines = [f"  {n}: {o.status.value}: {(o.message or '').strip()}" for n, o in bad.items()]
        raise KbuildError("cannot read the versions running on every host, so no upgrade can be planned:\n"
                          + "\n".join(lines), hint="make every host reachable (kbuild ping -i INV) and run again")
    return results


def cluster_target(cluster: Cluster) -> dict[str, Version]:
    """The version each component should run, from the (possibly --to-adjusted) inventory."""
    v = cluster.settings.versions
    follows = {"kubernetes": Version.parse(v.kubernetes), "etcd": Version.parse(v.etcd),
               "containerd": Version.parse(v.containerd)}
    return {c.name: follows[c.follows] for c in COMPONENTS}
