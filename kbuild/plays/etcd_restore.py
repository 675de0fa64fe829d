"""`kbuild etcd snapshot restore`: the whole multi-member restore, undone if any step fails.

Order (as etcd's and Kubernetes' disaster-recovery guides have it): every check first and a plan
shown; a snapshot of the current state; the snapshot copied to every member and checked there;
then stop every apiserver and controller, stop every etcd member, move each data directory aside
(kept, never deleted), restore the same snapshot on every member with its own name and peer URL,
the inventory's initial cluster and a new cluster token, start all members together (a member is
ready only once a quorum forms, so `start --no-block` then one health gate), and the control plane
last. Once a data directory exists etcd ignores --initial-cluster*, so the unit kbuild renders
(token <cluster>-etcd, state new) runs the restored member unchanged.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kbuild.engine.runner import Gate, HostOutcome, HostStatus, Plan
from kbuild.engine.shell import command
from kbuild.engine.ssh import Connection
from kbuild.errors import KbuildError, UsageError
from kbuild.inventory import Cluster
from kbuild.plays import control_plane, etcd
from kbuild.plays.etcd_backup import Snapshot, take_snapshot
from kbuild.plays.etcd_ops import snapfile
from kbuild.plays.etcd_ops.commands import (
    all_endpoints,
    ctl,
    parse_snapshot_status,
    restored_revision,
    snapshot_status,
)
from kbuild.plays.etcd_ops.health import membership_problems
from kbuild.plays.etcd_ops.probe import CONTROL_PLANE_SERVICES, probe_hosts
from kbuild.plays.clusterfacts import etcd_members
from kbuild.plays.etcd_ops.restore_plan import MemberPlan, RestorePlan, RestoreRefused, build_plan
from kbuild.plays.phases import Context

Confirm = Callable[[RestorePlan], bool]


class RestoreAborted(UsageError):
    """The user said no at the prompt; nothing was changed."""


class RestoreFailed(KbuildError):
    """A step failed after the cluster was touched; the message says what happened and what was undone."""


@dataclass
class RestoreResult:
    plan: RestorePlan
    pre_snapshot: Snapshot | None
    cluster_id: str
    revision: int


@dataclass
class _Progress:
    """What has been done, so a rollback undoes exactly that."""

    uploaded: set[str] = field(default_factory=set)
    stopped: bool = False
    moved: set[str] = field(default_factory=set)
    restored: set[str] = field(default_factory=set)  # a restore was attempted: data_dir may hold new data


class _StepFailed(Exception):
    def __init__(self, step: str, problems: dict[str, str]) -> None:
        super().__init__(step)
        self.step = step
        self.problems = problems

    def describe(self) -> str:
        return f"{self.step} failed: " + "; ".join(f"{h}: {m}" for h, m in self.problems.items())


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _each(ctx: Context, step: str, names: list[str], task: Callable[[Connection], str | None], describe: str,
          *, raise_on_failure: bool = True) -> dict[str, HostOutcome]:
    """A restore step on hosts in parallel; raises _StepFailed naming each host that failed."""
    outcomes = ctx.session.each(step, names, task, describe=describe)
    problems = _problems(ctx, outcomes)
    if problems and raise_on_failure:
        raise _StepFailed(step, problems)
    return outcomes


def _gates(ctx: Context, step: str, gates: dict[str, list[Gate]], describe: str, *,
           raise_on_failure: bool = True) -> dict[str, str]:
    """Wait on health gates per host (even though no resource changed); returns what failed."""
    plans = {name: Plan(gates=[dataclasses.replace(g, always=True) for g in host_gates])
             for name, host_gates in gates.items()}
    problems = _problems(ctx, ctx.session.apply(step, plans, describe=describe))
    if problems and raise_on_failure:
        raise _StepFailed(step, problems)
    return problems


def _problems(ctx: Context, outcomes: dict[str, HostOutcome]) -> dict[str, str]:
    """What went wrong per host. A failed host stays in the run: the restore handles the failure
    (rollback), so the rollback's steps must still reach it."""
    for name, outcome in outcomes.items():
        if outcome.status is HostStatus.FAILED:
            ctx.session.revive(name)
    return {n: (o.message or o.status.value) for n, o in outcomes.items() if o.status is not HostStatus.OK}


