"""Small test doubles for artifacts: inventories as clusters, tiny fake mirrors from a release list, image archives."""

from __future__ import annotations

import hashlib
import io
import tarfile
import textwrap
from collections.abc import Iterable
from pathlib import Path

from kbuild.artifacts.catalogue import Binary, Release, host_binaries, unique_binaries
from kbuild.artifacts.images import image_release, node_image_refs
from kbuild.artifacts.mirror import mirror_relative_path
from kbuild.inventory import Cluster, load_cluster
from tests.mirror.images import Entry, image_archive

HOSTS = """\
  cp1: {address: 198.18.0.10, roles: [etcd, control-plane]}
  w1: {address: 198.18.0.11, roles: [worker]}
"""


def make_cluster(tmp_path: Path, *, artifacts: str = "", hosts: str = HOSTS, versions: str = "",
                 settings: str = "") -> Cluster:
    """Load an inventory of `hosts` with these `cluster.versions`, other cluster `settings` and `artifacts`
    settings (YAML text)."""
    text = "cluster:\n  name: t\n" + textwrap.indent(textwrap.dedent(settings), "  ")
    if versions:
        text += "  versions:\n" + textwrap.indent(textwrap.dedent(versions), "    ")
    if artifacts:
        text += "artifacts:\n" + textwrap.indent(textwrap.dedent(artifacts), "  ")
    text += "hosts:\n" + hosts
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return load_cluster(path)


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


def oci_archive(ref: str) -> bytes:
    """A small OCI image-layout tar naming `ref` in its index, as the test mirror builds them."""
    return image_archive(ref, [Entry("hello", b"#!/bin/sh\necho hello\n")], entrypoint=["/hello"]).data


def write_image(root: Path, ref: str, arch: str = "amd64", *, data: bytes | None = None,
                checksum: str | None = None) -> bytes:
    """Put the archive of `ref` and its .sha256 (the bare hash, or `checksum`) where a mirror keeps them."""
    release = image_release(ref, arch)
    data = oci_archive(ref) if data is None else data
    path = root / mirror_relative_path(release.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    (root / mirror_relative_path(release.checksum_url)).write_text(f"{checksum or sha(data)}\n")
    return data


def write_node_images(root: Path, cluster: Cluster) -> dict[tuple[str, str], bytes]:
    """Put every image archive the cluster's nodes get from a mirror (all but artifacts.images.files) into the
    mirror at `root`; return (reference, arch) -> archive bytes."""
    wanted = {(ref, h.arch) for h in cluster.hosts for ref in node_image_refs(cluster, h)
              if ref not in cluster.artifacts.images.files}
    return {(ref, arch): write_image(root, ref, arch) for ref, arch in sorted(wanted)}


def write_cluster_mirror(root: Path, cluster: Cluster) -> None:
    """A fake mirror holding every binary and image archive the cluster's hosts need."""
    write_fake_mirror(root, unique_binaries(host_binaries(cluster.settings.versions, h) for h in cluster.hosts))
    write_node_images(root, cluster)
