"""Merge a cluster's admin kubeconfig into a user's kubeconfig, the way `kubectl config` would keep it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from kbuild.errors import UsageError
from kbuild.state import write_atomic


def default_kubeconfig() -> Path:
    """The kubeconfig kubectl writes to: the first file in $KUBECONFIG, else ~/.kube/config."""
    return Path(os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config")


def merge_kubeconfig(source: Path, target: Path) -> str:
    """Add or replace the source's cluster, user and context in `target` (by name); returns the context name.

    The current context is set only when the target has none, so merging never silently
    switches which cluster a user's next kubectl command talks to.
    """
    new = _load(source, must_exist=True)
    old = _load(target, must_exist=False) or {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [],
                                              "contexts": [], "preferences": {}}
    for section in ("clusters", "users", "contexts"):
        entries = {e["name"]: e for e in (old.get(section) or [])}
        for entry in new.get(section) or []:
            entries[entry["name"]] = entry
        old[section] = list(entries.values())
    context = new.get("current-context") or new["contexts"][0]["name"]
    if not old.get("current-context"):
        old["current-context"] = context
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(target, yaml.safe_dump(old, sort_keys=False), mode=0o600)
    return context


def _load(path: Path, *, must_exist: bool) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        if must_exist:
            raise UsageError(f"{path}: not found") from None
        return None
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: not a readable kubeconfig: {exc}",
                         hint="fix or move the file; nothing was changed") from None
    if data is None and not must_exist:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("clusters", []), list):
        raise UsageError(f"{path}: not a kubeconfig (expected clusters/users/contexts lists)",
                         hint="fix or move the file; nothing was changed")
    return data