def _service_task(action: str, services: tuple[str, ...]) -> Callable[[Connection], str]:
    """A task that stops or starts `services` on a host."""
    command = stop_command(services) if action == "stop" else start_command(services)
    done = "stopped" if action == "stop" else "starting"
    return lambda conn: _run(conn, command, f"systemctl {action} {' '.join(services)}") or done


def _run(conn: Connection, command: str, what: str, timeout: float = 600) -> str:
    result = conn.run(command, timeout=timeout)
    if not result.ok:
        detail = (result.err + result.out).strip()[-1500:] or "no output"
        raise KbuildError(f"{what} failed (exit {result.rc}): {detail}")
    return result.out.strip()


# -- the shell of each step (pure) -------------------------------------------------------------------------


def stop_command(services: tuple[str, ...]) -> str:
    """Stop services; a unit that does not exist counts as stopped. Fails if one still runs after."""
    names = command(*services)
    return (f"for s in {names}; do systemctl stop \"$s\" 2>/dev/null || "
            f"[ \"$(systemctl show -p LoadState --value \"$s\")\" = not-found ] || exit 1; done; "
            f"for s in {names}; do st=$(systemctl is-active \"$s\"); "
            "case $st in active|activating|deactivating|reloading) "
            f"echo \"$s is still $st\" >&2; exit 1;; esac; done")


def start_command(services: tuple[str, ...]) -> str:
    # --no-block: etcd's unit is Type=notify and a member is ready only once a quorum forms, so a
    # blocking start on one member would wait for the others; the health gates do the waiting.
    names = command(*services)
    return f"systemctl reset-failed {names} 2>/dev/null; systemctl start --no-block {names}"


def move_aside_command(member: MemberPlan) -> str:
    data, aside = shlex.quote(member.data_dir), shlex.quote(member.aside)
    return (f"if [ -e {aside} ]; then echo {shlex.quote(member.aside + ' already exists')} >&2; exit 1; fi; "
            f"if [ -e {data} ]; then mv {data} {aside} && echo moved; else echo absent; fi")


def restore_command(member: MemberPlan) -> str:
    data = shlex.quote(member.data_dir)
    return (f"if [ -e {data} ]; then echo {shlex.quote(member.data_dir + ' exists: it was not moved aside')} >&2; "
            "exit 1; fi; "
            f"log=$(mktemp); if ! {{ {member.restore_command}; }} > \"$log\" 2>&1; then "
            "tail -n 20 \"$log\" >&2; rm -f \"$log\"; "
            f"exit 1; fi; rm -f \"$log\"; chmod 700 {data}")


def rollback_command(member: MemberPlan, *, restored: bool, moved: bool) -> str:
    """Put the old data directory back. What is at data_dir now came from this restore (or is a partial
    copy of it): the snapshot still exists, so it is removed, never the old data."""
    data, aside = shlex.quote(member.data_dir), shlex.quote(member.aside)
    steps = []
    if restored or moved:
        steps.append(f"rm -rf --one-file-system {data}")
    if moved:
        steps.append(f"mv {aside} {data}")
    steps.append("echo rolled-back")
    return " && ".join(steps)


# -- the procedure ------------------------------------------------------------------------------------------


