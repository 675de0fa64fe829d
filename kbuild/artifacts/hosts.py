"""What the plays hand the engine: the files a host needs, with checksums and where each comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbuild.artifacts.catalogue import Binary, host_binaries, unique_binaries
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
