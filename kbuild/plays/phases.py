"""Cluster actions as ordered lists of named phases (k0sctl/kubeadm style), with one runner for all of them.

A phase declares what it needs from earlier phases and what it provides to later ones (typed slots in the
action's state), so a `--skip-phases` that would leave a later phase without its input is refused before
anything runs, naming the phase that needs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar, cast

from kbuild.engine.report import Event, Reporter
from kbuild.engine.runner import HostOutcome, HostStatus
from kbuild.engine.session import Session
from kbuild.errors import ExitCode, KbuildError, UsageError
from kbuild.inventory import Cluster, Host

PhaseFn = Callable[["Context"], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Slot(Generic[T]):
    """One result a phase hands to later phases: a typed key into the action's State."""

    name: str
    what: str  # for messages: what the later phases would be missing


class State:
    """What the phases of one action hand to each other, each value under its slot."""

    def __init__(self) -> None:
        self._values: dict[Slot[Any], object] = {}

    def put(self, slot: Slot[T], value: T) -> None:
        self._values[slot] = value

    def get(self, slot: Slot[T]) -> T:
        if slot not in self._values:
            # check_skip refuses skips that would cause this, so reaching it is kbuild's own mistake.
            raise KbuildError(f"internal error: {slot.what} ({slot.name}) was needed before a phase provided it")
        return cast(T, self._values[slot])

    def find(self, slot: Slot[T]) -> T | None:
        """The value, or None when no phase provided it (for what a phase provides only sometimes)."""
        return cast("T | None", self._values.get(slot))


@dataclass
class Phase:
    """One step of a cluster action. `run` does its work through ctx.session; it may skip itself.

    `needs`: slots an earlier phase must provide; `provides`: slots this phase always puts in the state
    (a phase that puts one only sometimes does not declare it, so no skip can come to rely on it)."""

    name: str
    title: str
    run: PhaseFn
    needs: tuple[Slot[Any], ...] = ()
    provides: tuple[Slot[Any], ...] = ()


@dataclass
class Context:
    """What every phase of one command works with."""

    cluster: Cluster
    session: Session[Host]  # the engine's: hosts --limit kept, runner, reporter
    check: bool = False
    state: State = field(default_factory=State)  # results phases hand to later phases
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def reporter(self) -> Reporter:
        return self.session.reporter

    def selected(self, hosts: Sequence[Host]) -> list[Host]:
        """The subset of `hosts` that --limit kept."""
        return self.session.selected(hosts)

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


def check_skip(phases: list[Phase], skip: set[str]) -> None:
    """Refuse (exit 2) an unknown phase name, or a skipped phase whose results a phase that runs needs."""
    names = [p.name for p in phases]
    unknown = skip - set(names)
    if unknown:
        raise UsageError(f"--skip-phases: unknown phase {', '.join(sorted(unknown))}; phases are {', '.join(names)}")
    # (what is missing, the skipped phases that provide it) -> the phases that run and need it
    missing: dict[tuple[Slot[Any], tuple[str, ...]], list[str]] = {}
    for index, phase in enumerate(phases):
        if phase.name in skip:
            continue
        for need in phase.needs:
            providers = tuple(p.name for p in phases[:index] if need in p.provides)
            if providers and all(name in skip for name in providers):
                missing.setdefault((need, providers), []).append(phase.name)
    if missing:
        lines = [f"  phase{'s' if len(needing) > 1 else ''} {', '.join(needing)} need{'' if len(needing) > 1 else 's'} "
                 f"{need.what}, which phase {' or '.join(providers)} provides"
                 for (need, providers), needing in missing.items()]
        needing_all = dict.fromkeys(name for names in missing.values() for name in names)
        providing_all = dict.fromkeys(name for _, providers in missing for name in providers)
        raise UsageError(f"--skip-phases {','.join(n for n in names if n in skip)}: nothing was run, because "
                         "phases that would run need what a skipped phase provides:\n" + "\n".join(lines),
                         hint=f"skip {', '.join(needing_all)} as well, or do not skip {', '.join(providing_all)}")


def run_phases(ctx: Context, phases: list[Phase], *, skip: set[str] = frozenset()) -> None:
    check_skip(phases, set(skip))
    for phase in phases:
        if phase.name in skip:
            ctx.say(f"skipped ({phase.title})", phase=phase.name)
            continue
        started = time.monotonic()
        phase.run(ctx)
        ctx.timings[phase.name] = time.monotonic() - started
