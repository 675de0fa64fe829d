"""What the runner is given and what it gives back: plans, health gates, per-host outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from kbuild.engine.resources import Resource


class HostStatus(str, Enum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


@dataclass
class Gate:
    """A health condition to wait for after a host changed: a remote shell test, or a local check.

    `check` (local) returns None when healthy or raises/returns a string saying what is wrong.
    """

    name: str
    command: str | None = None
    check: Callable[[], str | None] | None = None
    timeout: float = 120.0
    interval: float = 2.0
    always: bool = False  # wait even when nothing changed on the host
    unit: str | None = None  # the systemd unit behind this health: its last log lines go with a failure


@dataclass
class Plan:
    """Everything one host should get in one phase."""

    resources: list[Resource] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)


@dataclass
class HostOutcome:
    host: str
    status: HostStatus
    changed: list[str] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    failed: str | None = None  # the resource or step that failed
    message: str | None = None
    diffs: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0
