"""Where the PKI lives in the state directory, and reading it back: every failure names the file.

The files and their names come from the PKI table (kbuild.pki.certlist): certificates and keys
under <state>/pki/ (per-host ones under pki/hosts/<host>/), kubeconfigs as each row says, and
backups/pki-<UTC time>/ for what --force-new-ca replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from kbuild.pki.certlist import (
    CERT_SUFFIX,
    ENCRYPTION_CONFIG,
    KEY_SUFFIX,
    SERVICE_ACCOUNT,
    STATE_PKI_DIR,
    state_file,
)
from kbuild.pki.errors import PKIError
from kbuild.pki.keys import PrivateKey, load_private_pem, short_reason
from kbuild.state import DIR_MODE, ensure_dir

PKI_DIR = STATE_PKI_DIR
BACKUP_DIR = "backups"


@dataclass(frozen=True)
class StateFiles:
    """Paths of PKI files under one cluster's state directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / PKI_DIR

    def cert(self, file: str) -> Path:
        return self.root / state_file(file, CERT_SUFFIX)

    def key(self, file: str) -> Path:
        return self.root / state_file(file, KEY_SUFFIX)

    @property
    def sa_key(self) -> Path:
        return self.root / SERVICE_ACCOUNT.key_file

    @property
    def sa_pub(self) -> Path:
        return self.root / SERVICE_ACCOUNT.pub_file

    @property
    def encryption_config(self) -> Path:
        return self.root / ENCRYPTION_CONFIG.file

    def kubeconfig(self, file: str) -> Path:
        return self.root / file

    @property
    def backups(self) -> Path:
        return self.root / BACKUP_DIR


@dataclass(frozen=True)
class Pair:
    """A certificate and its key as found on disk (either may be absent)."""

    cert: x509.Certificate | None = None
    key: PrivateKey | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    @property
    def absent(self) -> bool:
        return self.cert is None and self.key is None


def check_state_dir(root: Path) -> None:
    """Fail early, naming the directory, when the state directory exists but cannot be used."""
    if not root.exists():
        return
    if not root.is_dir():
        raise PKIError(f"{root}: the state directory is not a directory",
                       hint="set state_dir in the inventory (or --state-dir) to a directory path")
    for folder in (root, root / PKI_DIR):
        if folder.is_dir() and not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            raise PKIError(f"{folder}: not readable and writable by this user",
                           hint="fix its ownership/permissions (chmod 700) or run kbuild as its owner")


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist; PKIError naming it for anything else."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise PKIError(f"{path}: is a directory, expected a file") from None
    except NotADirectoryError:
        raise PKIError(f"{path}: a parent of this path is a file, expected a directory") from None
    except OSError as exc:
        raise PKIError(f"{path}: cannot read: {exc.strerror or exc}",
                       hint="fix its ownership/permissions or run kbuild as its owner") from None


def load_cert(path: Path) -> tuple[x509.Certificate | None, bytes | None]:
    data = read_bytes(path)
    if data is None:
        return None, None
    try:
        return x509.load_pem_x509_certificate(data), data
    except ValueError as exc:
        raise PKIError(f"{path}: not a valid PEM certificate ({short_reason(exc)})",
                       hint="restore it from a backup, or move it away to have kbuild issue a new one") from None


def load_key(path: Path, *, validate: bool = True) -> tuple[PrivateKey | None, bytes | None]:
    data = read_bytes(path)
    if data is None:
        return None, None
    try:
        return load_private_pem(data, validate=validate), data
    except ValueError as exc:
        raise PKIError(f"{path}: {exc}",
                       hint="restore it from a backup, or move it away to have kbuild create a new one") from None


def load_pair(files: StateFiles, file: str, *, signer: bool = False) -> Pair:
    """Load <file>.crt and <file>.key; PKIError naming every file that is unreadable or corrupt.

    signer: the key signs certificates (a CA), so its RSA consistency is fully checked.
    """
    problems: list[PKIError] = []
    cert = key = None
    cert_pem = key_pem = None
    try:
        cert, cert_pem = load_cert(files.cert(file))
    except PKIError as exc:
        problems.append(exc)
    try:
        key, key_pem = load_key(files.key(file), validate=signer)
    except PKIError as exc:
        problems.append(exc)
    if problems:
        raise problems[0] if len(problems) == 1 else PKIError("\n".join(p.message for p in problems),
                                                              hint=problems[0].hint)
    return Pair(cert, key, cert_pem, key_pem)


def make_dirs(root: Path, path: Path) -> None:
    """Create every directory from the state directory down to `path`'s parent, each 0700.

    (mkdir(parents=True) would give intermediate directories the umask's mode, not 0700.)
    """
    ensure_dir(root, DIR_MODE)
    current = root
    for part in path.parent.relative_to(root).parts:
        current = current / part
        ensure_dir(current, DIR_MODE)
