"""`kbuild ping` and `kbuild exec`: reach every host (verifying host keys), or run an ad-hoc command."""

from __future__ import annotations

from typing import Annotated

import typer

from kbuild.cli.common import InventoryOption, StateDirOption, load
from kbuild.cli.session import (
    FailFastOption, ForksOption, JsonEventsOption, LimitOption, RunOptions, VerboseOption, engine_session, finish,
)
from kbuild.plays import actions
from kbuild.plays.phases import Context


def ping(inventory: InventoryOption, state_dir: StateDirOption = None, limit: LimitOption = None,
         forks: ForksOption = 10, as_json: JsonEventsOption = False) -> None:
    """Connect to every host (recording or checking its host key) and run a command as root."""
    cluster = load(inventory, state_dir)
    with engine_session(cluster, RunOptions(forks=forks, limit=limit, json=as_json), "ping") as session:
        actions.ping(Context(cluster, session), session.host_names)
    finish(session)


def exec_command(
    inventory: InventoryOption,
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    state_dir: StateDirOption = None, limit: LimitOption = None, forks: ForksOption = 10,
    as_json: JsonEventsOption = False, verbose: VerboseOption = False, fail_fast: FailFastOption = False,
) -> None:
    """Run an ad-hoc shell command on hosts (as root); a non-zero exit fails that host."""
    cluster = load(inventory, state_dir)
    options = RunOptions(forks=forks, limit=limit, json=as_json, verbose=verbose, fail_fast=fail_fast)
    with engine_session(cluster, options, "exec") as session:
        actions.exec_command(Context(cluster, session), session.host_names, " ".join(command))
    finish(session)
