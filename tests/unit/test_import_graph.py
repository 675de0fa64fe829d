"""kbuild's modules import each other without a cycle (issue 12 found engine.runner <-> engine.hostrun): a cycle
makes import order matter and hides which layer depends on which. Imports under `if TYPE_CHECKING:` do not count;
every other import does, wherever it is written."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[2] / "kbuild"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """The kbuild modules a module's code imports; `from pkg import sub` is an import of pkg.sub alone."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            found |= imported(ast.Module(body=node.orelse, type_ignores=[]), modules)  # typing-only: not counted
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.module in modules and node.level == 0:
                subs = {f"{node.module}.{alias.name}" for alias in node.names} & modules
                found |= subs if len(subs) == len(node.names) else subs | {node.module}
        else:
            found |= imported(node, modules)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported(ast.parse(path.read_text()), set(paths)) - {name} for name, path in paths.items()}


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph, or []."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 100 and graph["kbuild.engine.runner"]  # the whole package, its imports read
    assert cycle(graph) == []


def test_the_check_sees_a_cycle() -> None:
    modules = {"kbuild", "kbuild.a", "kbuild.b", "kbuild.c"}
    a = imported(ast.parse("from kbuild import b\n"), modules)
    b = imported(ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kbuild.c\n"
                           "from kbuild.a import thing\n"), modules)
    assert (a, b) == ({"kbuild.b"}, {"kbuild.a"})
    assert set(cycle({"kbuild.a": a, "kbuild.b": b})) == {"kbuild.a", "kbuild.b"}
