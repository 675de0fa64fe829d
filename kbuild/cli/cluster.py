"""Cluster lifecycle commands: bootstrap, preflight, status, reset, kubeconfig."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from kbuild.artifacts import use_bundle
from kbuild.cli.common import (
    InventoryOption, JsonDocumentOption, JsonOption, StateDirOption, load, new_console, print_json, yes_option,
)
from kbuild.cli.session import (
    CheckOption, DiffOption, FailFastOption, ForksOption, JsonEventsOption, LimitOption, RunOptions, VerboseOption,
    engine_session, finish,
)
from kbuild.connect import select_hosts
from kbuild.errors import ExitCode, UsageError
from kbuild.kubeconfig import default_kubeconfig, merge_kubeconfig
from kbuild.plays import actions
from kbuild.plays import reset as reset_play
from kbuild.plays import cluster_status as status_play
from kbuild.plays.phases import Context

SkipOption = Annotated[Optional[str], typer.Option(
    "--skip-phases", help=f"Comma-separated phases to skip ({', '.join(actions.bootstrap_phase_names())}).")]
BundleOption = Annotated[Optional[Path], typer.Option(
    "--bundle", help="Install from an offline bundle (kbuild artifacts bundle) with no network at all.")]


def bootstrap(
    inventory: InventoryOption, state_dir: StateDirOption = None, check: CheckOption = False, diff: DiffOption = False,
    forks: ForksOption = 10, limit: LimitOption = None, as_json: JsonEventsOption = False,
    verbose: VerboseOption = False, fail_fast: FailFastOption = False, skip_phases: SkipOption = None,
    bundle: BundleOption = None,
) -> None:
    """Bring every host to the cluster the inventory describes. Safe to re-run: only differences are applied."""
    skip = {s.strip() for s in (skip_phases or "").split(",") if s.strip()}
    actions.check_bootstrap_skip(skip)  # an argument check: before anything is read or contacted
    cluster = load(inventory, state_dir)
    if bundle is not None:
        use_bundle(bundle, cluster)
    options = RunOptions(check=check, diff=diff, forks=forks, limit=limit, json=as_json, verbose=verbose,
                         fail_fast=fail_fast)
    with engine_session(cluster, options, "bootstrap") as session:
        actions.bootstrap(Context(cluster, session, check=check), skip)
        if not check:
            session.reporter.message(f"admin kubeconfig: {cluster.state_dir / 'admin.conf'} "
                                     f"({cluster.command('kubeconfig')} prints or merges it)")
    finish(session)


def preflight(
    inventory: InventoryOption, state_dir: StateDirOption = None, forks: ForksOption = 10,
    limit: LimitOption = None, as_json: JsonEventsOption = False,
) -> None:
    """Check that every host can run its roles (OS, systemd, memory, disk, swap, ports, clocks, modules, tools)."""
    cluster = load(inventory, state_dir)
    options = RunOptions(forks=forks, limit=limit, json=as_json)
    with engine_session(cluster, options, "preflight") as session:
        actions.preflight(Context(cluster, session))
        session.reporter.message("preflight passed: every host can run its roles")
    finish(session)


def status(
    inventory: InventoryOption, state_dir: StateDirOption = None, forks: ForksOption = 10,
    limit: LimitOption = None, as_json: JsonDocumentOption = False,
) -> None:
    """Units, health endpoints and versions per host; etcd members; registered nodes. Exit 1 when unhealthy."""
    cluster = load(inventory, state_dir)
    with engine_session(cluster, RunOptions(forks=forks, limit=limit, quiet=True), "status") as session:
        report = status_play.collect(Context(cluster, session))
    if as_json:
        print_json(report.as_json())
    else:
        print_status(report)
    if report.problems:
        raise typer.Exit(int(ExitCode.UNREACHABLE if any(not h.reachable for h in report.hosts) else ExitCode.FAILED))


def print_status(report: status_play.ClusterStatus) -> None:
    console = new_console()
    table = Table("host", "component", "unit", "health", "version", title="components")
    for host in report.hosts:
        if not host.reachable:
            table.add_row(host.host, "-", "[bold red]unreachable[/]", escape(host.error), "")
            continue
        for c in host.components:
            unit = c.active if c.active == "active" else f"[bold red]{escape(c.active)}[/]"
            health = {None: "-", True: "[green]ok[/]", False: f"[bold red]failing[/] {escape(c.detail)}"}[c.healthy]
            table.add_row(host.host, c.unit, unit, health, escape(c.version))
    console.print(table)
    if report.etcd_members or report.etcd_error:
        members = Table("member", "endpoint", "leader", "raft index", "db size", "version", title="etcd")
        for m in report.etcd_members:
            members.add_row(m.name, m.endpoint, "yes" if m.is_leader else "", str(m.raft_index),
                            f"{m.db_size / 1024 / 1024:.1f} MiB", m.version)
        console.print(members)
        if report.etcd_error:
            console.print(f"[bold red]etcd:[/] {escape(report.etcd_error)}")
    if report.expected_nodes or report.nodes:
        nodes = Table("node", "ready", "schedulable", "kubelet", title="nodes")
        for n in report.nodes:
            nodes.add_row(n.name, "yes" if n.ready else "[bold red]no[/]", "no (cordoned)" if n.unschedulable
                          else "yes", n.kubelet_version)
        console.print(nodes)
    if report.addons:
        addons = Table("addon", "available", title="addons")
        for a in report.addons:
            shown = f"{a.available}/{a.desired}" if not a.error else f"[bold red]{escape(a.error)}[/]"
            if a.waiting and not a.error:
                shown += f" ({a.waiting})"
            addons.add_row(a.name, shown if a.ok else f"[bold red]{shown}[/]")
        console.print(addons)
    if report.problems:
        console.print("[bold red]unhealthy:[/]\n" + "\n".join(f"  {escape(p)}" for p in report.problems))
    else:
        console.print("[green]healthy[/]: every unit active, every health endpoint answering, every node Ready, "
                      "every addon available")


def reset(
    inventory: InventoryOption, state_dir: StateDirOption = None, limit: LimitOption = None,
    forks: ForksOption = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON document (without --yes), "
                                                         "or one JSON object per event line.")] = False,
    yes: Annotated[bool, yes_option("Really reset; without it, only list what would go.")] = False,
    purge_data: Annotated[bool, typer.Option("--purge-data", help="Delete etcd data instead of moving it aside.")] = False,
) -> None:
    """Stop and remove everything kbuild installed on hosts; etcd data is moved aside (kept) unless --purge-data."""
    cluster = load(inventory, state_dir)
    hosts = select_hosts(cluster, limit)
    plans = actions.reset_plans(cluster, hosts, purge_data=purge_data)
    if not yes:
        if as_json:
            print_json({"reset": False, "hosts": {name: p.describe() for name, p in plans.items()}})
            return
        console = new_console()
        for name, p in plans.items():
            console.print(f"[bold]{name}[/]: would")
            for line in p.describe():
                console.print(f"  - {escape(line)}")
        console.print("nothing was changed; run again with --yes to reset these hosts")
        return
    # The session reaches every host: a control plane that stays may need to forget the reset nodes.
    options = RunOptions(forks=forks, json=as_json)
    with engine_session(cluster, options, "reset") as session:
        reset_play.run(Context(cluster, session), plans)
    finish(session)


def kubeconfig(
    inventory: InventoryOption, state_dir: StateDirOption = None,
    merge: Annotated[bool, typer.Option("--merge", help="Merge into ~/.kube/config (or --kubeconfig).")] = False,
    target: Annotated[Optional[Path], typer.Option("--kubeconfig", help="The kubeconfig to merge into.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the cluster's admin kubeconfig, or merge it into your kubeconfig."""
    cluster = load(inventory, state_dir)
    source = cluster.state_dir / "admin.conf"
    if not source.exists():
        raise UsageError(f"{source}: no admin kubeconfig yet", hint=f"run {cluster.command('certs generate')} "
                                                                     f"(or {cluster.command('bootstrap')})")
    if not merge:
        if as_json:
            print_json({"cluster": cluster.name, "path": str(source), "kubeconfig": source.read_text()})
        else:
            typer.echo(source.read_text(), nl=False)
        return
    path = target or default_kubeconfig()
    context = merge_kubeconfig(source, path)
    if as_json:
        print_json({"cluster": cluster.name, "merged_into": str(path), "context": context})
    else:
        typer.echo(f"merged cluster {cluster.name} into {path} as context {context}")
