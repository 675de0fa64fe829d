"""What the plays hand the engine: the files a host needs, with checksums and where each comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbuild.artifacts.catalogue import Binary, Release, host_binaries, unique_binaries
from kbuild.artifacts.images import image_release, node_image_refs
from kbuild.artifacts.store import ArtifactStore
from kbuild.inventory.cluster import Cluster, Host


@dataclass(frozen=True)
class HostArtifact:
    component: str              # catalogue component, e.g. "etcd", "kubernetes", "containerd"
    name: str                   # file name on the host, e.g. "etcdctl"
    remote_path: PurePosixPath  # where it goes on the host (from kbuild/layout.py)
    mode: int                   # 0o755 for binaries
    sha256: str | None          # sha256 of the file itself (known once it is in the cache)
    local_path: Path | None     # the cached file (push mode)
    url: str                    # where a host fetches it, or the archive containing it (pull mode)
    archive_sha256: str | None  # set when url is an archive
    member: str | None          # member path inside that archive
    services: tuple[str, ...]   # systemd services to restart when it changes


@dataclass(frozen=True)
class HostImage:
    """A container image a node gets from an archive: pushed from the cache, or pulled from a mirror URL."""

    ref: str
    sha256: str | None  # of the archive (known once verified, or from its published checksum)
    local_path: Path | None  # push: the verified archive in the cache
    url: str | None  # pull: where the host downloads it


def host_images(store: ArtifactStore, cluster: Cluster, host: Host, *, prepare: bool) -> list[HostImage]:
    """The image archives `host` needs (kbuild.artifacts.images), resolved like its binaries.

    Archives from local files (artifacts.images.files) are always pushed: the hosts cannot read them.
    """
    result = []
    for ref in node_image_refs(cluster, host):
        release = image_release(ref, host.arch)
        if cluster.artifacts.transfer == "pull" and release.url not in store.local_files:
            expected = store.expected(release, fetch=prepare)
            result.append(HostImage(ref, expected.sha256 if expected else None, None,
                                    store.origin.host_url(release.url)))
        elif prepare:
            sha, path = store.ensure_release(release)
            result.append(HostImage(ref, sha, path, None))
        else:
            expected = store.expected(release, fetch=False)
            sha = expected.sha256 if expected else None
            result.append(HostImage(ref, sha, store.cache.get(sha) if sha else None, None))
    return result


def host_artifacts(cluster: Cluster, host: Host, *, prepare: bool = True) -> list[HostArtifact]:
    """The binaries `host` needs for its roles.

    push (artifacts.transfer, the default): with `prepare`, every file is fetched into the controller's
    cache and verified first, so sha256 and local_path are always set; the engine uploads local_path
    when the host's copy differs.
    pull: with `prepare`, only the checksums are fetched; the host downloads `url` itself and must
    verify it against archive_sha256 (archives, then take `member`) or sha256 (single files).
    Without `prepare`, nothing is read from the network: fields are filled from the cache if known.
    """
    return artifacts_for_host(ArtifactStore.for_cluster(cluster), cluster, host, prepare=prepare)


def cluster_artifacts(cluster: Cluster, *, prepare: bool = True) -> dict[str, list[HostArtifact]]:
    """host_artifacts for every host (host name -> list), sharing one store so each file is resolved once."""
    store = ArtifactStore.for_cluster(cluster)
    return {host.name: artifacts_for_host(store, cluster, host, prepare=prepare) for host in cluster.hosts}


def cluster_images(cluster: Cluster, *, prepare: bool = True) -> dict[str, list[HostImage]]:
    """host_images for every host (host name -> list), sharing one store so each archive is resolved once."""
    store = ArtifactStore.for_cluster(cluster)
    return {host.name: host_images(store, cluster, host, prepare=prepare) for host in cluster.hosts}


def cluster_image_releases(cluster: Cluster) -> list[Release]:
    """Every image archive any node of the cluster needs, once per image and architecture."""
    found = {(ref, host.arch): image_release(ref, host.arch) for host in cluster.hosts
             for ref in node_image_refs(cluster, host)}
    return list(found.values())


def cluster_binaries(cluster: Cluster) -> list[Binary]:
    """Every binary any host of the cluster needs, once each."""
    versions = cluster.settings.versions
    return unique_binaries(host_binaries(versions, host) for host in cluster.hosts)


def artifacts_for_host(store: ArtifactStore, cluster: Cluster, host: Host, *, prepare: bool) -> list[HostArtifact]:
    pull = cluster.artifacts.transfer == "pull"
    result = []
    for binary in host_binaries(cluster.settings.versions, host):
        release = binary.release
        if pull:
            url = store.origin.host_url(release.url)
            expected = store.expected(release, fetch=prepare)
            sha, _ = store.cached_binary(binary)
            local: Path | None = None
        else:
            url = store.origin.url(release.url)
            sha, local = store.ensure_binary(binary) if prepare else store.cached_binary(binary)
            expected = store.expected(release, fetch=False)
        archive_sha = expected.sha256 if expected is not None else None
        if binary.member is None:
            sha, archive_sha = archive_sha, None  # the release file is the binary
        result.append(HostArtifact(
            component=binary.component, name=binary.name, remote_path=binary.remote_path, mode=0o755,
            sha256=sha, local_path=local, url=url, archive_sha256=archive_sha, member=binary.member,
            services=binary.services,
        ))
    return result
