"""Small test doubles for artifacts: inventories as clusters, and tiny fake mirrors written from a release list."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import textwrap
from collections.abc import Iterable
from pathlib import Path

from kbuild.artifacts.catalogue import Binary, Release
from kbuild.artifacts.mirror import mirror_relative_path
from kbuild.inventory import Cluster, load_cluster

HOSTS = """\
  cp1: {address: 198.18.0.10, roles: [etcd, control-plane]}
  w1: {address: 198.18.0.11, roles: [worker]}
"""


def make_cluster(tmp_path: Path, *, artifacts: str = "", hosts: str = HOSTS, versions: str = "",
                 crictl: str | None = None) -> Cluster:
    """Load an inventory; crictl is dropped (opt-in) unless a version is given."""
    text = "cluster:\n  name: t\n"
    if versions:
        text += "  versions:\n" + textwrap.indent(textwrap.dedent(versions), "    ")
    if artifacts:
        text += "artifacts:\n" + textwrap.indent(textwrap.dedent(artifacts), "  ")
    text += "hosts:\n" + hosts
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    cluster = load_cluster(path)
    return with_crictl(cluster, crictl)


def with_crictl(cluster: Cluster, crictl: str | None) -> Cluster:
    # crictl is opt-in (versions.crictl: null means "not installed"); tests switch it on and off here.
    versions = cluster.settings.versions.model_copy(update={"crictl": crictl})
    return dataclasses.replace(cluster, settings=cluster.settings.model_copy(update={"versions": versions}))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def targz(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def content(binary: Binary) -> bytes:
    return f"#!/bin/sh\necho {binary.name} {binary.version} {binary.arch}\n".encode()


def write_fake_mirror(root: Path, binaries: Iterable[Binary], *, checksums: bool = True) -> dict[str, bytes]:
    """Write each binary's release (file or tar.gz) and checksum file; return official URL -> release bytes."""
    releases: dict[Release, dict[str, bytes]] = {}
    for binary in binaries:
        releases.setdefault(binary.release, {})[binary.member or ""] = content(binary)
    written: dict[str, bytes] = {}
    for release, members in releases.items():
        data = members[""] if not release.archive else targz(members)
        path = root / mirror_relative_path(release.url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[release.url] = data
        if checksums:
            sums = root / mirror_relative_path(release.checksum_url)
            previous = sums.read_text() if sums.exists() else ""
            line = sha(data) if release.checksum_url == release.url + ".sha256" and not release.archive \
                else f"{sha(data)}  {release.filename}\n"
            sums.write_text(previous + line)
    return written
