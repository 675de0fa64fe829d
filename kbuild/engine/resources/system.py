"""System state: systemd services, sysctls, kernel modules, routes, and guarded commands."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from kbuild.engine.facts import (ExistsQuery, FactQuery, GuardFact, GuardQuery, ModuleFact, ModuleQuery, RouteFact,
                                 RouteQuery, ServiceFact, ServiceQuery, SysctlFact, SysctlQuery, q)
from kbuild.engine.resources.base import Action, Resource
from kbuild.engine.shell import command


@dataclass(frozen=True)
class Service(Resource):
    """A systemd service that should be enabled and running (or stopped and disabled).

    Restarts are not a state: a service restarts when a resource that notifies it changed
    (the runner's handlers), and not at all when this run just started it.
    """

    name: str
    enabled: bool = True
    running: bool = True
    notify: tuple[str, ...] = field(default=())
    kind = "service"

    @property
    def key(self) -> str:
        return f"service:{self.name}"

    def fact_query(self, *, with_content: bool = False) -> ServiceQuery:
        return ServiceQuery(self.name)

    def changes(self, fact: ServiceFact) -> list[str]:
        found = []
        if self.enabled != fact.is_enabled and fact.enabled != "static":
            found.append("enable" if self.enabled else "disable")
        if self.running != fact.running:
            found.append("start" if self.running else "stop")
        return found

    def action(self, fact: ServiceFact) -> Action:
        steps = []
        if self.enabled and not fact.is_enabled:
            steps.append(f"systemctl enable {q(self.name)}")
        if not self.enabled and fact.is_enabled and fact.enabled != "static":
            steps.append(f"systemctl disable {q(self.name)}")
        if self.running and not fact.running:
            # `start` after a failed state needs the failure cleared, or systemd may refuse (start limit).
            steps.append(f"systemctl reset-failed {q(self.name)} 2>/dev/null || true")
            steps.append(f"systemctl start {q(self.name)}")
        if not self.running and fact.running:
            steps.append(f"systemctl stop {q(self.name)}")
        return Action("\n".join(steps) or ":")

    def will_start(self, fact: ServiceFact) -> bool:
        return self.running and not fact.running


@dataclass(frozen=True)
class Sysctl(Resource):
    """A kernel parameter, set now and persisted in /etc/sysctl.d."""

    name: str
    value: str
    notify: tuple[str, ...] = field(default=())
    kind = "sysctl"

    @property
    def key(self) -> str:
        return f"sysctl:{self.name}"

    @property
    def persist_file(self) -> str:
        return f"/etc/sysctl.d/90-kbuild-{self.name}.conf"

    def fact_query(self, *, with_content: bool = False) -> SysctlQuery:
        return SysctlQuery(self.name, self.persist_file)

    def changes(self, fact: SysctlFact) -> list[str]:
        want = " ".join(str(self.value).split())
        found = []
        if fact.value is None:
            found.append("kernel has no such parameter")
        elif " ".join(fact.value.split()) != want:
            found.append(f"{fact.value} -> {want}")
        if fact.persisted is None or " ".join(fact.persisted.split()) != want:
            found.append("persist")
        return found

    def action(self, fact: SysctlFact) -> Action:
        proc = SysctlQuery(self.name, self.persist_file).proc_path
        tmp = f"{self.persist_file}.kbuild-new"
        return Action("\n".join([
            f"if [ ! -e {q(proc)} ]; then echo 'no kernel parameter {self.name} "
            f"(is the module providing it loaded?)' >&2; exit 1; fi",
            f"printf '%s\\n' {q(self.value)} > {q(proc)}",
            f"printf '%s = %s\\n' {q(self.name)} {q(self.value)} > {q(tmp)}",
            f"mv -f {q(tmp)} {q(self.persist_file)}",
        ]))


@dataclass(frozen=True)
class KernelModule(Resource):
    """A kernel module, loaded now and at boot.

    `probe` is a read-only shell test that succeeds when the module's feature is available: a
    module built into the kernel (or loaded by the host of a container) may have no /sys/module
    entry, but its feature shows up (`test -d /proc/sys/net/bridge` for br_netfilter).
    """

    name: str
    probe: str | None = None
    notify: tuple[str, ...] = field(default=())
    kind = "kernel-module"

    @property
    def key(self) -> str:
        return f"module:{self.name}"

    @property
    def persist_file(self) -> str:
        return f"/etc/modules-load.d/kbuild-{self.name}.conf"

    def fact_query(self, *, with_content: bool = False) -> ModuleQuery:
        return ModuleQuery(self.name, self.probe, self.persist_file)

    def changes(self, fact: ModuleFact) -> list[str]:
        return (["load"] if not fact.loaded else []) + (["persist"] if not fact.persisted else [])

    def action(self, fact: ModuleFact) -> Action:
        steps = [f"mkdir -p /etc/modules-load.d\nprintf '%s\\n' {q(self.name)} > {q(self.persist_file)}"]
        if not fact.loaded:
            steps.append(f"modprobe {q(self.name)}")
        return Action("\n".join(steps))


@dataclass(frozen=True)
class Route(Resource):
    """A route in the main table to `destination` (a CIDR) via the gateway `via`, set live.

    A route to the destination that goes another way is replaced (`ip route replace`), as is one of
    another type (a blackhole). `name` is how reports call it. Every route of a host is read from one
    listing of the table (RouteQuery), so a node's cost does not grow with its peers.
    """

    destination: str
    via: str
    name: str = ""
    notify: tuple[str, ...] = field(default=())
    kind = "route"

    def __post_init__(self) -> None:
        # Both reach the host's `ip` as words: a value that is no network or address is a plan's bug.
        ipaddress.ip_network(self.destination, strict=False)
        ipaddress.ip_address(self.via)

    @property
    def key(self) -> str:
        return f"route:{self.destination}"

    def describe(self) -> str:
        return self.name or f"route {self.destination} via {self.via}"

    def fact_query(self, *, with_content: bool = False) -> RouteQuery:
        return RouteQuery(self.destination)

    def changes(self, fact: RouteFact) -> list[str]:
        if fact.goes_via(self.via):
            return []
        if not fact.routes:
            return [f"add via {self.via}"]
        found = sorted(fact.gateways)
        return [f"via {', '.join(found)} -> via {self.via}" if found else f"{fact.routes[0][0]} -> via {self.via}"]

    def action(self, fact: RouteFact) -> Action:
        return Action(command("ip", "route", "replace", self.destination, "via", self.via))


@dataclass(frozen=True)
class RoutesPruned(Resource):
    """No route via a gateway to a network inside `within` (a CIDR) but the `keep` ones (destination,
    gateway): the routes to nodes gone from the inventory (or renumbered) go, so an old block never
    shadows a new node's. Routes with no gateway (a bridge's own, a blackhole) are left alone. Read
    from the same listing of the table as the Routes.
    """

    name: str
    within: str
    keep: tuple[tuple[str, str], ...] = ()
    notify: tuple[str, ...] = field(default=())
    kind = "routes-pruned"

    @property
    def key(self) -> str:
        return f"routes-pruned:{self.within}"

    def describe(self) -> str:
        return self.name

    def fact_query(self, *, with_content: bool = False) -> RouteQuery:
        return RouteQuery(self.within, within=True)

    def stale(self, fact: RouteFact) -> list[tuple[str, str]]:
        """The (destination, gateway) of each route to remove, as `ip` printed them."""
        keep = {(ipaddress.ip_network(d, strict=False), ipaddress.ip_address(v)) for d, v in self.keep}
        found = []
        for words in fact.routes:
            if len(words) < 3 or words[1] != "via":  # `DEST via GW ...`: a plain route through a gateway
                continue
            try:
                route = (ipaddress.ip_network(words[0], strict=False), ipaddress.ip_address(words[2]))
            except ValueError:
                continue
            if route not in keep:
                found.append((words[0], words[2]))
        return found

    def changes(self, fact: RouteFact) -> list[str]:
        return [f"remove {dest} via {via}" for dest, via in self.stale(fact)]

    def action(self, fact: RouteFact) -> Action:
        # A stale route may be gone by now: a Route of this plan replaced it (same destination, new gateway).
        family = f"-{ipaddress.ip_network(self.within, strict=False).version}"
        steps = [f"{command('ip', family, 'route', 'del', dest, 'via', via)} 2>/dev/null || "
                 f"[ -z \"$({command('ip', family, 'route', 'show', dest, 'via', via)})\" ] || "
                 f"{{ echo {q(f'cannot remove the route to {dest} via {via}')} >&2; exit 1; }}"
                 for dest, via in self.stale(fact)]
        return Action("\n".join(steps) or ":")


@dataclass(frozen=True)
class Command(Resource):
    """A command run only when its guard says the work is not done yet.

    `creates`: a path the command creates (skip if it exists). `unless`: a read-only shell test
    (skip if it succeeds). With neither guard the command runs every time and always reports a
    change, like Ansible's command module, so plays should give one.
    """

    name: str
    command: str
    creates: str | None = None
    unless: str | None = None
    notify: tuple[str, ...] = field(default=())
    kind = "command"

    @property
    def key(self) -> str:
        return f"command:{self.name}"

    def _guard(self) -> str | None:
        if self.creates is not None:
            return f"test -e {q(self.creates)}"
        return self.unless

    def fact_query(self, *, with_content: bool = False) -> FactQuery:
        # A `creates` path is tested by the fact script's shell itself; an `unless` test runs in a subshell.
        return ExistsQuery(self.creates) if self.creates is not None else GuardQuery(self.unless)

    def changes(self, fact: GuardFact) -> list[str]:
        if fact.ok:
            return []
        return ["run" if self._guard() else "run (no guard)"]

    def action(self, fact: GuardFact) -> Action:
        return Action(self.command)
