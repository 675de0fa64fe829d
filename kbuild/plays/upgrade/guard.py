"""`kbuild bootstrap`'s upgrade phase: when hosts run other versions than the inventory, roll them first.

Editing cluster.versions and running `kbuild bootstrap` is the declarative way to upgrade, as `k0sctl
apply` upgrades when its config names a newer version; so bootstrap does not refuse, but it never does
a parallel replace either: this phase, before the artifacts phase, checks the versions against the skew
policy (refusing before anything is downloaded or changed), then runs exactly what `kbuild upgrade
apply` runs (same plan, snapshot, order and gates); the later phases find those hosts already right.
Hosts that run nothing yet are left to those phases.
"""

from __future__ import annotations

from kbuild.artifacts import cluster_artifacts
from kbuild.errors import ExitCode, KbuildError, UsageError
from kbuild.plays.desired import INPUTS
from kbuild.plays.desired import prepare_inputs as desired_inputs
from kbuild.plays.phases import Context
from kbuild.plays.upgrade import rolling
from kbuild.plays.upgrade.observe import survey
from kbuild.plays.upgrade.plan import UpgradePlan
from kbuild.plays.upgrade.running import BY_NAME, cluster_target, detect

PHASE = "upgrade"


class UpgradeRefused(KbuildError):
    """The version skew policy forbids the requested upgrade; nothing on the hosts was changed."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, plan: UpgradePlan, *, command: str, plan_command: str) -> None:
        lines = [f"{command}: the upgrade is refused, nothing was changed:"]
        lines += [f"  - {f.message} ({f.source})" for f in plan.refusals]
        super().__init__("\n".join(lines), hint="fix cluster.versions in the inventory"
                                                f"{' (or --to)' if 'upgrade' in command else ''}, then "
                                                f"`{plan_command}` shows the steps")
        self.plan = plan


def known_binaries(ctx: Context) -> dict[str, dict[str, tuple[str, str]]]:
    """host -> component -> (sha256, version) of the target binaries already in the controller's cache (no
    network), so the version probe need not run binaries that are already the target ones."""
    target = cluster_target(ctx.cluster)
    known: dict[str, dict[str, tuple[str, str]]] = {}
    for host, artifacts in cluster_artifacts(ctx.cluster, prepare=False).items():
        for artifact in artifacts:
            if artifact.name in BY_NAME and artifact.sha256:
                known.setdefault(host, {})[artifact.name] = (artifact.sha256, str(target[artifact.name]))
    return known


def prepare_inputs(ctx: Context) -> dict:
    """What every host should have at the target versions (binaries fetched and verified), as the artifacts
    phase makes it; kept in the state (INPUTS) for the phases that follow."""
    inputs = desired_inputs(ctx.cluster, ctx.session.hosts)
    ctx.state.put(INPUTS, inputs)
    return inputs


def bootstrap_phase(ctx: Context) -> None:
    cluster = ctx.cluster
    known = known_binaries(ctx)
    if {h.name for h in ctx.session.hosts} != {h.name for h in cluster.hosts}:
        _limited(ctx, known)
        return
    plan = survey(ctx, known=known)
    if plan.refusals:
        raise UpgradeRefused(plan, command="kbuild bootstrap", plan_command=cluster.command("upgrade plan"))
    if not plan.upgrading:
        # Units merely stopped, or restarts owed, with every version right: the phases below repair those.
        for warning in plan.warnings:
            ctx.say(f"warning: {warning.message}", phase=PHASE)
        ctx.say("every host runs the inventory's versions", phase=PHASE)
        return
    verb = "would roll" if ctx.check else "rolling"
    ctx.say(f"hosts run other versions than the inventory: {verb} them in the upgrade order first "
            f"(the same as `kbuild upgrade apply`):\n{plan.text()}", phase=PHASE)
    if ctx.check:
        return
    rolling.run(ctx, plan, prepare_inputs(ctx))
    ctx.say("rolling upgrade done; the remaining phases apply everything else", phase=PHASE)


def _limited(ctx: Context, known: dict) -> None:
    """With --limit, an upgrade cannot be checked against hosts outside the limit: refuse rather than guess."""
    target = cluster_target(ctx.cluster)
    observed = detect(ctx, list(ctx.session.hosts), known)
    behind = sorted(f"{c} {i.version} on {h}" for h, hv in observed.items() for c, i in hv.components.items()
                    if i.present and i.version != target[c])
    if behind:
        raise UsageError(f"kbuild bootstrap --limit: {', '.join(behind[:6])} differ from the inventory's versions; "
                          "an upgrade is planned over every host (the skew policy spans the cluster), never "
                          "under --limit; nothing was changed",
                          hint=f"run `kbuild bootstrap` without --limit, or `{ctx.cluster.command('upgrade apply')}`")
    ctx.say("the selected hosts run the inventory's versions", phase=PHASE)