def restore(ctx: Context, snapshot_path: Path, *, confirm: Confirm) -> RestoreResult:
    """Restore `snapshot_path` onto every etcd member; on failure after anything changed, undo it and raise
    RestoreFailed. Raises RestoreRefused / SnapshotFileError / RestoreAborted with nothing changed."""
    cluster: Cluster = ctx.cluster
    check = snapfile.verify_file(snapshot_path)
    metadata = snapfile.read_metadata(snapshot_path)
    involved = [h for h in cluster.hosts if h.is_etcd or h.is_control_plane]
    if not cluster.etcd_hosts:
        raise RestoreRefused(["the inventory has no etcd host"])
    left_out = [h.name for h in involved if h not in ctx.selected(involved)]
    if left_out:
        raise RestoreRefused([f"--limit leaves out {', '.join(left_out)}: a restore works on every member at once"])
    probes = probe_hosts(ctx, involved, phase="restore-check", describe="every etcd member and control plane")
    plan = build_plan(cluster, snapshot_path.absolute(), check, metadata, probes, _stamp())
    if not confirm(plan):
        raise RestoreAborted("restore aborted at the prompt; nothing was changed")
    pre = None
    if plan.pre_snapshot_from:
        try:
            pre = take_snapshot(ctx, reason="before restore")
        except KbuildError as exc:
            hint = "fix that first: kbuild never restores without saving the current state"
            raise RestoreRefused([f"the snapshot of the current state failed: {exc}"], hint=hint) from None
        ctx.say(f"current state saved first: {pre.path}", phase="restore")
    progress = _Progress()
    members = [m.host for m in plan.members]
    try:
        revision = _upload(ctx, plan, progress)
    except _StepFailed as exc:
        _cleanup_uploads(ctx, plan, progress)
        raise RestoreRefused([exc.describe()], hint="check the hosts' disks; nothing was stopped") from None
    try:
        cluster_id = _apply(ctx, plan, progress, revision)
    except BaseException as exc:  # noqa: BLE001 - an interrupt mid-restore must be undone too
        story = exc.describe() if isinstance(exc, _StepFailed) else f"{type(exc).__name__}: {exc}"
        ctx.say(f"RESTORE FAILED: {story}; putting the old data back", phase="restore")
        rolled = _rollback(ctx, plan, progress)
        _cleanup_uploads(ctx, plan, progress)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise RestoreFailed(_failure_story(plan, story, rolled, pre)) from None
    _cleanup_uploads(ctx, plan, progress)
    ctx.say(f"restored revision {revision} on {', '.join(members)}; new cluster ID {cluster_id}; old data kept in "
            + ", ".join(f"{m.host}:{m.aside}" for m in plan.members if m.host in progress.moved), phase="restore")
    return RestoreResult(plan, pre, cluster_id, revision)


def _upload(ctx: Context, plan: RestorePlan, progress: _Progress) -> int:
    """Copy the snapshot next to each member's data directory and check it there: same sha256, and the
    restore tool reads the revision the file should have."""
    expected: set[int] = set()

    def upload(conn: Connection) -> str:
        member = plan.member(conn.target.name)
        tmp = shlex.quote(member.upload + ".partial")
        progress.uploaded.add(member.host)
        with plan.snapshot.open("rb") as source:
            sent = conn.run(f"umask 077; cat > {tmp}", stdin=source, timeout=3600)
        if not sent.ok:
            raise KbuildError(f"copying the snapshot failed: {sent.err.strip()[-500:]}")
        sha = _run(conn, f"sha256sum {tmp} | cut -d' ' -f1", "sha256sum")
        if sha != plan.check.sha256:
            raise KbuildError(f"the snapshot arrived damaged (sha256 {sha[:12]}… instead of {plan.check.sha256[:12]}…)")
        _run(conn, f"mv {tmp} {shlex.quote(member.upload)}", "mv")
        status = parse_snapshot_status(_run(conn, snapshot_status(plan.tool, shlex.quote(member.upload)) + " 2>&1",
                                            f"{plan.tool} snapshot status"))
        expected.add(status.revision)
        return f"snapshot copied and checked: revision {status.revision}, {status.total_keys} keys"

    _each(ctx, "restore-upload", [m.host for m in plan.members], upload,
          f"copy the snapshot to every member and check it with {plan.tool}")
    wanted = {int(plan.metadata["revision"])} if plan.metadata else expected
    if len(expected) != 1 or expected != wanted:
        raise _StepFailed("restore-upload", {"snapshot": f"{plan.tool} reads revision {sorted(expected)}, the "
                                                         f"metadata says {sorted(wanted)}"})
    return expected.pop()


