"""The Resource contract: a desired state that reads its fact, says what differs and how to fix it."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from kbuild.engine.facts import FactQuery, q


@dataclass(frozen=True)
class Payload:
    """Bytes a resource needs on the host; shipped in one tar stream per host, never held twice in memory."""

    size: int
    open: Callable[[], BinaryIO]

    @classmethod
    def from_bytes(cls, data: bytes) -> Payload:
        return cls(len(data), lambda: io.BytesIO(data))

    @classmethod
    def from_file(cls, path: Path) -> Payload:
        return cls(path.stat().st_size, lambda: path.open("rb"))


@dataclass
class Action:
    """What applying a resource does: a shell snippet, plus the payload it reads as "$KB_PAYLOAD"."""

    script: str
    payload: Payload | None = None


class ResourceError(Exception):
    """A resource cannot be brought to its desired state from what the host has (e.g. a directory in the way)."""


class Resource(ABC):
    """A piece of desired state on one host. Subclasses are small dataclasses."""

    kind: str = "resource"
    notify: tuple[str, ...] = ()  # services restarted (once, at the end) when this resource changes
    secret: bool = False  # never show content in diffs or logs

    @property
    @abstractmethod
    def key(self) -> str:
        """Unique per host; two resources with one key are a planning bug."""

    def describe(self) -> str:
        return self.key

    @abstractmethod
    def fact_query(self, *, with_content: bool = False) -> FactQuery:
        """What to ask the host; the runner answers all queries of a kind in one batch (facts.py)."""

    @abstractmethod
    def changes(self, fact: Any) -> list[str]:
        """Why the host differs from the desired state; empty when it already matches."""

    @abstractmethod
    def action(self, fact: Any) -> Action:
        """How to bring the host to the desired state. Runs with `set -e` as root."""

    def diff(self, fact: Any) -> str | None:
        """A unified diff for --diff, or None when there is nothing textual to show."""
        return None

    @property
    def changes_units(self) -> bool:
        """True when applying this resource edits systemd unit files (so a daemon-reload is due)."""
        return False


@dataclass(frozen=True)
class Ownership:
    mode: int
    owner: str = "root"
    group: str = "root"

    def differences(self, mode: int | None, owner: str | None, group: str | None) -> list[str]:
        found = []
        if mode != self.mode:
            found.append(f"mode {mode:04o} -> {self.mode:04o}" if mode is not None else f"mode -> {self.mode:04o}")
        if (owner, group) != (self.owner, self.group):
            found.append(f"owner {owner}:{group} -> {self.owner}:{self.group}")
        return found

    def fix(self, path: str) -> str:
        return f"chmod {self.mode:04o} {q(path)}\nchown {q(self.owner)}:{q(self.group)} {q(path)}"


def install_file(path: str, source: str, own: Ownership) -> str:
    """Shell to place `source` at `path` atomically: copy next to it, set mode/owner, then rename."""
    tmp = f"{path}.kbuild-new"
    return "\n".join([
        f"mkdir -p {q(str(Path(path).parent))}",
        f"cp {source} {q(tmp)}",
        own.fix(tmp),
        f"mv -f {q(tmp)} {q(path)}",
    ])
