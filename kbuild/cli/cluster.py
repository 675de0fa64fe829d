"""`kbuild bootstrap` and `kbuild preflight`: bring hosts to the inventory's cluster, or check they can be."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kbuild.artifacts import use_bundle
from kbuild.cli.common import InventoryOption, StateDirOption, load
from kbuild.cli.session import (
    CheckOption, DiffOption, FailFastOption, ForksOption, JsonEventsOption, LimitOption, RunOptions, VerboseOption,
    engine_session, finish,
)
from kbuild.engine.report import Event
from kbuild.plays import bootstrap as bootstrap_play
from kbuild.plays.phases import Context, run_phases

SkipOption = Annotated[Optional[str], typer.Option(
    "--skip-phases", help=f"Comma-separated phases to skip ({', '.join(p.name for p in bootstrap_play.PHASES)}).")]
BundleOption = Annotated[Optional[Path], typer.Option(
    "--bundle", help="Install from an offline bundle (kbuild artifacts bundle) with no network at all.")]


def bootstrap(
    inventory: InventoryOption, state_dir: StateDirOption = None, check: CheckOption = False, diff: DiffOption = False,
    forks: ForksOption = 10, limit: LimitOption = None, as_json: JsonEventsOption = False,
    verbose: VerboseOption = False, fail_fast: FailFastOption = False, skip_phases: SkipOption = None,
    bundle: BundleOption = None,
) -> None:
    """Bring every host to the cluster the inventory describes. Safe to re-run: only differences are applied."""
    cluster = load(inventory, state_dir)
    if bundle is not None:
        use_bundle(bundle, cluster)
    options = RunOptions(check=check, diff=diff, forks=forks, limit=limit, json=as_json, verbose=verbose,
                         fail_fast=fail_fast)
    skip = {s.strip() for s in (skip_phases or "").split(",") if s.strip()}
    with engine_session(cluster, options, "bootstrap") as session:
        ctx = Context(cluster, session, check=check)
        try:
            run_phases(ctx, bootstrap_play.PHASES, skip=skip)
        finally:
            bootstrap_play.cleanup(ctx)
            session.reporter.emit(Event("timings", data={k: round(v, 3) for k, v in ctx.timings.items()}))
        if not check:
            session.reporter.message(f"admin kubeconfig: {cluster.state_dir / 'admin.conf'} "
                                     f"(kbuild kubeconfig -i {inventory} prints or merges it)")
    finish(session)


def preflight(
    inventory: InventoryOption, state_dir: StateDirOption = None, forks: ForksOption = 10,
    limit: LimitOption = None, as_json: JsonEventsOption = False,
) -> None:
    """Check that every host can run its roles (OS, systemd, memory, disk, swap, ports, clocks, modules, tools)."""
    cluster = load(inventory, state_dir)
    options = RunOptions(forks=forks, limit=limit, json=as_json)
    with engine_session(cluster, options, "preflight") as session:
        ctx = Context(cluster, session)
        run_phases(ctx, [bootstrap_play.PHASES[0]])
        session.reporter.message("preflight passed: every host can run its roles")
    finish(session)
