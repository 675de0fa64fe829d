"""The `kbuild` command: a thin Typer shell that parses arguments, calls kbuild, and prints results.

Each command group lives in its own module here and is registered below. Known errors
(KbuildError) are printed as one clean message with their exit code (as one JSON object with
--json, see failure.py); anything unexpected is written with its traceback to a debug log, and the
user is told where.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Optional

import typer
import typer.completion

from kbuild import __version__
from kbuild.cli import artifacts, certs, cluster, etcd_cmd, failure, hosts, inventory_cmd, lab, render_cmd, upgrade
from kbuild.crashlog import write_crash_log
from kbuild.errors import ExitCode, KbuildError, UsageError

# kubectl's and Ansible's habit: -h as well as --help, inherited by every group and command below.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
COMPLETE_VAR = "_KBUILD_COMPLETE"

app = typer.Typer(
    name="kbuild",
    help="Declarative, idempotent Kubernetes clusters on your own Linux hosts, over SSH.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=CONTEXT_SETTINGS,
    # Typer's own --install-completion ignores a shell named after it; ours below takes one.
    add_completion=False,
)
typer.completion.completion_init()  # the shell classes `_KBUILD_COMPLETE=zsh_source kbuild` needs
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


def _shell(value: str) -> str | None:
    """The shell named after --install/--show-completion, or None to detect the one running kbuild."""
    if value and value not in SHELLS:
        raise UsageError(f"--install-completion: unknown shell {value!r}; shells are {', '.join(SHELLS)}")
    return value or None


def _install_completion(ctx: typer.Context, _: typer.CallbackParam, value: Optional[str]) -> None:
    if value is None or ctx.resilient_parsing:
        return
    shell, path = typer.completion.install(shell=_shell(value), prog_name="kbuild", complete_var=COMPLETE_VAR)
    typer.echo(f"{shell} completion installed in {path}; it takes effect in a new shell")
    raise typer.Exit()


def _show_completion(ctx: typer.Context, _: typer.CallbackParam, value: Optional[str]) -> None:
    if value is None or ctx.resilient_parsing:
        return
    shell = _shell(value) or typer.completion._get_shell_name() or "bash"
    typer.echo(typer.completion.get_completion_script(prog_name="kbuild", complete_var=COMPLETE_VAR, shell=shell))
    raise typer.Exit()


def _completion_option(name: str, callback: object, what: str) -> typer.models.OptionInfo:
    return typer.Option(name, callback=callback, is_eager=True, expose_value=False, metavar="[SHELL]",
                        help=f"{what} for SHELL ({', '.join(SHELLS)}; default: this shell).")


def _with_completion_shell(args: list[str]) -> list[str]:
    """`--install-completion` alone means "the shell running kbuild": click's options have no optional values
    (Typer drops flag_value), so an empty value stands for it."""
    out = list(args)
    for i, arg in enumerate(args):
        if arg in ("--install-completion", "--show-completion") and (i + 1 == len(args) or args[i + 1][:1] == "-"):
            out.insert(i + 1 + (len(out) - len(args)), "")
    return out


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
    install_completion: Annotated[Optional[str], _completion_option(
        "--install-completion", _install_completion, "Install completion")] = None,
    show_completion: Annotated[Optional[str], _completion_option(
        "--show-completion", _show_completion, "Print the completion script")] = None,
) -> None:
    """Declarative, idempotent Kubernetes clusters on your own Linux hosts, over SSH."""


def run(argv: list[str] | None = None) -> int:
    """Run the CLI with `argv` and return the exit code, printing known errors as one clean message."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = failure.json_requested(args)
    try:
        code = _invoke(_with_completion_shell(args))
    except KbuildError as exc:
        return failure.report_error(exc, as_json=as_json)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except BrokenPipeError:
        return int(ExitCode.BROKEN_PIPE)  # the reader went away (`| head`): nothing left to tell it
    except KeyboardInterrupt:
        return failure.report(ExitCode.INTERRUPTED, "interrupted", as_json=as_json)
    except typer.Abort:  # Ctrl-C or EOF at a confirmation prompt
        return failure.report(ExitCode.INTERRUPTED, "aborted: nothing was changed", as_json=as_json)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: log it, no traceback on screen
        if _is_usage_error(exc):  # unknown option, missing value, bad choice
            if as_json:
                return failure.report(ExitCode.BAD_INPUT, exc.format_message(), as_json=True)  # type: ignore[attr-defined]
            exc.show()  # type: ignore[attr-defined]
            return int(ExitCode.BAD_INPUT)
        try:
            log = str(write_crash_log(traceback.format_exc()))
        except OSError as log_error:
            log = f"nowhere: it could not be written ({log_error.strerror or log_error})"
        return failure.report(ExitCode.FAILED, f"internal error in kbuild ({exc!r}); the traceback is in {log}",
                              as_json=as_json)
    return code if isinstance(code, int) else 0


def _invoke(args: list[str]) -> object:
    """Parse and run the command. Not through app(): Typer's main turns a broken pipe into a plain exit 1 and
    Ctrl-C into a silent 130, both before run() could tell them as the README says."""
    if os.environ.get(COMPLETE_VAR):  # a shell asking for completions: Typer's main answers and exits
        return app(args=args, prog_name="kbuild", complete_var=COMPLETE_VAR)
    command = typer.main.get_command(app)
    with command.make_context("kbuild", args) as ctx:
        return command.invoke(ctx)


def _is_usage_error(exc: Exception) -> bool:
    # Typer vendors click; its ClickException subclasses know how to print themselves.
    return hasattr(exc, "show") and hasattr(exc, "exit_code") and type(exc).__module__.startswith("typer")


def main() -> None:
    """Console-script entry point."""
    code = run()
    if code == ExitCode.BROKEN_PIPE:
        # Python flushes stdout once more at exit and would print "Exception ignored ... BrokenPipeError":
        # point the descriptor at /dev/null first, as the Python documentation advises for SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)
