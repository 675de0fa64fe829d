"""Host patterns as Ansible's inventory plugins read them: `name:port`, `[v6]:port`, ranges `node[01:10]`, `[a:c]`."""

from __future__ import annotations

import re
import string

BRACKETED_PORT = re.compile(r"^\[(.+)\]:(\d+)$")
# host:port where the host part has no colon outside range brackets (so an IPv6 literal keeps its colons)
HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])+):(\d+)$")


class PatternError(ValueError):
    """A host pattern Ansible would refuse; the message says what is wrong with it."""


def split_port(pattern: str) -> tuple[str, int | None]:
    for regex in (BRACKETED_PORT, HOST_PORT):
        match = regex.match(pattern)
        if match:
            return match.group(1), int(match.group(2))
    return pattern, None


def expand(pattern: str) -> list[str]:
    """Every host name a pattern stands for, in Ansible's order (the first range varies slowest)."""
    if "[" not in pattern:
        return [pattern]
    head, bracket, rest = pattern.partition("[")
    body, closed, tail = rest.partition("]")
    if not closed:
        raise PatternError(f"host range in {pattern!r} has no closing ']'")
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise PatternError(f"host range [{body}] in {pattern!r} must be begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise PatternError(f"host range [{body}] in {pattern!r} has no end")
    try:
        step = int(step_text)
    except ValueError:
        raise PatternError(f"host range [{body}] in {pattern!r}: step {step_text!r} is not a number") from None
    if step < 1:
        raise PatternError(f"host range [{body}] in {pattern!r}: the step must be at least 1")
    width = 0
    if begin[0] == "0" and len(begin) > 1:
        if len(begin) != len(end):  # node[01:10] is padded; node[01:100] is ambiguous
            raise PatternError(f"host range [{body}] in {pattern!r}: begin and end must have the same width "
                               "when the begin has a leading zero")
        width = len(begin)
    if begin in string.ascii_letters and end in string.ascii_letters:
        first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        if first > last:
            raise PatternError(f"host range [{body}] in {pattern!r}: begin is after end")
        items = list(string.ascii_letters[first:last + 1:step])
    else:
        try:
            items = [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
        except ValueError:
            raise PatternError(f"host range [{body}] in {pattern!r} is neither numbers nor single letters") from None
        if not items:
            raise PatternError(f"host range [{body}] in {pattern!r} is empty (begin is after end)")
    return [name for item in items for name in expand(f"{head}{item}{tail}")]