def _cleanup_uploads(ctx: Context, plan: RestorePlan, progress: _Progress) -> None:
    def remove(conn: Connection) -> str:
        member = plan.member(conn.target.name)
        conn.run(f"rm -f {shlex.quote(member.upload)} {shlex.quote(member.upload + '.partial')}", timeout=120)
        return ""

    if progress.uploaded:
        _each(ctx, "restore-cleanup", sorted(progress.uploaded), remove, "remove the copied snapshot",
              raise_on_failure=False)


def _apply(ctx: Context, plan: RestorePlan, progress: _Progress, revision: int) -> str:
    """Steps 3-8; returns the new cluster ID. Raises _StepFailed (or anything) for the rollback."""
    members = [m.host for m in plan.members]
    planes = list(plan.control_planes)
    progress.stopped = True
    if planes:
        _each(ctx, "restore-stop", planes, _service_task("stop", CONTROL_PLANE_SERVICES),
              f"stop {', '.join(CONTROL_PLANE_SERVICES)}")
    _each(ctx, "restore-stop", members, _service_task("stop", ("etcd",)),
          "stop etcd on every member")

    def move(conn: Connection) -> str:
        member = plan.member(conn.target.name)
        out = _run(conn, move_aside_command(member), "moving the data directory aside")
        if out == "moved":
            progress.moved.add(member.host)
            return f"{member.data_dir} moved to {member.aside}"
        return f"{member.data_dir} did not exist"

    _each(ctx, "restore-move-aside", members, move, "move every data directory aside (kept)")

    def restore_one(conn: Connection) -> str:
        member = plan.member(conn.target.name)
        progress.restored.add(member.host)
        _run(conn, restore_command(member), f"{plan.tool} snapshot restore", timeout=3600)
        return f"restored into {member.data_dir} as {member.host} ({member.peer_url})"

    _each(ctx, "restore-snapshot", members, restore_one, f"{plan.tool} snapshot restore on every member")
    _each(ctx, "restore-start-etcd", members, _service_task("start", ("etcd",)),
          "start every member together")
    _gates(ctx, "restore-etcd-health", {m: [etcd.health_gate(ctx.cluster)] for m in members},
           "every member healthy in one cluster")
    cluster_id = _verify(ctx, plan, revision)
    if planes:
        _each(ctx, "restore-start-control-plane", planes,
              _service_task("start", CONTROL_PLANE_SERVICES),
              "start the control plane")
        _gates(ctx, "restore-control-plane-health", {p: control_plane.gates(ctx.cluster) for p in planes},
               "kube-apiserver ready, controllers healthy")
    return cluster_id


def _verify(ctx: Context, plan: RestorePlan, revision: int) -> str:
    """Every member serves the snapshot's revision, bumped (nothing writes before the apiservers start), in
    one cluster whose members are the inventory's. Returns the cluster ID."""
    cluster: Cluster = ctx.cluster
    served = restored_revision(revision)
    probes = probe_hosts(ctx, cluster.etcd_hosts, phase="restore-verify", describe="revision and cluster ID per member")
    problems: dict[str, str] = {}
    ids = set()
    for name, probe in probes.items():
        if probe is None or probe.status is None:
            problems[name] = "no status"
            continue
        ids.add(probe.status.cluster_id)
        if probe.status.revision != served:
            problems[name] = (f"serves revision {probe.status.revision}, the snapshot has {revision} "
                              f"(so {served} once restored)")
    if len(ids) > 1:
        problems["cluster"] = f"members report different cluster IDs: {', '.join(sorted(ids))}"
    listing: list[etcd_members.MemberList] = []
    first = plan.members[0].host
    command = etcd_members.command(cluster, endpoints=all_endpoints(cluster))

    def members(conn: Connection) -> str:
        listing.append(etcd_members.parse(_run(conn, command, "member list")))
        return "member list read"

    _each(ctx, "restore-verify", [first], members, "the member list")
    cluster_id, found = listing[0].cluster_id, listing[0].members
    for problem in membership_problems(cluster, found):
        problems.setdefault("members", problem)
    if problems:
        raise _StepFailed("restore-verify", problems)
    return cluster_id


