"""`kbuild upgrade plan|apply`: roll a cluster to new versions in the order the version skew policy requires."""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated, Optional

import typer

from kbuild.cli.common import InventoryOption, StateDirOption, load, new_console, print_json, yes_option
from kbuild.cli.session import (
    ForksOption,
    JsonEventsOption,
    RunOptions,
    VerboseOption,
    engine_session,
    finish,
)
from kbuild.errors import ExitCode, KbuildError, UsageError
from kbuild.inventory import Cluster
from kbuild.plays import actions
from kbuild.plays.phases import Context
from kbuild.plays.upgrade import UpgradePlan, UpgradeStopped, Version

app = typer.Typer(help="Rolling upgrades: etcd and the control plane one host at a time, workers drained in batches.",
                  no_args_is_help=True)

ToOption = Annotated[Optional[str], typer.Option(
    "--to", help="Kubernetes version to upgrade to (default: cluster.versions.kubernetes in the inventory).")]
MaxUnavailableOption = Annotated[int, typer.Option(
    "--max-unavailable", min=1, max=1000, help="Workers cordoned, drained and upgraded at a time.")]
YesOption = Annotated[bool, yes_option("Do not ask for confirmation.")]
PHASE = "upgrade"


def target_cluster(cluster: Cluster, to: str | None) -> Cluster:
    """The cluster as it should be after the upgrade: the inventory, with --to as its Kubernetes version."""
    if to is None:
        return cluster
    try:
        version = Version.parse(to)
    except UsageError as exc:
        raise UsageError(f"--to: {exc.message}") from None
    settings = cluster.settings
    versions = settings.versions.model_copy(update={"kubernetes": str(version)})
    return dataclasses.replace(cluster, settings=settings.model_copy(update={"versions": versions}))


def plan(
    inventory: InventoryOption, to: ToOption = None, state_dir: StateDirOption = None,
    max_unavailable: MaxUnavailableOption = 1, forks: ForksOption = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON document.")] = False,
) -> None:
    """Read the versions running on every host, check the target against the skew policy, print the steps.

    Exit 0 when the upgrade may go ahead (or there is nothing to do), 2 when the policy refuses it.
    """
    cluster = target_cluster(load(inventory, state_dir), to)
    with engine_session(cluster, RunOptions(forks=forks, quiet=True), "upgrade-plan") as session:
        result = actions.upgrade_survey(Context(cluster, session), max_unavailable)
    if as_json:
        print_json(result.as_json())
    else:
        typer.echo(f"upgrade plan for cluster {cluster.name} ({inventory}):\n")
        typer.echo(result.text())
        if result.work and not result.refusals:
            again = cluster.command("upgrade apply") + (f" --to {to}" if to else "")
            typer.echo(f"\nrun `{again}` to apply it")
    if result.refusals:
        raise typer.Exit(int(ExitCode.BAD_INPUT))
    finish(session)


def apply(
    inventory: InventoryOption, to: ToOption = None, state_dir: StateDirOption = None,
    max_unavailable: MaxUnavailableOption = 1, yes: YesOption = False, forks: ForksOption = 10,
    as_json: JsonEventsOption = False, verbose: VerboseOption = False,
) -> None:
    """Upgrade: an etcd snapshot (kept); etcd members one at a time, the leader last; kube-apiservers one at a
    time; controller-managers and schedulers; workers in batches (cordon, drain, upgrade, Ready, uncordon).

    Hosts already at the target are skipped, so a stopped or failed upgrade resumes when run again.
    Ctrl-C stops after the host in progress (exit 130), never in the middle of one.
    """
    loaded = load(inventory, state_dir)
    cluster = target_cluster(loaded, to)
    console = new_console(stderr=True)
    options = RunOptions(forks=forks, json=as_json, verbose=verbose)
    with engine_session(cluster, options, "upgrade") as session:
        ctx = Context(cluster, session)
        result = actions.upgrade_survey(ctx, max_unavailable)
        if not as_json:
            console.print(result.text(), markup=False)
        if not result.work and not result.refusals:
            session.reporter.message("nothing to do: every host runs the target versions", phase=PHASE)
            return
        if not result.refusals:
            _confirm(result, yes=yes, as_json=as_json)
        try:
            done = actions.upgrade(ctx, result)
        except UpgradeStopped as exc:
            # The stop itself was reported as an event; what remains to say is how to go on.
            console.print(f"hint: {exc.hint}", markup=False)
            raise typer.Exit(int(exc.exit_code)) from None
        session.reporter.message(f"upgrade complete: {len(done)} step(s) done", phase=PHASE)
        if to and loaded.settings.versions.kubernetes != cluster.settings.versions.kubernetes:
            session.reporter.message(
                f"set cluster.versions.kubernetes to {cluster.settings.versions.kubernetes} in {inventory}: until "
                f"then `kbuild bootstrap` sees a downgrade to {loaded.settings.versions.kubernetes} and refuses it",
                phase=PHASE)
    finish(session)


def _confirm(result: UpgradePlan, *, yes: bool, as_json: bool) -> None:
    if yes:
        return
    if as_json or not sys.stdin.isatty():
        raise UsageError("kbuild upgrade apply asks for confirmation, and cannot here (no terminal, or --json)",
                         hint="review `kbuild upgrade plan`, then add --yes")
    steps = len(result.work)
    if not typer.confirm(f"apply these {steps} step(s)?", default=False, err=True):
        raise KbuildError("not confirmed: nothing was changed")


app.command("plan")(plan)
app.command("apply")(apply)
