"""The cluster actions the CLI calls, each composed here from phases and plays so the CLI only parses and prints."""

from __future__ import annotations

from kbuild.engine.report import Event
from kbuild.engine.ssh import Connection, Result
from kbuild.errors import KbuildError, UnreachableError, UsageError
from kbuild.inventory import Cluster, Host
from kbuild.plays import bootstrap as bootstrap_play
from kbuild.plays import reset as reset_play
from kbuild.plays.desired import INPUTS
from kbuild.plays.etcd_ops.commands import all_endpoints, ctl
from kbuild.plays.phases import Context, Phase, check_skip, run_phases
from kbuild.plays.upgrade import UpgradePlan, UpgradeRefused, survey
from kbuild.plays.upgrade import run as run_upgrade
from kbuild.plays.upgrade.guard import known_binaries

# What an upgrade needs of bootstrap before it rolls hosts: the PKI, and the binaries fetched and verified.
UPGRADE_PREPARATION = ("pki", "artifacts")
# The addons after the hosts: applied again if their manifest changed, and waited for. Draining the only
# worker evicts every CoreDNS replica, so without this the upgrade would end while names do not resolve.
UPGRADE_FINISH = ("addons",)
PING_PROBE = ('printf "%s %s %s\\n" "$(uname -m)" "$(. /etc/os-release 2>/dev/null; '
              'echo "${PRETTY_NAME:-unknown OS}")" "$(id -un)"')


def bootstrap_phase_names() -> list[str]:
    return [p.name for p in bootstrap_play.PHASES]


def check_bootstrap_skip(skip: set[str]) -> None:
    """An argument check (exit 2), before anything is read or contacted."""
    check_skip(bootstrap_play.PHASES, skip)


def bootstrap(ctx: Context, skip: set[str]) -> None:
    """Every bootstrap phase but the skipped ones; the phase timings are reported even after a failure."""
    try:
        run_phases(ctx, bootstrap_play.PHASES, skip=skip)
    finally:
        ctx.reporter.emit(Event("timings", data={k: round(v, 3) for k, v in ctx.timings.items()}))


def _phases(names: tuple[str, ...]) -> list[Phase]:
    return [p for p in bootstrap_play.PHASES if p.name in names]


def preflight(ctx: Context) -> None:
    """Bootstrap's preflight phase alone."""
    run_phases(ctx, _phases(("preflight",)))


def upgrade_survey(ctx: Context, max_unavailable: int) -> UpgradePlan:
    """The plan, from the versions running on every host (recorded in the run log)."""
    result = survey(ctx, max_unavailable=max_unavailable, known=known_binaries(ctx))
    ctx.reporter.emit(Event("upgrade.plan", data=result.as_json()))
    return result


def upgrade(ctx: Context, plan: UpgradePlan) -> list[str]:
    """Roll the hosts through `plan`, after the PKI and the binaries are ready; the steps done."""
    if plan.refusals:
        raise UpgradeRefused(plan, command="kbuild upgrade apply", plan_command=ctx.cluster.command("upgrade plan"))
    run_phases(ctx, _phases(UPGRADE_PREPARATION))
    done = run_upgrade(ctx, plan, ctx.state.get(INPUTS))
    run_phases(ctx, _phases(UPGRADE_FINISH))
    return done


def reset_plans(cluster: Cluster, hosts: list[Host], *, purge_data: bool) -> dict[str, reset_play.ResetPlan]:
    return {h.name: reset_play.plan(cluster, h, purge_data=purge_data) for h in hosts}


def ping(ctx: Context, names: list[str]) -> None:
    """Connect to every host (recording or checking its host key) and run a probe as root."""
    def probe(conn: Connection) -> str:
        result = conn.run(PING_PROBE)
        if not result.ok:
            raise KbuildError(f"{conn.target.name}: probe failed: {result.err.strip()}")
        arch, _, rest = result.out.strip().partition(" ")
        system, _, user = rest.rpartition(" ")
        return f"pong ({arch}, {system}, running as {user})"

    ctx.session.each("ping", names, probe)


def exec_command(ctx: Context, names: list[str], text: str) -> None:
    """An ad-hoc shell command on every host; a non-zero exit fails that host."""
    def run(conn: Connection) -> str:
        result = conn.run(text)
        output = (result.out + result.err).rstrip()
        if not result.ok:
            raise KbuildError(f"exit {result.rc}" + (f":\n{output}" if output else ""))
        return output or "(no output)"

    ctx.session.each("exec", names, run)


def etcdctl_hosts(cluster: Cluster, host: str | None) -> list[Host]:
    """The etcd hosts etcdctl may run on (--host narrows them), or a clear exit 2."""
    candidates = [h for h in cluster.etcd_hosts if host is None or h.name == host]
    if not candidates:
        raise UsageError(f"--host {host}: not an etcd host of {cluster.inventory_path}" if host
                         else "the inventory has no etcd host")
    return candidates


def etcdctl(ctx: Context, candidates: list[Host], args: list[str]) -> Result:
    """etcdctl on the first candidate that answers, with every member as endpoint."""
    cluster = ctx.cluster
    command = ctl(cluster, *args, endpoints=all_endpoints(cluster))
    errors = []
    for candidate in candidates:
        try:
            result = ctx.session.run("etcd-ctl", candidate.name, command, timeout=None)
        except UnreachableError as exc:
            errors.append(str(exc))
            continue
        return result
    raise UnreachableError("no etcd host reachable to run etcdctl on:\n  " + "\n  ".join(errors))
