"""Options and helpers shared by command groups: the inventory option, loading it, printing warnings and tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from kbuild.errors import UsageError
from kbuild.inventory import Cluster, load_cluster, textfile

STDIN = Path("-")
InventoryOption = Annotated[
    Path,
    typer.Option("-i", "--inventory", help="Inventory: kbuild YAML, an Ansible INI/YAML inventory (file or "
                 "directory), ansible-inventory --list JSON, or a k0sctl.yaml; - reads kbuild YAML from stdin "
                 "(then --state-dir is required).",
                 envvar="KBUILD_INVENTORY"),
]
StateDirOption = Annotated[
    Optional[Path],
    typer.Option("--state-dir", help="State directory (default: .kbuild/<cluster> next to the inventory).",
                 envvar="KBUILD_STATE_DIR"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")]
JsonDocumentOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def yes_option(help: str) -> object:  # noqa: A002 - the word Typer uses
    """--yes, with -y as Ansible's and apt's users type it."""
    return typer.Option("--yes", "-y", help=help)


def load(inventory: Path, state_dir: Optional[Path] = None) -> Cluster:
    """Load and validate the inventory; warnings go to stderr, errors raise InventoryError (exit 2)."""
    if inventory == STDIN:
        cluster = load_cluster(STDIN, state_dir=_stdin_state_dir(state_dir), text=_read_stdin())
    else:
        cluster = load_cluster(inventory, state_dir=state_dir)
    print_warnings(cluster.warnings)
    return cluster


def _stdin_state_dir(state_dir: Optional[Path]) -> Path:
    if state_dir is None:
        # There is no file to put .kbuild/<cluster> next to, and a guess would scatter PKI in the cwd.
        raise UsageError("-i -: an inventory read from stdin needs --state-dir (or KBUILD_STATE_DIR)",
                         hint="kbuild COMMAND -i - --state-dir .kbuild/CLUSTER < inventory.yaml")
    return state_dir


def _read_stdin() -> str:
    return textfile.read_bounded(sys.stdin.buffer, "-i - (stdin)", "inventory")


def print_json(data: object) -> None:
    """One JSON document on stdout (paths and other values as their text)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def print_warnings(warnings: Iterable[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


class _Output(Console):
    """rich's Console, except that a closed pipe raises BrokenPipeError for the CLI to end quietly (rich's own
    handler exits 1 at once, which would hide the code the README promises)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


# Wide enough that no table or line is cut or wrapped when stdout is a file or a pipe.
PIPE_WIDTH = 10_000


def new_console(*, stderr: bool = False) -> Console:
    """A console for command output: the terminal's width on a terminal, full width in a pipe (rich would
    otherwise squeeze every table into 80 columns)."""
    out = _Output(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out = _Output(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return out
