"""The `kbuild` command: a thin Typer shell that parses arguments, calls kbuild, and prints results.

Each command group lives in its own module here and is registered below. Known errors
(KbuildError) are printed as one clean message with their exit code; anything unexpected
is written with its traceback to a debug log, and the user is told where.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Optional

import typer
from rich.console import Console

from kbuild import __version__
from kbuild.cli import artifacts, certs, cluster, etcd_cmd, hosts, inventory_cmd, lab, render_cmd, upgrade
from kbuild.crashlog import write_crash_log
from kbuild.errors import ExitCode, KbuildError

app = typer.Typer(
    name="kbuild",
    help="Declarative, idempotent Kubernetes clusters on your own Linux hosts, over SSH.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# The main job first, then the areas, then the helpers.
app.command("bootstrap")(cluster.bootstrap)
app.command("preflight")(cluster.preflight)
app.command("status")(cluster.status)
app.command("reset")(cluster.reset)
app.command("kubeconfig")(cluster.kubeconfig)
app.add_typer(certs.app, name="certs")
app.add_typer(artifacts.app, name="artifacts")
app.command("render")(render_cmd.render)
app.add_typer(inventory_cmd.app, name="inventory")
app.command("ping")(hosts.ping)
app.command("exec")(hosts.exec_command)
app.add_typer(lab.app, name="lab")
app.add_typer(etcd_cmd.app, name="etcd")
app.add_typer(upgrade.app, name="upgrade")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kbuild {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Declarative, idempotent Kubernetes clusters on your own Linux hosts, over SSH."""


def run(argv: list[str] | None = None) -> int:
    """Run the CLI with `argv` and return the exit code, printing known errors as one clean message."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        # Without standalone mode, click hands back the code of a typer.Exit instead of exiting.
        code = app(args=argv, prog_name="kbuild", standalone_mode=False)
    except KbuildError as exc:
        err.print(f"error: {exc}", markup=False)
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: log it, no traceback on screen
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            return int(ExitCode.BAD_INPUT)
        try:
            log = str(write_crash_log(traceback.format_exc()))
        except OSError as log_error:
            log = f"nowhere: it could not be written ({log_error.strerror or log_error})"
        err.print(f"error: internal error in kbuild ({exc!r}); the traceback is in {log}", markup=False)
        return int(ExitCode.FAILED)
    return code if isinstance(code, int) else 0


def _is_usage_error(exc: Exception) -> bool:
    # Typer vendors click; its ClickException subclasses know how to print themselves.
    return hasattr(exc, "show") and hasattr(exc, "exit_code") and type(exc).__module__.startswith("typer")


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
