"""`kbuild etcd`: snapshots (save, list, restore, fetch), member status, and etcdctl with the right certificates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kbuild.cli.common import (
    InventoryOption, JsonDocumentOption, StateDirOption, load, new_console, print_json, yes_option,
)
from kbuild.cli.session import (
    ForksOption,
    JsonEventsOption,
    RunOptions,
    VerboseOption,
    engine_session,
)
from kbuild.engine.report import Event
from kbuild.errors import ExitCode, UsageError
from kbuild.plays import actions, etcd_backup, etcd_restore
from kbuild.plays.etcd_ops import snapfile
from kbuild.plays.etcd_ops.health import EtcdClusterStatus, cluster_status
from kbuild.plays.etcd_ops.probe import unreachable_hosts, why_missing
from kbuild.plays.phases import Context

app = typer.Typer(help="etcd snapshots, restore and member status.", no_args_is_help=True)
snapshot_app = typer.Typer(help="Save, list, restore and fetch etcd snapshots.", no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")

OutputOption = Annotated[Path | None, typer.Option(
    "-o", "--output", help="Write the snapshot here (a file, or a directory) instead of <state dir>/backups/.")]
KeepOption = Annotated[int | None, typer.Option(
    "--keep", min=1, help="Then keep only the N newest snapshots of this cluster in that directory.")]
HostOption = Annotated[str | None, typer.Option(
    "--host", help="Use this etcd host (default: the first that answers).")]


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _table(*columns: str, title: str) -> Table:
    """A table that folds long cells instead of cutting them (paths, URLs, errors in narrow terminals)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


@snapshot_app.command("save")
def save(inventory: InventoryOption, state_dir: StateDirOption = None, output: OutputOption = None,
         keep: KeepOption = None, reason: Annotated[str, typer.Option("--reason", help="Recorded in the metadata.")]
         = "manual", as_json: JsonEventsOption = False, verbose: VerboseOption = False) -> None:
    """Snapshot etcd from one healthy member, stream it here, verify it, and store it with its metadata."""
    cluster = load(inventory, state_dir)
    with engine_session(cluster, RunOptions(json=as_json, verbose=verbose), "etcd-snapshot-save") as session:
        snap = etcd_backup.take_snapshot(Context(cluster, session), reason=reason, output=output, keep=keep)
        session.reporter.emit(Event("message", phase="etcd-snapshot", message=f"saved {snap.describe()}",
                                    data={"path": str(snap.path), "metadata": snap.metadata,
                                          "pruned": [str(p) for p in snap.pruned]}))
    if not as_json:
        typer.echo(str(snap.path))


@snapshot_app.command("list")
def list_(inventory: InventoryOption, state_dir: StateDirOption = None,
          directory: Annotated[Path | None, typer.Option("--dir", help="List this directory instead.")] = None,
          as_json: JsonDocumentOption = False) -> None:
    """The stored snapshots, newest first, with their metadata (no host is contacted)."""
    cluster = load(inventory, state_dir)
    where = directory or cluster.state_dir / "backups"
    found = snapfile.list_snapshots(where)
    if as_json:
        print_json([{"path": str(s.path), "size": s.size, "metadata": s.metadata} for s in found])
        return
    if not found:
        typer.echo(f"no snapshots in {where}", err=True)
        return
    table = _table("time (UTC)", "file", "size", "revision", "keys", "etcd", "member", "reason", title=str(where))
    for s in found:
        m = s.metadata or {}
        other = s.cluster is not None and s.cluster != cluster.name
        name = escape(s.path.name) + (f" [yellow](cluster {escape(str(s.cluster))})[/]" if other else "")
        table.add_row(s.time, name,
                      _mb(s.size), str(m.get("revision", "?")), str(m.get("total_keys", "?")),
                      str(m.get("etcd_version", "?")), escape(str(m.get("member", "?"))),
                      escape(str(m.get("reason", "no metadata"))))
    new_console().print(table)


@snapshot_app.command("restore")
def restore(
    inventory: InventoryOption,
    snapshot: Annotated[Path, typer.Argument(help="The snapshot file (kbuild etcd snapshot list shows them).")],
    state_dir: StateDirOption = None,
    yes: Annotated[bool, yes_option("Proceed without asking after showing the plan.")] = False,
    as_json: JsonEventsOption = False, verbose: VerboseOption = False,
) -> None:
    """Restore every etcd member from SNAPSHOT: checks and plan first, a snapshot of the current state, then
    stop the control plane and etcd, move the data aside (kept), restore, start, gate on health. Any failure
    puts the old data back."""
    cluster = load(inventory, state_dir)
    err = new_console(stderr=True)

    def confirm(plan: etcd_restore.RestorePlan) -> bool:
        for line in plan.describe():
            err.print(line, markup=False)
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError("the restore needs confirmation: stdin is not a terminal; nothing was changed",
                             hint="read the plan above and add --yes to proceed")
        return typer.confirm("Stop the cluster and restore this snapshot?", default=False, err=True)

    with engine_session(cluster, RunOptions(json=as_json, verbose=verbose), "etcd-snapshot-restore") as session:
        result = etcd_restore.restore(Context(cluster, session), snapshot, confirm=confirm)
        session.reporter.emit(Event("message", phase="restore", message="restore complete",
                                    data={"cluster_id": result.cluster_id, "revision": result.revision,
                                          "pre_snapshot": str(result.pre_snapshot.path) if result.pre_snapshot
                                          else None,
                                          "moved_aside": {m.host: m.aside for m in result.plan.members
                                                          if m.has_data}}))


