"""A resolved cluster written back as a kbuild inventory document: everything explicit, paths absolute.

`inventory check --json` carries it under "inventory", so its output loads back as an inventory
from anywhere; `inventory convert` writes the same kind of document.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kbuild.inventory.cluster import Cluster, Host


def _absolute(base: Path, value: str | None) -> str | None:
    if value is None or "://" in value and not value.startswith("file://"):
        return value
    path = Path(os.path.expanduser(value.removeprefix("file://")))
    return str(path if path.is_absolute() else (base / path).resolve())


def native_document(cluster: Cluster) -> dict[str, Any]:
    base = cluster.inventory_path if cluster.inventory_path.is_dir() else cluster.inventory_path.parent
    settings = cluster.settings.model_dump(mode="json")
    settings["templates_dir"] = _absolute(base, settings["templates_dir"])
    artifacts = cluster.artifacts.model_dump(mode="json")
    artifacts["mirror"] = _absolute(base, artifacts["mirror"])
    artifacts["cache_dir"] = _absolute(base, artifacts["cache_dir"])
    artifacts["images"]["files"] = {ref: _absolute(base, path) for ref, path in artifacts["images"]["files"].items()}
    return {
        "cluster": settings,
        "ssh": {"host_key_policy": cluster.host_key_policy.value, "known_hosts": str(cluster.known_hosts)},
        "pki": cluster.pki.model_dump(mode="json"),
        "etcd": cluster.etcd.model_dump(mode="json"),
        "artifacts": artifacts,
        "state_dir": str(cluster.state_dir),
        "hosts": {host.name: host_document(host) for host in cluster.hosts},
    }


def host_document(host: Host) -> dict[str, Any]:
    ssh = host.ssh
    return {
        "address": str(host.address),
        "roles": host.role_names,
        "arch": host.arch,
        "ssh": {
            "host": ssh.host, "user": ssh.user, "port": ssh.port, "key_file": ssh.key_file, "become": ssh.become,
            "bastion": ssh.bastion.model_dump(mode="json") if ssh.bastion else None,
            "connect_timeout": ssh.connect_timeout, "retries": ssh.retries, "persist": ssh.persist,
        },
        "labels": dict(host.labels),
        "taints": list(host.taints),
        "extra_flags": {k: dict(v) for k, v in host.extra_flags.items()},
    }
