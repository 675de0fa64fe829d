"""Trust on first use of the CAs: their fingerprints, recorded in the state directory, must not change.

A valid CA pair put in place of the cluster's (both ca.crt and ca.key replaced) would otherwise be
reused silently and every leaf reissued under it: hosts would trust whoever made it. So the sha256
of each CA certificate is recorded when kbuild first creates or uses it, and a different one later
is refused unless the CAs are replaced on purpose (`kbuild certs generate --force-new-ca`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kbuild.pki.errors import PKIError
from kbuild.pki.store import StateFiles, read_bytes
from kbuild.state import PUBLIC_MODE, write_atomic

FILE = "ca-fingerprints.json"


def path_of(files: StateFiles) -> Path:
    return files.pki / FILE


def fingerprint(cert: x509.Certificate) -> str:
    return "sha256:" + hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def recorded(files: StateFiles) -> dict[str, str]:
    """CA name -> fingerprint as recorded; empty before the first run."""
    path = path_of(files)
    data = read_bytes(path)
    if data is None:
        return {}
    try:
        found = json.loads(data)
        if isinstance(found, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
            return found
    except ValueError:
        pass
    raise PKIError(f"{path}: not the CA fingerprints kbuild records (a JSON object of CA name to sha256)",
                   hint="restore it from a backup; kbuild refuses to trust CAs it cannot check")


def check(files: StateFiles, name: str, cert_path: Path, cert: x509.Certificate, known: dict[str, str]) -> None:
    """Refuse a CA whose certificate is not the one recorded for `name`."""
    want, have = known.get(name), fingerprint(cert)
    if want is not None and want != have:
        raise PKIError(
            f"{cert_path}: CA {name} is not the CA this cluster was set up with (its fingerprint is {have}, "
            f"{path_of(files)} records {want}); nothing was changed",
            hint="restore the original ca.crt and ca.key; to replace every CA on purpose run "
                 "`kbuild certs generate --force-new-ca` (every certificate is reissued and must be redeployed)")


def record(files: StateFiles, fingerprints: dict[str, str]) -> None:
    if fingerprints != recorded_quietly(files):
        write_atomic(path_of(files), (json.dumps(fingerprints, indent=2, sort_keys=True) + "\n").encode(),
                     PUBLIC_MODE)


def recorded_quietly(files: StateFiles) -> dict[str, str]:
    try:
        return recorded(files)
    except PKIError:
        return {}