def _rollback(ctx: Context, plan: RestorePlan, progress: _Progress) -> dict[str, str]:
    """Put every moved-aside data directory back and start everything again. Returns what is wrong after."""
    members = [m.host for m in plan.members]
    planes = list(plan.control_planes)
    for name in members + planes:
        # Try every host again, even one that failed or dropped its connection during the restore.
        ctx.session.revive(name, reconnect=True)
    left: dict[str, str] = {}
    if not progress.stopped:
        return left
    planes_stopped = _each(ctx, "rollback-stop", planes, _service_task("stop", CONTROL_PLANE_SERVICES),
                           "stop the control plane", raise_on_failure=False)
    for name, outcome in planes_stopped.items():
        if outcome.status is not HostStatus.OK:
            left[name] = f"could not stop the control plane: {outcome.message}"
    stopped = _each(ctx, "rollback-stop", members, _service_task("stop", ("etcd",)), "stop etcd",
                    raise_on_failure=False)

    def back(conn: Connection) -> str:
        member = plan.member(conn.target.name)
        moved, restored = member.host in progress.moved, member.host in progress.restored
        if not (moved or restored):
            return "data directory untouched"
        _run(conn, rollback_command(member, restored=restored, moved=moved), "putting the data directory back")
        if moved:
            return f"{member.aside} moved back to {member.data_dir}"
        return f"restored data removed from {member.data_dir}"

    safe = [m for m in members if stopped[m].status is HostStatus.OK]
    for name in members:
        if name not in safe:
            left[name] = f"etcd could not be stopped, data not touched: {stopped[name].message}"
    moved_back = _each(ctx, "rollback-data", safe, back, "put the old data directories back", raise_on_failure=False)
    for name, outcome in moved_back.items():
        if outcome.status is not HostStatus.OK:
            left[name] = f"old data NOT put back: {outcome.message}"
    _each(ctx, "rollback-start", members, _service_task("start", ("etcd",)),
          "start etcd again", raise_on_failure=False)
    for name, problem in _gates(ctx, "rollback-etcd-health", {m: [etcd.health_gate(ctx.cluster)] for m in members},
                                "etcd healthy again", raise_on_failure=False).items():
        left.setdefault(name, f"etcd not healthy after the rollback: {problem}")
    if planes:
        _each(ctx, "rollback-start", planes, _service_task("start", CONTROL_PLANE_SERVICES),
              "start the control plane again", raise_on_failure=False)
        gates = {p: control_plane.gates(ctx.cluster) for p in planes}
        for name, problem in _gates(ctx, "rollback-control-plane-health", gates,
                                    "control plane healthy again", raise_on_failure=False).items():
            left.setdefault(name, f"control plane not healthy after the rollback: {problem}")
    return left


def _failure_story(plan: RestorePlan, story: str, left: dict[str, str], pre: Snapshot | None) -> str:
    lines = [f"etcd restore of {plan.snapshot.name} failed: {story}"]
    if not left:
        lines.append("rolled back: every data directory is back where it was, etcd and the control plane run again "
                     "on the old data, which was not modified")
    else:
        lines.append("ROLLBACK INCOMPLETE; what is still wrong:")
        lines += [f"  {host}: {problem}" for host, problem in left.items()]
        lines.append("by hand, on each etcd host: systemctl stop etcd; rm -rf DATA_DIR (only the restored copy); "
                     "mv ASIDE DATA_DIR; then start etcd on all of them together:")
        lines += [f"  {m.host}: DATA_DIR={m.data_dir} ASIDE={m.aside}" for m in plan.members]
    if pre is not None:
        lines.append(f"the state before the restore is also saved in {pre.path}")
    return "\n".join(lines)
