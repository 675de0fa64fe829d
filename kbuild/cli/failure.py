"""How a failed command is told: one clean message on stderr, or with --json one JSON object on stdout.

With --json, stdout carries only JSON: the command's result, its event lines, or (when it fails with an
error) one object {"error": {"kind", "exit_code", "message", "hint"}} as its last line, so a script reads
one stream and the exit code is in it too.
"""

from __future__ import annotations

import json
import sys

from kbuild.errors import ExitCode, KbuildError


def json_requested(argv: list[str]) -> bool:
    """Whether --json was given to kbuild itself (not inside the command after `--`)."""
    options = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in options


def report(code: ExitCode, message: str, *, hint: str | None = None, as_json: bool) -> int:
    """Print one failure and return its exit code."""
    if as_json:
        error = {"kind": code.kind, "exit_code": int(code), "message": message, "hint": hint}
        print(json.dumps({"error": error}), flush=True)
    else:
        print(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""), file=sys.stderr, flush=True)
    return int(code)


def report_error(exc: KbuildError, *, as_json: bool) -> int:
    code = ExitCode(exc.exit_code)
    if not as_json:
        return report(code, str(exc), as_json=False)  # str() already carries the hint
    # An error class that words itself (an inventory's list of problems) keeps that wording as the message.
    message = exc.message if type(exc).__str__ is KbuildError.__str__ else str(exc)
    return report(code, message, hint=exc.hint, as_json=True)
