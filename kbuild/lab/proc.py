"""Running the host tools the lab drives (ip, mount, debootstrap, nsenter) and turning failures into LabError."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from kbuild.lab.errors import LabError


def run(argv: Sequence[str], *, check: bool = True, timeout: float | None = 120,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv`, capturing output; with `check`, a non-zero exit raises LabError quoting stderr."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input,
                                check=False)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shlex.join(argv)}` did not finish within {timeout:.0f} s") from None
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LabError(f"`{shlex.join(argv)}` failed (exit {result.returncode})"
                       f"{': ' + detail[-1] if detail else ''}")
    return result
