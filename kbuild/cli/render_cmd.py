"""`kbuild render`: write every file every host would get into a directory, without SSH, for review and diffs."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer
from rich.table import Table

from kbuild import render as rendering
from kbuild.cli.common import InventoryOption, JsonOption, StateDirOption, load, new_console, print_json
from kbuild.errors import KbuildError, UsageError
from kbuild.inventory import Cluster, Host

OutputOption = Annotated[
    Path, typer.Option("-o", "--output", help="Directory to write into, as OUTPUT/<host>/<absolute path>.")
]


@dataclass(frozen=True)
class OutputFile:
    path: PurePosixPath
    content: bytes
    mode: int


def render(inventory: InventoryOption, output: OutputOption, state_dir: StateDirOption = None,
           as_json: JsonOption = False) -> None:
    """Write every unit, config and (once generated) PKI file each host would get, without touching any host."""
    cluster = load(inventory, state_dir)
    pki_files, pki_note = _pki_files(cluster)
    table = Table("host", "roles", "units (start order)", "templates", "PKI files")
    written = []
    for host in cluster.hosts:
        files = [OutputFile(f.path, f.content.encode(), f.mode) for f in rendering.host_files(cluster, host)]
        extra = pki_files.get(host.name, [])
        _write_host(output, host, files + extra)
        units = rendering.units_for(host, cluster)
        written.append({"host": host.name, "roles": host.role_names, "units": list(units),
                        "templates": len(files), "pki_files": len(extra)})
        table.add_row(host.name, ", ".join(host.role_names), " ".join(units),
                      str(len(files)), str(len(extra)) if pki_note is None else "-")
    if as_json:
        print_json({"output": str(output), "hosts": written, "pki_left_out": pki_note})
        return
    console = new_console()
    console.print(table)
    if pki_note is None:
        console.print(f"wrote templates and PKI files for {len(cluster.hosts)} hosts under {output}")
    else:
        console.print(f"wrote templates only for {len(cluster.hosts)} hosts under {output}; "
                      f"PKI files left out: {pki_note}", markup=False)


def _pki_files(cluster: Cluster) -> tuple[dict[str, list[OutputFile]], str | None]:
    """Every host's PKI files, or none at all (with the reason) when any host's are not generated yet."""
    pki = _pki_module()
    if pki is None:
        return {}, "this kbuild has no PKI module"
    ensure = getattr(pki, "ensure", None)
    if ensure is not None:
        # Judge it all first, as bootstrap does: a corrupt file or a CA other than the recorded one is an
        # error (PKIError, exit 2); a PKI that is not complete and current for this inventory is left out.
        report = ensure(cluster, dry_run=True)
        if report.changed:
            names = ", ".join(o.name for o in report.changed[:3]) + (" ..." if len(report.changed) > 3 else "")
            return {}, (f"the PKI in {cluster.state_dir} is not complete and current for this inventory "
                        f"({names}); run: {cluster.command('certs generate')}")
    result: dict[str, list[OutputFile]] = {}
    for host in cluster.hosts:
        try:
            files = pki.host_files(cluster, host)
        except KbuildError as exc:
            return {}, str(exc)
        # Secrets are written 0600 whatever the table says: the output directory is not a host.
        result[host.name] = [OutputFile(f.path, f.content, 0o600 if f.secret else f.mode) for f in files]
    return result, None


def _pki_module() -> Any:
    """kbuild.pki when it provides host_files (imported late: rendering must work without it)."""
    try:
        module = importlib.import_module("kbuild.pki")
    except ImportError:
        return None
    return module if callable(getattr(module, "host_files", None)) else None


def _write_host(root: Path, host: Host, files: list[OutputFile]) -> None:
    seen: set[PurePosixPath] = set()
    for item in files:
        if item.path in seen:  # the PKI and the templates never share a path; a table bug if they do
            raise KbuildError(f"{host.name}: {item.path} would be written twice")
        seen.add(item.path)
        target = root / host.name / item.path.relative_to("/")
        _write(target, item.content, item.mode)


def _write(target: Path, content: bytes, mode: int) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Created with its final mode, so a private key is never readable by others, not even briefly.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(content)
    except OSError as exc:
        raise UsageError(f"{target}: cannot write: {exc.strerror}", hint="check the --output directory") from None