@snapshot_app.command("fetch")
def fetch(inventory: InventoryOption, state_dir: StateDirOption = None, host: HostOption = None,
          output: OutputOption = None, as_json: JsonEventsOption = False) -> None:
    """Copy the newest scheduled snapshot (etcd.backup) from the etcd hosts here, verified."""
    cluster = load(inventory, state_dir)
    with engine_session(cluster, RunOptions(json=as_json), "etcd-snapshot-fetch") as session:
        snap = etcd_backup.fetch_newest(Context(cluster, session), host=host, output=output)
    if not as_json:
        typer.echo(str(snap.path))


def _status_json(report: EtcdClusterStatus) -> dict:
    members = {}
    for name, probe in report.probes.items():
        if probe is None:
            members[name] = {"reachable": name not in unreachable_hosts(report.probes),
                             "error": why_missing(report.probes, name)}
            continue
        s = probe.status
        members[name] = {"reachable": True, "healthy": probe.healthy, "error": probe.health_error or None,
                         "status": None if s is None else vars(s) | {"is_leader": s.is_leader}}
    return {"healthy": report.healthy, "cluster_id": report.cluster_id, "members": members,
            "member_list": [vars(m) for m in report.members], "problems": report.problems}


@app.command("status")
def status(inventory: InventoryOption, state_dir: StateDirOption = None, forks: ForksOption = 10,
           as_json: JsonDocumentOption = False) -> None:
    """Health and status of every member, the member list and the leader. Exit 1 when anything is wrong."""
    cluster = load(inventory, state_dir)
    with engine_session(cluster, RunOptions(forks=forks, quiet=True), "etcd-status") as session:
        report = cluster_status(Context(cluster, session))
    if as_json:
        print_json(_status_json(report))
    else:
        _print_status(report)
    if report.problems:
        unreachable = bool(unreachable_hosts(report.probes))
        raise typer.Exit(int(ExitCode.UNREACHABLE if unreachable else ExitCode.FAILED))


def _print_status(report: EtcdClusterStatus) -> None:
    console = new_console()
    table = _table("member", "health", "leader", "version", "revision", "raft term", "raft index", "db size",
                   title=f"etcd cluster {report.cluster_id or '?'}")
    for name, probe in report.probes.items():
        if probe is None:
            table.add_row(name, f"[bold red]{escape(why_missing(report.probes, name)[:80])}[/]", "", "", "", "", "", "")
            continue
        s = probe.status
        health = "[green]healthy[/]" if probe.healthy else f"[bold red]unhealthy[/] {escape(probe.health_error[:60])}"
        if s is None:
            table.add_row(name, health, "", "", "", "", "", "")
        else:
            table.add_row(name, health, "yes" if s.is_leader else "", s.version, str(s.revision), str(s.raft_term),
                          str(s.raft_index), _mb(s.db_size))
    console.print(table)
    if report.members:
        members = _table("ID", "name", "peer URLs", "client URLs", "learner", title="member list")
        for m in report.members:
            members.add_row(m.id, m.name or "(not started)", ", ".join(m.peer_urls), ", ".join(m.client_urls),
                            "yes" if m.learner else "")
        console.print(members)
    for problem in report.problems:
        console.print(f"[bold red]problem:[/] {escape(problem)}")
    if not report.problems:
        console.print("[green]etcd is healthy[/]")


@app.command("ctl", context_settings={"allow_interspersed_args": False})
def ctl_command(
    inventory: InventoryOption,
    args: Annotated[list[str], typer.Argument(help="etcdctl arguments, after --.")],
    state_dir: StateDirOption = None, host: HostOption = None,
) -> None:
    """Run etcdctl on an etcd host with every member as endpoint and the healthcheck client certificate,
    e.g. `kbuild etcd ctl -i INV -- get /registry --prefix --keys-only`. Exits with etcdctl's code."""
    cluster = load(inventory, state_dir)
    candidates = actions.etcdctl_hosts(cluster, host)
    with engine_session(cluster, RunOptions(quiet=True, limit=",".join(h.name for h in candidates)),
                        "etcd-ctl") as session:
        result = actions.etcdctl(Context(cluster, session), candidates, args)
    sys.stdout.write(result.out)
    sys.stderr.write(result.err)
    if result.rc:
        raise typer.Exit(result.rc)

