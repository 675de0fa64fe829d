"""`kbuild certs`: generate the cluster PKI, check expiry and fit, renew certificates (all local, no SSH)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from kbuild.cli.common import (
    InventoryOption, JsonOption, StateDirOption, load, new_console, print_json, print_warnings, yes_option,
)
from kbuild.errors import ExitCode, KbuildError, UsageError
from kbuild.pki import CERTS, KUBECONFIGS, Action, EnsureReport, ensure
from kbuild.pki import check as check_pki


def _catalogue() -> str:
    # The help text comes from the same table that drives generation, renewal and the check.
    lines = ["\b", "Certificates (CAs first; per-host ones are NAME/HOST):"]
    lines += [f"  {c.name:<26}{'CA: ' if c.is_ca else ''}{c.description}" for c in CERTS]
    lines += ["\b", "Kubeconfigs (client certificates embedded):"]
    lines += [f"  {k.name:<26}{k.description}" for k in KUBECONFIGS]
    return "\n".join(lines)


app = typer.Typer(help="Generate, check and renew the cluster PKI in the state directory.\n\n" + _catalogue(),
                  no_args_is_help=True)

FORCE_NEW_CA_HELP = (
    "DANGEROUS: replace the cluster, etcd and front-proxy CAs, and so reissue every certificate and "
    "kubeconfig. A running cluster breaks until every host has the new files (etcd peers, apiservers, "
    "kubelets reject each other meanwhile), and every admin.conf handed out stops working. The old PKI "
    "is copied to <state>/backups/pki-<time>/ first; the service-account key and the encryption key "
    "are kept. Use it for an expired or compromised CA, or a cluster not yet deployed."
)
CheckOption = Annotated[bool, typer.Option("--check", help="Say what would be done; write nothing.")]
VerboseOption = Annotated[bool, typer.Option("-v", "--verbose", help="Also list every item reused as it is.")]


@app.command("generate")
def generate(
    inventory: InventoryOption,
    state_dir: StateDirOption = None,
    force_new_ca: Annotated[bool, typer.Option("--force-new-ca", help=FORCE_NEW_CA_HELP)] = False,
    yes: Annotated[bool, yes_option("Do not ask before --force-new-ca.")] = False,
    dry_run: CheckOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create the PKI, or reuse it: existing files are loaded, their validity and chain checked, and only
    a missing, expiring or no longer matching certificate is reissued. CAs are never replaced unless
    --force-new-ca is given."""
    cluster = load(inventory, state_dir)
    if force_new_ca and not dry_run and not yes:
        _confirm_new_ca()
    report = ensure(cluster, force_new_ca=force_new_ca, dry_run=dry_run)
    _print_report(report, verbose=verbose, as_json=as_json)


