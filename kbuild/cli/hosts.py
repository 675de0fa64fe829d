"""`kbuild ping` and `kbuild exec`: reach every host (verifying host keys), or run an ad-hoc command."""

from __future__ import annotations

from typing import Annotated

import typer

from kbuild.cli.common import InventoryOption, StateDirOption, load
from kbuild.cli.session import (
    FailFastOption, ForksOption, JsonEventsOption, LimitOption, RunOptions, VerboseOption, engine_session, finish,
)
from kbuild.engine.ssh import Connection
from kbuild.errors import KbuildError

PROBE = 'printf "%s %s %s\\n" "$(uname -m)" "$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown OS}")" "$(id -un)"'


def ping(inventory: InventoryOption, state_dir: StateDirOption = None, limit: LimitOption = None,
         forks: ForksOption = 10, as_json: JsonEventsOption = False) -> None:
    """Connect to every host (recording or checking its host key) and run a command as root."""
    cluster = load(inventory, state_dir)
    with engine_session(cluster, RunOptions(forks=forks, limit=limit, json=as_json), "ping") as session:
        def probe(conn: Connection) -> str:
            result = conn.run(PROBE)
            if not result.ok:
                raise KbuildError(f"{conn.target.name}: probe failed: {result.err.strip()}")
            arch, _, rest = result.out.strip().partition(" ")
            system, _, user = rest.rpartition(" ")
            return f"pong ({arch}, {system}, running as {user})"

        session.runner.each("ping", session.host_names, probe)
    finish(session)


def exec_command(
    inventory: InventoryOption,
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    state_dir: StateDirOption = None, limit: LimitOption = None, forks: ForksOption = 10,
    as_json: JsonEventsOption = False, verbose: VerboseOption = False, fail_fast: FailFastOption = False,
) -> None:
    """Run an ad-hoc shell command on hosts (as root); a non-zero exit fails that host."""
    cluster = load(inventory, state_dir)
    text = " ".join(command)
    options = RunOptions(forks=forks, limit=limit, json=as_json, verbose=verbose, fail_fast=fail_fast)
    with engine_session(cluster, options, "exec") as session:
        def run(conn: Connection) -> str:
            result = conn.run(text)
            output = (result.out + result.err).rstrip()
            if not result.ok:
                raise KbuildError(f"exit {result.rc}" + (f":\n{output}" if output else ""))
            return output or "(no output)"

        session.runner.each("exec", session.host_names, run)
    finish(session)
