"""Shell command lines from argument lists: every value quoted by construction, raw shell only where spelled out.

Commands run as root on the hosts, so a value (a path, an address, a node name) must never be
formatted into shell text unquoted: `command("test", "-d", path)` quotes each argument. The few
arguments that are shell on purpose (a "$variable" the script sets) are wrapped in Raw, so each
one is visible where it is written.
"""

from __future__ import annotations

import shlex


class Raw(str):
    """A shell word passed through as written: a "$variable" or another fragment the caller wrote itself."""


def word(value: object) -> str:
    """One argument as a shell word: quoted unless it is Raw."""
    return value if isinstance(value, Raw) else shlex.quote(str(value))


def command(*args: object) -> str:
    """A command line whose every argument reaches the program unchanged."""
    return " ".join(word(a) for a in args)
