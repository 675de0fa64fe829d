"""Another tool's inventory turned into a kbuild inventory document, each value traced to where it was written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kbuild.errors import Problem
from kbuild.inventory.yamlsource import KeyPath, dotted


@dataclass(frozen=True)
class Origin:
    """Where a value was written, for messages that send the user to the right line."""

    file: Path
    line: int | None = None
    detail: str = ""  # e.g. "[all:vars]", "group_vars/all.yml"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else str(self.file)


# Where a key path of a parsed file is written: for messages and for comments in converted files.
Locate = Callable[[KeyPath], Origin]


@dataclass(frozen=True)
class Traced:
    variable: str
    origin: Origin


@dataclass
class Translation:
    native: dict[str, Any]
    origins: dict[KeyPath, Traced] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def locate(self, problem: Problem) -> Problem:
        """A problem found in the kbuild document, moved to the variable, file and line it came from."""
        if problem.file is not None:
            return problem
        best = max((p for p in self.origins if problem.path == dotted(p) or problem.path.startswith(dotted(p) + ".")),
                   key=len, default=None)
        if best is None:
            return problem
        traced = self.origins[best]
        return replace(problem, path=f"{traced.variable} ({problem.path})", line=traced.origin.line,
                       file=str(traced.origin.file))

    def set(self, path: KeyPath, value: Any, variable: str, origin: Origin) -> None:
        target = self.native
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
        self.origins[path] = Traced(variable, origin)

    def error(self, variable: str, origin: Origin, message: str) -> None:
        self.problems.append(Problem(variable, message, origin.line, "error", str(origin.file)))

    def warn(self, variable: str, origin: Origin, message: str) -> None:
        self.problems.append(Problem(variable, message, origin.line, "warning", str(origin.file)))


