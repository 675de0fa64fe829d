"""What PKI files each host gets: the PKI table's placements (kbuild.pki.certlist) with their content.

The plays call host_files(cluster, host); it only reads the PKI (generation is `ensure`'s job) and
says clearly when something has not been generated yet. The content comes from the state directory,
or from an `ensure` report: in check mode that is the PKI the run would leave, held in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbuild.inventory import Cluster, Host
from kbuild.pki.certlist import HOST_FILES
from kbuild.pki.errors import PKIError
from kbuild.pki.store import read_bytes

# Reads one file of the PKI: its bytes, or None when it does not exist.
Reader = Callable[[Path], "bytes | None"]


@dataclass(frozen=True)
class PKIFile:
    """One file to put on a host: the engine uploads it (atomically, with mode) and restarts `services` on change."""

    path: PurePosixPath
    content: bytes
    mode: int  # 0o600 for keys, kubeconfigs and the encryption config; 0o644 for certificates
    secret: bool  # redact in diffs and logs
    services: tuple[str, ...]  # systemd units that read the file


def host_files(cluster: Cluster, host: Host, read: Reader | None = None) -> list[PKIFile]:
    """The PKI files `host` needs for its roles, never generated here.

    read: where the content comes from (an EnsureReport's `read`); the state directory by default.
    """
    read = read or read_bytes
    result: list[PKIFile] = []
    missing: list[Path] = []
    for entry in HOST_FILES:
        if not entry.wanted(cluster, host):
            continue
        source = cluster.state_dir / entry.local.format(host=host.name)
        content = read(source)
        if content is None:
            missing.append(source)
            continue
        result.append(PKIFile(entry.remote, content, entry.mode, entry.secret, entry.services_on(host)))
    if missing:
        shown = ", ".join(str(p) for p in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise PKIError(f"{host.name}: the PKI is not generated for this host yet (missing {shown})",
                       hint=f"run: kbuild certs generate -i {cluster.inventory_path}")
    return result
