"""Test helper: check rendered unit files with `systemd-analyze verify`, here or on a lab machine with real systemd.

Only the tests use it, so it lives beside them rather than in the kbuild package.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from kbuild import layout

# Runs a command, returns (exit code, combined output). The default runs it locally; a lab test
# can pass one that runs it inside a machine.
Runner = Callable[[list[str]], tuple[int, str]]


def _local(argv: list[str]) -> tuple[int, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def systemd_analyze_available() -> bool:
    return shutil.which("systemd-analyze") is not None


def verify_units(paths: Sequence[str | Path | PurePosixPath], *, run: Runner | None = None,
                 binaries_installed: bool = True) -> list[str]:
    """Problems `systemd-analyze verify` reports for these unit files; an empty list means clean.

    `systemd-analyze verify` exits 0 even for warnings (an unknown key is "ignoring"), so every
    line it prints about a unit counts as a problem. With binaries_installed=False the complaint
    that an ExecStart binary under kbuild's BIN_DIR does not exist is dropped: that is the normal
    state of a machine that has the units but not yet the binaries.
    """
    if not paths:
        return []
    argv = ["systemd-analyze", "verify", "--man=no", *(str(p) for p in paths)]
    code, output = (run or _local)(argv)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    problems = lines
    if not binaries_installed:
        missing = f"Command {layout.BIN_DIR}/"
        problems = [p for p in lines if not (missing in p and "is not executable" in p)]
    if code != 0 and not lines:
        problems.append(f"systemd-analyze verify exited {code} without saying why")
    return problems
