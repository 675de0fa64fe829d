"""Where kbuild keeps things of its own on the controller, per the XDG base directory spec."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """kbuild's cache: `$XDG_CACHE_HOME/kbuild`, else `~/.cache/kbuild`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kbuild"


def runtime_home() -> Path:
    """Where kbuild's sockets go: `$XDG_RUNTIME_DIR/kbuild` (private to the user, cleared at logout), else
    under the cache."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "kbuild" if runtime else cache_home() / "run"
