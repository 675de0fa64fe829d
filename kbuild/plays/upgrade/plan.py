"""The upgrade plan: from what runs where and the target, the ordered steps and the policy's verdict (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from kbuild import components as table
from kbuild.inventory import Cluster
from kbuild.plays.upgrade import policy
from kbuild.plays.clusterfacts.nodes import Node
from kbuild.plays.upgrade.nodes import cordoned_by_kbuild
from kbuild.plays.upgrade.running import HostVersions, Installed, Version

# What each kind of step moves (the component table's upgrade steps), in the order the skew policy prescribes.
STEP_COMPONENTS: dict[str, tuple[str, ...]] = {
    step: tuple(c.name for c in table.upgraded(step)) for step in table.UPGRADE_STEPS}
KINDS = ("snapshot", *STEP_COMPONENTS)


@dataclass(frozen=True)
class Change:
    host: str
    component: str
    current: Installed
    target: Version

    @property
    def action(self) -> str:
        """upgrade (another binary), restart (binary replaced, old process still running), start, or none."""
        if self.current.version != self.target:
            return "upgrade"
        if not self.current.active:
            return "start"
        return "restart" if self.current.stale else "none"

    def describe(self) -> str:
        if self.action == "upgrade":
            return f"{self.component} {self.current.version} -> {self.target}"
        if self.action == "none":
            return f"{self.component} {self.target}"
        return f"{self.component} {self.target} ({self.action})"


@dataclass(frozen=True)
class Step:
    kind: str  # snapshot | etcd | apiserver | controllers | workers
    hosts: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()
    note: str = ""
    skip: str = ""  # why nothing needs doing here ("" when the step runs)
    unfinished: bool = False  # a node an earlier run cordoned and never uncordoned

    @property
    def pending(self) -> bool:
        return not self.skip

    @property
    def upgrades(self) -> bool:
        """Part of an upgrade: some component moves to another version, or an earlier upgrade left the node
        cordoned (as opposed to only a start or a restart owed)."""
        return self.unfinished or any(c.action == "upgrade" for c in self.changes)

    def title(self) -> str:
        where = ", ".join(self.hosts)
        if self.kind == "snapshot":
            return "etcd snapshot, kept (before anything changes)"
        single = len(STEP_COMPONENTS[self.kind]) == 1
        moves = ", ".join(c.describe().removeprefix(f"{c.component} ") if single else c.describe()
                          for c in self.changes if c.action != "none")
        if self.kind == "workers":
            return f"workers {where}: {moves or 'finish'} (cordon, drain, upgrade, wait Ready, uncordon)"
        note = f" ({self.note})" if self.note else ""
        return f"{', '.join(STEP_COMPONENTS[self.kind])} on {where}{note}: {moves or 'nothing'}"

    def as_json(self) -> dict:
        return {"kind": self.kind, "hosts": list(self.hosts), "note": self.note or None, "skip": self.skip or None,
                "unfinished": self.unfinished,
                "changes": [{"host": c.host, "component": c.component, "action": c.action,
                             "from": str(c.current.version) if c.current.version else None, "to": str(c.target)}
                            for c in self.changes]}


@dataclass
class UpgradePlan:
    target: dict[str, Version]
    observed: dict[str, HostVersions]
    steps: list[Step]
    findings: list[policy.PolicyFinding] = field(default_factory=list)
    not_installed: list[str] = field(default_factory=list)  # hosts kbuild bootstrap still has to install
    max_unavailable: int = 1

    @property
    def refusals(self) -> list[policy.PolicyFinding]:
        return [f for f in self.findings if f.refused]

    @property
    def warnings(self) -> list[policy.PolicyFinding]:
        return [f for f in self.findings if not f.refused]

    @property
    def pending(self) -> list[Step]:
        return [s for s in self.steps if s.pending]

    @property
    def work(self) -> list[Step]:
        """Pending steps that change a host (the snapshot alone is not work)."""
        return [s for s in self.pending if s.kind != "snapshot"]

    @property
    def upgrading(self) -> bool:
        """Some host runs another version than the target (as opposed to only restarts or starts owed)."""
        return any(s.upgrades for s in self.work)

    def of_kind(self, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]

    def summary(self) -> list[tuple[str, str, str]]:
        """(component, what runs now, target) rows."""
        rows = []
        for component, target in self.target.items():
            seen = Counter(h.components[component].describe() for h in self.observed.values()
                           if component in h.components)
            if not seen:
                continue
            running = ", ".join(f"{v} on {n} host{'s' if n != 1 else ''}" for v, n in sorted(seen.items()))
            rows.append((component, running, str(target)))
        return rows

    def text(self) -> str:
        lines = [f"  {'component':<23} {'running now':<37} target"]
        lines += [f"  {c:<23} {r:<37} {t}" for c, r, t in self.summary()]
        if self.refusals:
            lines += ["", "REFUSED, nothing was changed:"]
            lines += [f"  - {f.message}\n    ({f.source})" for f in self.refusals]
        pending = self.pending
        if pending and not self.refusals:
            lines += ["", f"steps, in this order (workers in batches of {self.max_unavailable}):"]
            lines += [f"  {i:>2}. {s.title()}" for i, s in enumerate(pending, 1)]
        elif not self.refusals:
            lines += ["", "nothing to do: every host already runs the target versions"]
        skipped = [s for s in self.steps if s.skip and s.kind != "snapshot"]
        if skipped and pending and not self.refusals:
            lines += ["", "already at the target (skipped):"]
            lines += [f"  - {s.kind} on {', '.join(s.hosts)}: {s.skip}" for s in skipped]
        if self.not_installed:
            hosts = ", ".join(self.not_installed)
            lines += ["", f"not installed yet (kbuild bootstrap installs the target there): {hosts}"]
        if self.warnings:
            lines += ["", "warnings:"] + [f"  - {f.message}" for f in self.warnings]
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {
            "target": {c: str(v) for c, v in self.target.items()},
            "hosts": {h: {c: {"version": str(i.version) if i.version else None, "active": i.active,
                              "stale": i.stale} for c, i in hv.components.items()}
                      for h, hv in self.observed.items()},
            "steps": [s.as_json() for s in self.steps],
            "refused": bool(self.refusals),
            "findings": [{"level": f.level, "rule": f.rule, "message": f.message, "source": f.source}
                         for f in self.findings],
            "not_installed": self.not_installed,
            "max_unavailable": self.max_unavailable,
        }


def build(cluster: Cluster, observed: dict[str, HostVersions], target: dict[str, Version], *,
          etcd_leader: str | None = None, nodes: dict[str, Node] | None = None,
          etcd_cluster_version: Version | None = None, max_unavailable: int = 1,
          extra_findings: list[policy.PolicyFinding] | None = None) -> UpgradePlan:
    """The ordered steps: snapshot; etcd members (followers, then the leader); kube-apiservers one by one;
    controller-managers and schedulers; workers in batches of `max_unavailable`. Then the policy's
    verdict on every intermediate state of exactly that order."""
    nodes = nodes or {}
    steps: list[Step] = []
    not_installed: list[str] = []

    def step(kind: str, host: str, note: str = "") -> Step | None:
        found = observed.get(host)
        changes = tuple(Change(host, c, found.components[c], target[c]) for c in STEP_COMPONENTS[kind]
                        if found is not None and c in found.components and found.components[c].present)
        if not changes:
            if host not in not_installed:
                not_installed.append(host)
            return None
        skip = "" if any(c.action != "none" for c in changes) else f"already {', '.join(c.describe() for c in changes)}"
        unfinished = kind == "workers" and nodes.get(host) is not None and cordoned_by_kbuild(nodes[host])
        if unfinished:
            skip = ""  # an earlier run stopped between upgrading this node and uncordoning it
        return Step(kind, (host,), changes, note, skip, unfinished)

    members = [h.name for h in cluster.etcd_hosts]
    # Followers first and the leader last: the cluster changes leader once, at the end, not once per member.
    members.sort(key=lambda name: name == etcd_leader)
    steps += _half_done_first(s for s in (step("etcd", name, "leader, last" if name == etcd_leader and
                                                len(members) > 1 else "") for name in members) if s)
    for kind in ("apiserver", "controllers"):
        steps += _half_done_first(s for s in (step(kind, h.name) for h in cluster.control_plane_hosts) if s)
    worker_steps = _half_done_first(s for s in (step("workers", h.name) for h in cluster.kubelet_hosts) if s)
    batch: list[Step] = []
    for s in worker_steps:
        if s.skip:
            steps.append(s)
            continue
        batch.append(s)
        if len(batch) == max_unavailable:
            steps.append(_merge(batch))
            batch = []
    if batch:
        steps.append(_merge(batch))
    if any(s.pending for s in steps) and members:
        steps.insert(0, Step("snapshot", (members[0],)))
    else:
        steps.insert(0, Step("snapshot", skip="nothing to upgrade"))

    current = {(h, c): i.version for h, hv in observed.items() for c, i in hv.components.items()
               if i.version is not None}
    for name, node in nodes.items():
        if name not in observed and node.kubelet is not None:
            current[(f"node/{name}", "kubelet")] = node.kubelet  # a Node kbuild does not manage stays as it is
    stages = [(_stage_name(s), [(c.host, c.component) for c in s.changes]) for s in steps if s.pending and s.changes]
    findings = policy.check_plan(current, target, stages)
    if any(s.kind == "etcd" and s.pending for s in steps):
        findings += policy.check_etcd_cluster_version(etcd_cluster_version, target["etcd"])
    findings += extra_findings or []
    return UpgradePlan(target, observed, steps, findings, not_installed, max_unavailable)


def _half_done_first(steps: Iterable[Step]) -> list[Step]:
    """A host an earlier run left half done (its new binary not running yet) goes before untouched ones:
    the health gates in front of every other host would otherwise wait for it in vain."""
    return sorted(steps, key=lambda s: s.pending and any(c.action == "upgrade" for c in s.changes))


def _merge(batch: list[Step]) -> Step:
    return Step("workers", tuple(h for s in batch for h in s.hosts), tuple(c for s in batch for c in s.changes),
                unfinished=any(s.unfinished for s in batch))


def _stage_name(s: Step) -> str:
    names = {"etcd": "etcd", "apiserver": "kube-apiserver", "controllers": "controller-manager/scheduler",
             "workers": "workers"}
    return f"upgrading {names[s.kind]} on {', '.join(s.hosts)}"
