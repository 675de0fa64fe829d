"""SSH connections and round trips as each host's sshd saw them: the same yardstick for every tool.

A connection is an "Accepted publickey" line; a round trip is a session sshd started (a remote
command, or an SFTP subsystem), which sshd logs at LogLevel VERBOSE. Lines are counted after a
journal cursor taken just before the run.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from bench.hosts import BenchLab, check
from bench.workload import Host

# One pass over sshd's lines, kept in no file.
COUNT_LINES = ('/^Accepted publickey/ {c++} /^Starting session:/ {s++} '
               'END {print "connections", c + 0; print "sessions", s + 0}')


@dataclass(frozen=True)
class SshCounts:
    connections: int
    sessions: int


CURSOR_COMMAND = "journalctl -n 0 --show-cursor -q\n"  # prints "-- cursor: ..."


def parse_cursor(name: str, result: subprocess.CompletedProcess[str]) -> str:
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("-- cursor: ")), None)
    if line is None:
        raise RuntimeError(f"{name}: journalctl printed no cursor: {result.stdout!r} {result.stderr!r}")
    return line.removeprefix("-- cursor: ").strip()


def cursors(lab: BenchLab, hosts: Sequence[Host]) -> dict[str, str]:
    """Each host's journal position now."""
    results = lab.on_all(hosts, CURSOR_COMMAND)
    check(results, "reading the journal cursor")
    return {name: parse_cursor(name, result) for name, result in results.items()}


def count_script(cursor: str) -> str:
    # `journalctl --sync` returns once journald has stored every message sent to it before the call, so
    # every line sshd wrote during the run is there to count (no marker to wait for).
    after = f"--after-cursor={shlex.quote(cursor)}"
    return (f"journalctl --sync\n"
            f"journalctl {after} -t sshd -o cat -q | awk {shlex.quote(COUNT_LINES)}\n")


def parse_counts(output: str) -> SshCounts:
    """The two count lines of count_script, wherever they are in `output` (other scripts' lines may be there)."""
    pairs = {key: value.strip() for key, _, value in (line.partition(" ") for line in output.splitlines())
             if key in ("connections", "sessions")}
    return SshCounts(int(pairs.get("connections", "0")), int(pairs.get("sessions", "0")))
