"""Start one tool from a small process and report the tool's own wall time, CPU and peak memory.

Why a separate process: when a program is exec'd, Linux carries the memory high-water mark of the
process it replaces into the program's `ru_maxrss` (fs/exec.c keeps the old mm's hiwater in the
signal struct). A tool started straight from the bench, by fork, vfork or a shell, therefore reports
at least the bench's own size (72 MB for every tool at one host, 244 MB under pytest). This script is
exec'd fresh (a few MB), and the tool forked from it starts from that small image, so the tool's
`ru_maxrss` is its own. The report goes up a pipe because the exit status of this process is not the
tool's usage: `wait4` on it would give back the bench's high-water mark again.

Run as `python -I -S starter.py REPORT_FD TIMEOUT ARGV...`; it imports nothing outside the standard
library so its own footprint stays the floor of every figure.
"""

from __future__ import annotations

import os
import signal
import sys
import time

# The kbuild driver reports how long Python took to start, counted from this moment.
SPAWNED_VARIABLE = "KBBENCH_SPAWNED"


def main(argv: list[str]) -> int:
    report_fd, timeout, command = int(argv[0]), float(argv[1]), argv[2:]
    os.set_inheritable(report_fd, False)  # the tool's daemons (ssh's ControlPersist) must not hold it open
    os.environ[SPAWNED_VARIABLE] = repr(time.time())
    started = time.perf_counter()
    try:
        pid = os.posix_spawnp(command[0], command, os.environ)
    except OSError as error:
        print(f"starter: cannot start {command[0]}: {error.strerror}", file=sys.stderr)
        report(report_fd, 127, 0.0, 0.0, 0)  # a shell's "command not found"
        return 0
    # Killed after the timeout: the bench records the run as exit -1.
    signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _, status, usage = os.wait4(pid, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)  # before anything else: the pid is free to be reused now
    wall = time.perf_counter() - started
    report(report_fd, os.waitstatus_to_exitcode(status), wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
    return 0


def report(fd: int, exit_code: int, wall: float, cpu_seconds: float, maxrss_kb: int) -> None:
    """One line for the bench: the tool's exit code, seconds of wall time and CPU, peak RSS in KiB."""
    with os.fdopen(fd, "w") as out:
        out.write(f"{exit_code} {wall!r} {cpu_seconds!r} {maxrss_kb}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
