"""The rolling apply: snapshot, etcd members (leader last), kube-apiservers one by one, controller-managers and
schedulers, then workers in drained batches. Every host is gated on health before the next is touched."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

from kbuild.engine.report import Event
from kbuild.engine.resources import Service
from kbuild.engine.runner import Gate, Plan
from kbuild.engine.session import QueryError
from kbuild.engine.ssh import Connection
from kbuild.errors import KbuildError, UnreachableError
from kbuild.inventory import Cluster, Host
from kbuild.plays import control_plane, etcd, node
from kbuild.plays.clusterfacts import etcd_status
from kbuild.plays.components import apiserver_get
from kbuild.plays.etcd_ops.commands import member_names
from kbuild.plays.phases import Context, require_success
from kbuild.plays.upgrade import etcdstate, leaders, nodes
from kbuild.plays.upgrade.plan import STEP_COMPONENTS, Step, UpgradePlan
from kbuild.plays.upgrade.stop import StopRequest, UpgradeStopped

PHASES = {"snapshot": "upgrade-snapshot", "etcd": "upgrade-etcd", "apiserver": "upgrade-apiserver",
          "controllers": "upgrade-controllers", "workers": "upgrade-workers"}
APISERVER = frozenset(STEP_COMPONENTS["apiserver"])
CONTROLLERS = STEP_COMPONENTS["controllers"]  # leader-elected, in start order


def split_plan(plan: Plan, services: Collection[str], *, unowned: bool) -> list:
    """The resources of a control-plane plan that concern `services` (and, with `unowned`, those no service
    reads: directories, kubectl), so apiservers move before controller-managers and schedulers.

    A file read by both groups (the CA) lands in the first; the restart it owes the second is carried
    by the runner to the second's step, where that service is managed."""
    chosen = []
    for resource in plan.resources:
        if isinstance(resource, Service):
            keep = resource.name in services
        elif resource.notify:
            keep = bool(set(resource.notify).intersection(services))
        else:
            keep = unowned
        if keep:
            chosen.append(resource)
    return chosen


def always(gates: list[Gate]) -> list[Gate]:
    """Gates that run even when the host had nothing to change (a restart owed from an earlier run)."""
    return [dataclasses.replace(g, always=True) for g in gates]


