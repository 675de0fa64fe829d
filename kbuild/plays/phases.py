"""Cluster actions as ordered lists of named phases (k0sctl/kubeadm style), with one runner for all of them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from kbuild.engine.report import Event
from kbuild.engine.runner import HostOutcome, HostStatus
from kbuild.errors import ExitCode, KbuildError

PhaseFn = Callable[["Context"], None]


@dataclass
class Phase:
    """One step of a cluster action. `run` does its work through ctx.runner; it may skip itself."""

    name: str
    title: str
    run: PhaseFn


@dataclass
class Context:
    """What every phase of one command works with."""

    cluster: object  # kbuild.inventory.Cluster (the PKI phase may swap in a check-mode copy)
    session: object  # kbuild.cli.session.Session: hosts, pool, runner, reporter
    check: bool = False
    data: dict[str, object] = field(default_factory=dict)  # results phases hand to later phases
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def runner(self):  # noqa: ANN201 - kbuild.engine.runner.Runner
        return self.session.runner  # type: ignore[attr-defined]

    @property
    def reporter(self):  # noqa: ANN201
        return self.session.reporter  # type: ignore[attr-defined]

    def selected(self, hosts: list) -> list:
        """The subset of `hosts` that --limit kept."""
        chosen = {h.name for h in self.session.hosts}  # type: ignore[attr-defined]
        return [h for h in hosts if h.name in chosen]

    def say(self, text: str, *, phase: str | None = None) -> None:
        self.reporter.emit(Event("message", phase=phase, message=text))


class PhaseFailed(KbuildError):
    """A phase left hosts failed or unreachable: later phases would build on sand, so the action stops."""

    def __init__(self, phase: str, outcomes: dict[str, HostOutcome]) -> None:
        bad = {n: o for n, o in outcomes.items() if o.status in (HostStatus.FAILED, HostStatus.UNREACHABLE)}
        lines = [f"phase {phase} failed on {len(bad)} host{'s' if len(bad) != 1 else ''}; later phases were not run:"]
        for name, outcome in bad.items():
            where = f" at {outcome.failed}" if outcome.failed else ""
            lines.append(f"  {name}: {outcome.status.value}{where}: {(outcome.message or '').strip()}")
        lines.append("fix the cause and run the same command again: everything already done is kept")
        super().__init__("\n".join(lines))
        unreachable = any(o.status is HostStatus.UNREACHABLE for o in bad.values())
        self.exit_code = ExitCode.UNREACHABLE if unreachable else ExitCode.FAILED


def require_success(phase: str, outcomes: dict[str, HostOutcome]) -> None:
    if any(o.status in (HostStatus.FAILED, HostStatus.UNREACHABLE) for o in outcomes.values()):
        raise PhaseFailed(phase, outcomes)


def run_phases(ctx: Context, phases: list[Phase], *, skip: set[str] = frozenset()) -> None:
    unknown = skip - {p.name for p in phases}
    if unknown:
        raise KbuildError(f"--skip-phases: unknown phase {', '.join(sorted(unknown))}; phases are "
                          f"{', '.join(p.name for p in phases)}", hint=None)
    for phase in phases:
        if phase.name in skip:
            ctx.say(f"skipped ({phase.title})", phase=phase.name)
            continue
        started = time.monotonic()
        phase.run(ctx)
        ctx.timings[phase.name] = time.monotonic() - started
