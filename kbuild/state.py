"""The cluster's state directory on the controller: pki/, kubeconfigs, known_hosts, backups/, logs/.

Everything secret kbuild keeps lives here, so the directory is 0700 and private keys are 0600.
Writes are atomic (temporary file in the same directory, fsync, rename) so an interrupted run
never leaves a half-written key or certificate behind.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from kbuild.errors import UsageError

DIR_MODE = 0o700
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


def ensure_dir(path: Path, mode: int = DIR_MODE) -> Path:
    """Create `path` (and parents) with `mode`; an existing directory keeps its mode (reported by `loose_permissions`)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as exc:
        raise UsageError(f"{path}: cannot create the state directory: {exc.strerror}",
                         hint="check the path and its permissions, or set state_dir in the inventory") from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise UsageError(f"{path}: the state directory is not readable and writable by this user",
                         hint="fix its ownership/permissions (chmod 700) or run as its owner")
    return path


def write_atomic(path: Path, data: bytes | str, mode: int = PUBLIC_MODE) -> None:
    """Write a file so that readers see either the old content or the new one, never a partial file."""
    if isinstance(data, str):
        data = data.encode()
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def loose_permissions(root: Path) -> list[str]:
    """Findings for group/other access on the state directory tree and on private keys."""
    findings: list[str] = []
    if not root.exists():
        return findings
    for path in [root, *sorted(root.rglob("*"))]:
        try:
            info = path.lstat()
        except OSError:
            continue
        mode, wanted = stat.S_IMODE(info.st_mode), _wanted_mode(path, info)
        if wanted == DIR_MODE:
            findings.append(f"{path}: directory is {mode:04o}, expected 0700")
        elif wanted == SECRET_MODE:
            findings.append(f"{path}: private file is {mode:04o}, expected 0600")
    return findings


def _wanted_mode(path: Path, info: os.stat_result) -> int | None:
    """The mode `path` should have when group or others have access it must not give, else None."""
    if not stat.S_IMODE(info.st_mode) & 0o077:
        return None
    if stat.S_ISDIR(info.st_mode):
        return DIR_MODE
    if stat.S_ISREG(info.st_mode) and _is_secret(path):
        return SECRET_MODE
    return None


def tighten_permissions(root: Path) -> list[str]:
    """Give the state directory tree 0700 and private files 0600 where group or others had access, saying
    so for each; a path this user cannot chmod (someone else's) is refused."""
    fixed: list[str] = []
    if not root.exists():
        return fixed
    # Only what kbuild keeps there: a state_dir pointed at a home directory must not chmod all of it.
    owned = [root / name for name in ("pki", "kubeconfigs", "backups") if (root / name).is_dir()]
    candidates = [root, *owned, *(p for d in owned for p in sorted(d.rglob("*"))),
                  *(p for p in sorted(root.iterdir()) if p.is_file())]
    for path in candidates:
        try:
            info = path.lstat()
        except OSError:
            continue
        mode, wanted = stat.S_IMODE(info.st_mode), _wanted_mode(path, info)
        if wanted is None:
            continue
        try:
            os.chmod(path, wanted)
        except OSError as exc:
            raise UsageError(f"{path}: is {mode:04o} (others may read the cluster's secrets) and cannot be fixed: "
                             f"{exc.strerror}", hint=f"chmod {wanted:o} {path}, or run kbuild as its owner") from None
        fixed.append(f"{path}: was {mode:04o}, group or others had access; now {wanted:04o}")
    return fixed


def _is_secret(path: Path) -> bool:
    name = path.name
    return name.endswith((".key", ".conf", ".kubeconfig")) or name in ("encryption-config.yaml", "id_ed25519")