class Rollout:
    """Runs one plan's pending steps in order, stopping between hosts when asked."""

    def __init__(self, ctx: Context, plan: UpgradePlan, inputs: dict, stop: StopRequest) -> None:
        self.ctx = ctx
        self.plan = plan
        self.cluster: Cluster = ctx.cluster  # the target: its versions are what hosts get
        self.inputs = inputs
        self.stop = stop
        self.done: list[str] = []

    # -- reporting ------------------------------------------------------------------------------------

    def event(self, step: Step, status: str, message: str, *, host: str | None = None, **data: object) -> None:
        payload = {"upgrade": status, "step": step.kind, "hosts": list(step.hosts)} | data
        self.ctx.reporter.emit(Event("message", phase=PHASES[step.kind], host=host, status=status,
                                     message=message, data=payload))

    def begin(self, step: Step) -> None:
        self.stop.where = f"{step.kind} on {', '.join(step.hosts)}"
        self.event(step, "start", step.title(), host=step.hosts[0] if len(step.hosts) == 1 else None)

    def finish(self, step: Step) -> None:
        self.done.append(f"{step.kind} on {', '.join(step.hosts)}")
        self.event(step, "done", f"{step.kind} on {', '.join(step.hosts)} upgraded and healthy",
                   host=step.hosts[0] if len(step.hosts) == 1 else None)
        if self.stop.requested:
            left = [s for s in self.plan.work if f"{s.kind} on {', '.join(s.hosts)}" not in self.done]
            message = (f"upgrade stopped on request after {self.done[-1]}: {len(self.done)} step(s) done, "
                       f"{len(left)} left; every host is either upgraded and healthy or untouched")
            self.event(step, "stopped", message, left=[f"{s.kind} on {', '.join(s.hosts)}" for s in left])
            raise UpgradeStopped(message, hint="run the same command again to resume: hosts already at the "
                                               "target are skipped")

    # -- the run --------------------------------------------------------------------------------------

    def run(self) -> None:
        for step in self.plan.steps:
            if step.skip and step.kind != "snapshot":
                self.event(step, "skipped", f"{step.kind} on {', '.join(step.hosts)}: {step.skip}",
                           host=step.hosts[0] if len(step.hosts) == 1 else None)
        if not self.plan.work:
            return
        self.snapshot()
        self.etcd_members([s for s in self.plan.of_kind("etcd") if s.pending])
        for step in self.plan.of_kind("apiserver"):
            if step.pending:
                self.apiserver(step)
        for step in self.plan.of_kind("controllers"):
            if step.pending:
                self.controllers(step)
        for step in self.plan.of_kind("workers"):
            if step.pending:
                self.workers(step)

    def owe_restarts(self, step: Step) -> None:
        """A binary already replaced but still running the old process (an earlier run failed at the
        restart): the runner restarts it as if the file had just changed."""
        for change in step.changes:
            if change.action == "restart":
                self.ctx.session.defer(change.host, [change.component])

    def apply(self, step: Step, plans: dict[str, Plan], describe: str) -> None:
        outcomes = self.ctx.session.apply(PHASES[step.kind], plans, describe=describe)
        require_success(PHASES[step.kind], outcomes)

    # -- 1. snapshot ----------------------------------------------------------------------------------

    def snapshot(self) -> None:
        step = self.plan.steps[0]
        if not step.pending:
            return
        self.begin(step)
        # Imported here so tests can stand in for the module; there is no way to upgrade without it.
        from kbuild.plays.etcd_backup import take_snapshot

        snapshot = take_snapshot(self.snapshot_context(), reason=f"upgrade to {self.describe_target()}")
        self.event(step, "done", f"etcd snapshot kept at {snapshot.path}", path=str(snapshot.path))

    def snapshot_context(self) -> Context:
        """The snapshot is taken with the etcd that runs now (the oldest member's version), not the target's."""
        running = [i.version for hv in self.plan.observed.values() for c, i in hv.components.items()
                   if c == "etcd" and i.version is not None]
        if not running:
            return self.ctx
        settings = self.cluster.settings
        versions = settings.versions.model_copy(update={"etcd": str(min(running))})
        cluster = dataclasses.replace(self.cluster, settings=settings.model_copy(update={"versions": versions}))
        return Context(cluster, self.ctx.session, check=self.ctx.check, state=self.ctx.state, timings=self.ctx.timings)

    def describe_target(self) -> str:
        t = self.plan.target
        return f"kubernetes {t['kube-apiserver']}, etcd {t['etcd']}"

    # -- 2. etcd ----------------------------------------------------------------------------------------

    def etcd_members(self, pending: list[Step]) -> None:
        remaining = list(pending)
        while remaining:
            # Asked again before every member: leadership can move while members restart.
            leader = self.etcd_leader()
            step = next((s for s in remaining if s.hosts[0] != leader), remaining[0])
            remaining.remove(step)
            self.etcd_member(step, is_leader=step.hosts[0] == leader)

    def etcd_leader(self) -> str | None:
        """The member that leads now, as the first member that answers sees it (None: none answers)."""
        query = etcd_status.query(self.cluster, every_member=True)
        for member in self.cluster.etcd_hosts:
            if not self.ctx.session.is_up(member.name):
                continue
            try:
                statuses = self.ctx.session.read(PHASES["etcd"], member.name, query)
            except (QueryError, UnreachableError):
                continue
            return next((m.name for m in etcd_status.named(statuses, member_names(self.cluster)) if m.is_leader),
                        None)
        return None

    def etcd_member(self, step: Step, *, is_leader: bool) -> None:
        host = self.cluster.host(step.hosts[0])
        if is_leader and len(self.cluster.etcd_hosts) > 1:
            step = dataclasses.replace(step, note="leader, last")
        self.begin(step)
        # Every other member healthy before this one goes down: so never more than one member is down.
        others = etcdstate.others_healthy_gate(self.cluster, host.name)
        if others is not None:
            self.apply(step, {host.name: Plan(gates=[others])}, f"the other etcd members healthy before "
                       f"{host.name} restarts")
        self.owe_restarts(step)
        base = etcd.plan(self.cluster, self.inputs[host.name])
        gates = [etcdstate.healthy_gate(self.cluster),
                 etcdstate.member_version_gate(self.cluster, host, self.plan.target["etcd"])]
        self.apply(step, {host.name: Plan(base.resources, gates=gates)},
                   f"etcd on {host.name}{' (the leader, last)' if is_leader else ''}")
        self.finish(step)

    # -- 3. kube-apiservers, 4. controller-managers and schedulers ------------------------------------

    def others_ready(self, step: Step, host: Host) -> None:
        """The other kube-apiservers answer /readyz before this one restarts: never two down at once."""
        others = [h for h in self.cluster.control_plane_hosts if h.name != host.name]
        if others:
            ready = Gate("kube-apiserver /readyz", command=apiserver_get(self.cluster, "/readyz"),
                         timeout=control_plane.APISERVER_TIMEOUT, always=True)
            self.apply(step, {h.name: Plan(gates=[ready]) for h in others},
                       f"the other kube-apiservers ready before {host.name} restarts")

    def apiserver(self, step: Step) -> None:
        host = self.cluster.host(step.hosts[0])
        self.begin(step)
        self.others_ready(step, host)
        self.owe_restarts(step)
        base = control_plane.plan(self.cluster, self.inputs[host.name])
        target = self.plan.target["kube-apiserver"]
        version = Gate(f"kube-apiserver serves v{target}", always=True, timeout=control_plane.APISERVER_TIMEOUT,
                       command=f"{apiserver_get(self.cluster, '/version')} | grep -Eq '\"gitVersion\": *\"v{target}\"'")
        gates = always(control_plane.gates(self.cluster, ("kube-apiserver",))) + [version]
        self.apply(step, {host.name: Plan(split_plan(base, APISERVER, unowned=True), gates)},
                   f"kube-apiserver on {host.name}, then /livez and /readyz")
        self.finish(step)

    def controllers(self, step: Step) -> None:
        host = self.cluster.host(step.hosts[0])
        self.begin(step)
        self.owe_restarts(step)
        base = control_plane.plan(self.cluster, self.inputs[host.name])
        # Healthy is not enough: a restarted leader leaves no controller acting until its Lease expires, and a
        # drain in that window leaves evicted pods in their Services (kbuild.plays.upgrade.leaders).
        gates = (always(control_plane.gates(self.cluster, CONTROLLERS))
                 + [leaders.leading_gate(component) for component in CONTROLLERS])
        self.apply(step, {host.name: Plan(split_plan(base, CONTROLLERS, unowned=False), gates)},
                   f"kube-controller-manager and kube-scheduler on {host.name}")
        self.finish(step)

    # -- 5. workers ---------------------------------------------------------------------------------------

    def kubectl_host(self) -> Host:
        candidates = [h for h in self.cluster.control_plane_hosts if self.ctx.session.is_up(h.name)]
        if not candidates:
            raise KbuildError("no control plane is left to run kubectl on, so workers cannot be drained")
        return candidates[0]

    def on_control_plane(self, step: Step, task: Callable[[Connection], str | None], describe: str) -> None:
        via = self.kubectl_host()
        outcomes = self.ctx.session.each(PHASES[step.kind], [via.name], task, describe=f"{describe} (kubectl on "
                                        f"{via.name})")
        require_success(PHASES[step.kind], outcomes)

    def workers(self, step: Step) -> None:
        target = self.plan.target["kubelet"]
        self.begin(step)
        ours: list[str] = []

        def cordon_and_drain(conn: Connection) -> str:
            for name in step.hosts:
                if nodes.cordon(conn, name, target, status_command=self.cluster.command("status")):
                    ours.append(name)
                    self.event(step, "cordoned", f"cordoned {name}", host=name)
                else:
                    self.event(step, "cordoned", f"{name} was already cordoned by someone else: it stays cordoned "
                               "after the upgrade", host=name, preexisting=True)
                attempt = nodes.drain(conn, name)
                self.event(step, "drained", f"drained {name}" + (f" (attempt {attempt})" if attempt > 1 else ""),
                           host=name)
            return ""

        self.on_control_plane(step, cordon_and_drain, f"cordon and drain {', '.join(step.hosts)}")
        self.owe_restarts(step)
        plans = {}
        for name in step.hosts:
            base = node.plan(self.cluster, self.inputs[name])
            plans[name] = Plan(base.resources, always(base.gates))
        self.apply(step, plans, f"containerd, kubelet and kube-proxy on {', '.join(step.hosts)}")
        started: dict[str, int] = {}

        def kubelet_started(conn: Connection) -> str:
            started[conn.target.name] = nodes.kubelet_started(conn)
            return ""

        require_success(PHASES[step.kind], self.ctx.session.each(PHASES[step.kind], list(step.hosts), kubelet_started,
                                                                describe="when each kubelet started"))
        via = self.kubectl_host()
        self.apply(step, {via.name: Plan(gates=[nodes.ready_gate(n, started[n]) for n in step.hosts])},
                   f"{', '.join(step.hosts)} Ready, as posted by the new kubelet")

        def uncordon(conn: Connection) -> str:
            for name in ours:
                nodes.uncordon(conn, name)
                self.event(step, "uncordoned", f"uncordoned {name}", host=name)
            return ""

        self.on_control_plane(step, uncordon, f"uncordon {', '.join(ours) or 'nothing'}")
        self.finish(step)


def run(ctx: Context, plan: UpgradePlan, inputs: dict) -> list[str]:
    """Apply `plan` (already checked against the policy) with Ctrl-C handled between hosts; returns what was done."""
    if plan.refusals:
        raise KbuildError("refusing to run an upgrade the version skew policy forbids (a kbuild bug: the plan "
                          "should have been checked first)")
    with StopRequest() as stop:
        rollout = Rollout(ctx, plan, inputs, stop)
        rollout.run()
    return rollout.done
