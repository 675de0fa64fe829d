"""One exception tree for every error kbuild expects; the CLI turns each into a clean message."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    FAILED = 1  # a step failed on a host, or a check found a problem
    BAD_INPUT = 2  # inventory, arguments or local files are wrong
    PREFLIGHT = 3  # hosts are reachable but not fit to run the cluster
    UNREACHABLE = 4  # at least one host could not be reached
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    BROKEN_PIPE = 141  # stdout was closed early (`kbuild status | head -1`): 128 + SIGPIPE, as a shell reports it

    @property
    def kind(self) -> str:
        """The name a machine reads in a JSON error: "bad-input", "unreachable", ..."""
        return self.name.lower().replace("_", "-")


class KbuildError(Exception):
    """An error kbuild understands: printed as one message, never as a traceback."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(KbuildError):
    """Bad arguments, or a local file that cannot be used."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located by a dotted key path."""

    path: str
    message: str
    line: int | None = None
    severity: str = "error"  # or "warning"
    file: str | None = None  # when it is not the inventory file itself (an Ansible group_vars file, say)

    def render(self, file: str | None = None) -> str:
        where = self.file or file or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        location = f"{where}: " if where else ""
        key = f"{terminal_safe(self.path)}: " if self.path else ""
        return f"{location}{key}{terminal_safe(self.message)}"


def terminal_safe(text: str) -> str:
    """`text` with control and formatting characters escaped: a key from a hostile inventory must not reach
    the terminal as an escape sequence (or reverse the rest of the line)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@dataclass
class InventoryError(KbuildError):
    """Every problem found in an inventory, reported together."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    exit_code = ExitCode.BAD_INPUT

    def __post_init__(self) -> None:
        count = len(self.errors)
        super().__init__(f"{self.file}: {count} problem{'s' if count != 1 else ''} in the inventory")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def __str__(self) -> str:
        errors = sorted(self.errors, key=lambda p: (p.line is None, p.line or 0))
        return "\n".join([self.message, *(f"  {p.render(self.file)}" for p in errors)])


class HostKeyError(KbuildError):
    """The host presented a key that is not the one on record (or none is on record in strict mode)."""

    exit_code = ExitCode.UNREACHABLE  # the README's table: a changed host key is an unreachable host


class UnreachableError(KbuildError):
    """A host could not be reached over SSH after the allowed retries."""

    exit_code = ExitCode.UNREACHABLE