@app.command("renew")
def renew(
    inventory: InventoryOption,
    names: Annotated[Optional[list[str]], typer.Argument(
        help="Certificates to reissue: a table name (all its hosts), NAME/HOST, or a kubeconfig name "
             "(admin.conf) for its client certificate. See `kbuild certs --help`.",
        show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Reissue every certificate (not the CAs).")] = False,
    state_dir: StateDirOption = None,
    dry_run: CheckOption = False,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Reissue certificates from the same CA (new keys, new serials) and rewrite the kubeconfigs that
    embed them. The next apply deploys them and restarts the services that use them."""
    if bool(names) == all_:
        raise UsageError("name the certificates to renew, or pass --all (not both)",
                         hint="kbuild certs renew -i INV apiserver admin   |   kbuild certs renew -i INV --all")
    cluster = load(inventory, state_dir)
    chosen = [c.name for c in CERTS if not c.is_ca] if all_ else list(names or [])
    report = ensure(cluster, renew=chosen, dry_run=dry_run)
    _print_report(report, verbose=verbose, as_json=as_json)


def check(inventory: InventoryOption, state_dir: StateDirOption = None, as_json: JsonOption = False) -> None:
    """Show every certificate and kubeconfig: subject, expiry, time left, signing CA, and whether it
    still matches the inventory. Exits 1 if any is missing, expired, within renew_before_days of
    expiring, or no longer matches."""
    cluster = load(inventory, state_dir)
    report = check_pki(cluster)
    if as_json:
        print_json(report.as_json())
        if not report.ok:
            raise typer.Exit(int(ExitCode.FAILED))  # the document says what is wrong: one JSON value on stdout
    else:
        console = new_console()
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("CERTIFICATE", no_wrap=True)
        for header in ("EXPIRES (UTC)", "RESIDUAL TIME", "CA", "MATCHES INVENTORY", "STATUS"):
            table.add_column(header, no_wrap=True)
        table.add_column("SUBJECT", overflow="fold")
        for s in report.statuses:
            table.add_row(s.name, f"{s.not_after:%Y-%m-%d %H:%M}" if s.not_after else "-", s.residual,
                          s.ca or "-", "yes" if s.matches else "no", s.state, s.subject or "-")
        console.print(table)
        for s in report.statuses:
            for problem in s.problems if not s.ok else ():
                console.print(f"{s.name}: {problem}", markup=False)
        print_warnings(report.warnings)
        if report.ok:
            console.print(f"all {len(report.statuses)} items are valid and match the inventory", markup=False)
    if not report.ok:
        bad = [s for s in report.statuses if not s.ok]
        raise KbuildError(f"{len(bad)} of {len(report.statuses)} PKI items need attention "
                          f"({', '.join(sorted({s.state for s in bad}))})",
                          hint=f"{cluster.command('certs generate')} reissues certificates and kubeconfigs; "
                               "a CA is replaced only with --force-new-ca")


# kubeadm's name for the same check, so `kubeadm certs check-expiration` habits work: one implementation.
app.command("check")(check)
app.command("check-expiration", help="The same as `kbuild certs check` (kubeadm's name for it).")(check)


# -- output -------------------------------------------------------------------------------------------------

_VERBS = {
    Action.CREATED: "Generating",
    Action.REISSUED: "Reissuing",
    Action.REPLACED: "Replacing",
    Action.REUSED: "Using existing",
}


def _print_report(report: EnsureReport, *, verbose: bool, as_json: bool) -> None:
    if as_json:
        print_json({
            "state_dir": str(report.state_dir),
            "dry_run": report.dry_run,
            "backup": str(report.backup) if report.backup else None,
            "outcomes": [{"name": o.name, "kind": o.kind, "action": o.action.value, "reason": o.reason,
                          "paths": [str(p) for p in o.paths]} for o in report.outcomes],
            "warnings": list(report.warnings),
        })
        return
    would = "[check] would be " if report.dry_run else ""
    if report.backup:
        typer.echo(f"[certs] previous PKI copied to {report.backup}")
    for o in report.outcomes:
        if o.action is Action.REUSED and not verbose:
            continue
        prefix = "[kubeconfig]" if o.kind == "kubeconfig" else "[certs]"
        verb = f"{would}{o.action.value}:" if report.dry_run else _VERBS[o.action]
        typer.echo(f"{prefix} {verb} {o.name} {_noun(o.kind)}{f' ({o.reason})' if o.reason else ''}")
    reused = sum(1 for o in report.outcomes if o.action is Action.REUSED)
    changed = len(report.outcomes) - reused
    typer.echo(f"[certs] {changed} {'would change' if report.dry_run else 'changed'}, {reused} reused "
               f"(loaded, validity and chain checked) in {report.state_dir}")
    print_warnings(report.warnings)


def _noun(kind: str) -> str:
    return {"ca": "certificate authority", "certificate": "certificate and key", "key-pair": "key pair",
            "kubeconfig": "kubeconfig", "encryption-config": "encryption configuration"}.get(kind, kind)


def _confirm_new_ca() -> None:
    if not sys.stdin.isatty():
        raise UsageError("--force-new-ca replaces every CA and needs confirmation",
                         hint="add --yes if you mean it (read `kbuild certs generate --help` first)")
    typer.echo(FORCE_NEW_CA_HELP, err=True)
    if not typer.confirm("Replace every CA and reissue all certificates?", default=False):
        raise UsageError("aborted: nothing was changed")
