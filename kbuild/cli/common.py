"""Options and helpers shared by command groups: the inventory option, loading it, printing warnings."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Optional

import typer

from kbuild.inventory import Cluster, load_cluster

InventoryOption = Annotated[
    Path,
    typer.Option("-i", "--inventory", help="Inventory: kbuild YAML, an Ansible INI/YAML inventory (file or "
                 "directory), ansible-inventory --list JSON, or a k0sctl.yaml.",
                 envvar="KBUILD_INVENTORY"),
]
StateDirOption = Annotated[
    Optional[Path],
    typer.Option("--state-dir", help="State directory (default: .kbuild/<cluster> next to the inventory).",
                 envvar="KBUILD_STATE_DIR"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")]
JsonDocumentOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def load(inventory: Path, state_dir: Optional[Path] = None) -> Cluster:
    """Load and validate the inventory; warnings go to stderr, errors raise InventoryError (exit 2)."""
    cluster = load_cluster(inventory, state_dir=state_dir)
    print_warnings(cluster.warnings)
    return cluster


def print_warnings(warnings: Iterable[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
