"""Getting verified files into the cache: expected checksums (pins, published files, index), downloads, unpacking."""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from kbuild.artifacts.cache import Cache, default_cache_dir
from kbuild.artifacts.catalogue import Binary, Release, release_binaries
from kbuild.artifacts.checksums import Pins, parse_checksum_file
from kbuild.artifacts.errors import ArtifactError, ChecksumError, NotFound
from kbuild.artifacts.images import image_release
from kbuild.artifacts.mirror import Origin
from kbuild.artifacts.transport import Transport
from kbuild.inventory.cluster import Cluster

NOTHING_INSTALLED = "nothing was installed"


@dataclass(frozen=True)
class Expected:
    """The sha256 a release file must have, and where that knowledge comes from (for messages)."""

    sha256: str
    source: str
    recorded: bool = False  # already the index's verified sha256: nothing to write back


@dataclass
class Stats:
    """What a store did, for the CLI's summary."""

    downloaded: list[tuple[str, int]] = field(default_factory=list)  # (file name, bytes)
    checksum_files: int = 0


def release_key(url: str) -> str:
    return f"release {url}"


def member_key(archive_sha256: str, member: str) -> str:
    return f"member {archive_sha256} {_normal(member)}"


def _normal(member: str) -> str:
    return member.removeprefix("./")


def update_release_ref(cache: Cache, url: str, **values: str | None) -> None:
    """Merge `values` into the index entry of the release file at `url`; a None value removes that field."""
    ref = cache.ref(release_key(url)) or {}
    ref.pop("key", None)
    ref.update(values)
    cache.set_ref(release_key(url), **{k: v for k, v in ref.items() if v is not None})


def local_image_files(cluster: Cluster) -> dict[str, Path]:
    """artifacts.images.files as release URLs -> local paths: each archive, and its .sha256 beside it."""
    found: dict[str, Path] = {}
    for ref, setting in cluster.artifacts.images.files.items():
        path = Path(setting).expanduser()
        path = path if path.is_absolute() else (cluster.inventory_path.parent / path).resolve()
        for host_arch in {h.arch for h in cluster.hosts}:
            release = image_release(ref, host_arch)
            found[release.url] = path
            found[release.checksum_url] = path.with_name(path.name + ".sha256")
    return found


def cache_dir_for(cluster: Cluster) -> Path:
    """artifacts.cache_dir (relative to the inventory file) or the per-user default."""
    setting = cluster.artifacts.cache_dir
    if not setting:
        return default_cache_dir()
    path = Path(setting).expanduser()
    return path if path.is_absolute() else (cluster.inventory_path.parent / path).resolve()


class ArtifactStore:
    """Resolves catalogue entries to verified cached files for one origin, cache and set of pins.

    With `offline`, nothing is ever read from the network or a mirror: only what the cache (or an
    imported bundle) already holds is used, and anything else is an error.
    """

    def __init__(self, cache: Cache, origin: Origin, pins: Pins | None = None, transport: Transport | None = None,
                 *, offline: bool = False, local_files: dict[str, Path] | None = None) -> None:
        self.cache = cache
        self.origin = origin
        self.pins = pins or Pins()
        self.transport = transport or Transport()
        self.offline = offline
        self.local_files = dict(local_files or {})  # official URL -> a local file given in its place
        self.stats = Stats()

    @classmethod
    def for_cluster(cls, cluster: Cluster, *, transport: Transport | None = None, offline: bool = False
                    ) -> ArtifactStore:
        return cls(Cache(cache_dir_for(cluster)),
                   Origin.from_setting(cluster.artifacts.mirror, cluster.inventory_path.parent.resolve()),
                   Pins.from_settings(cluster.artifacts.checksums), transport, offline=offline,
                   local_files=local_image_files(cluster))

    def location_of(self, url: str) -> str:
        """Where to read the file known by `url`: a local file given in its place, else the origin's place for it."""
        local = self.local_files.get(url)
        return str(local) if local is not None else self.origin.location(url)

    def url_of(self, url: str) -> str:
        """The same place as a URL, for messages."""
        local = self.local_files.get(url)
        return local.resolve().as_uri() if local is not None else self.origin.url(url)

    # -- expected checksums ---------------------------------------------------------------------------
    def expected(self, release: Release, *, fetch: bool = True) -> Expected | None:
        """The sha256 `release` must have. Without `fetch` (or offline), None when it is not known yet.

        A pin wins, but a published checksum that disagrees with it is an error: one of them is wrong
        and kbuild cannot tell which. Without a pin the published checksum file decides. Once a file
        has been verified (or imported from a bundle) the cache's index knows its sha256 and nothing is
        read again; until then the checksum file is read afresh each time, so a fixed mirror is noticed.
        """
        fetch = fetch and not self.offline
        # Every image archive of an architecture has the same file name: images are pinned by URL only.
        pin = self.pins.lookup(release.url, self.url_of(release.url), by_name=release.image is None)
        ref = self.cache.ref(release_key(release.url)) or {}
        published, verified = ref.get("published"), ref.get("verified")
        settled = verified is not None and (pin is None or verified == pin[0])
        why = "is not known"
        if fetch and not settled:
            published, why = self._fetch_published(release)
        if pin is not None:
            pinned, key = pin
            if published is not None and published != pinned:
                raise ChecksumError(
                    f"{release.label}: the sha256 pinned in the inventory ({key}: {pinned}) disagrees with the "
                    f"published checksum {published} ({self.url_of(release.checksum_url)}); {NOTHING_INSTALLED}",
                    hint="one of them is wrong: compare with the upstream release page, then fix the pin "
                         "in artifacts.checksums (or the mirror's copy)")
            return Expected(pinned, f"pinned in the inventory as {key}", recorded=settled)
        if settled:
            return Expected(str(verified), "verified before, recorded in the artifact cache", recorded=True)
        if published is not None:
            return Expected(published, f"published in {self.url_of(release.checksum_url)}")
        if fetch:
            raise ChecksumError(
                f"{release.label}: no checksum: {self.url_of(release.checksum_url)} {why}; files are "
                f"never used unverified, so {NOTHING_INSTALLED}",
                hint=f"put the official checksum file in the mirror next to the file, or pin the sha256 "
                     f"in the inventory: artifacts.checksums: {{{self.pin_key(release)}: <sha256>}}")
        return None

    @staticmethod
    def pin_key(release: Release) -> str:
        """How the inventory pins this file: by name, or by URL where names repeat (image archives)."""
        return f'"{release.url}"' if release.image else release.filename

    def _fetch_published(self, release: Release) -> tuple[str | None, str]:
        """(published sha256 or None, why there is none); the index keeps the latest answer."""
        # A local file's checksum file names it by its own name, as `sha256sum FILE > FILE.sha256` writes.
        local = self.local_files.get(release.url)
        filename = local.name if local is not None else release.filename
        try:
            text = self.transport.read_text(self.location_of(release.checksum_url))
            published = parse_checksum_file(text, filename)
            why = "" if published is not None else f"does not list {filename}"
        except NotFound:
            published, why = None, "does not exist"
        finally:
            self.stats.checksum_files += 1
        update_release_ref(self.cache, release.url, published=published)
        return published, why

    # -- files ----------------------------------------------------------------------------------------
    def ensure_release(self, release: Release, expected: Expected | None = None) -> tuple[str, Path]:
        """The verified release file in the cache, downloaded once if needed."""
        expected = expected or self._require_expected(release)
        cached = self.cache.get(expected.sha256)
        if cached is not None:
            if not expected.recorded:
                update_release_ref(self.cache, release.url, verified=expected.sha256)  # later runs ask nobody
            return expected.sha256, cached
        if self.offline:
            raise ArtifactError(
                f"{release.label} is not in the artifact cache ({self.cache.root}) and this run may not download",
                hint="import a bundle made from this inventory (`kbuild artifacts bundle -i INV -o FILE`)")
        location = self.location_of(release.url)
        with self.cache.writer() as (handle, tmp):
            found = self.transport.fetch(location, handle, label=release.filename)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            if found != expected.sha256:
                raise ChecksumError(
                    f"{release.label}: checksum mismatch for {self.url_of(release.url)}: expected sha256 "
                    f"{expected.sha256} ({expected.source}), found {found}; the download was discarded and "
                    f"{NOTHING_INSTALLED}",
                    hint="the mirror's copy is damaged or was tampered with: replace it with the official file "
                         "and run again (if the release was really republished, update the pin)")
            self.stats.downloaded.append((release.filename, tmp.stat().st_size))
            path = self.cache.commit(tmp, found)
        update_release_ref(self.cache, release.url, verified=found)
        return found, path

    def ensure_binary(self, binary: Binary) -> tuple[str, Path]:
        """The verified binary in the cache: the release file itself, or a member unpacked from its archive."""
        if binary.member is None:
            return self.ensure_release(binary.release)
        expected = self._require_expected(binary.release)
        ref = self.cache.ref(member_key(expected.sha256, binary.member))
        cached = self.cache.get(ref["sha256"]) if ref else None
        if ref and cached is not None:
            return ref["sha256"], cached
        archive_sha, archive = self.ensure_release(binary.release, expected)
        self._unpack(binary.release, archive_sha, archive)
        sha, path = self.cached_binary(binary)
        assert sha is not None and path is not None  # _unpack raised otherwise
        return sha, path

    def cached_binary(self, binary: Binary) -> tuple[str | None, Path | None]:
        """(sha256, cached path) as far as the cache knows them; reads nothing from the network."""
        expected = self.expected(binary.release, fetch=False)
        if expected is None:
            return None, None
        if binary.member is None:
            return expected.sha256, self.cache.get(expected.sha256)
        ref = self.cache.ref(member_key(expected.sha256, binary.member))
        if ref is None:
            return None, None
        return ref["sha256"], self.cache.get(ref["sha256"])

    def _require_expected(self, release: Release) -> Expected:
        expected = self.expected(release)
        if expected is None:
            raise ArtifactError(
                f"{release.label}: its checksum is not in the artifact cache ({self.cache.root}) and this run "
                "may not download",
                hint="import a bundle made from this inventory (`kbuild artifacts bundle -i INV -o FILE`)")
        return expected

    def _unpack(self, release: Release, archive_sha: str, archive: Path) -> None:
        """Store every binary kbuild takes from this archive as its own cached file (one pass)."""
        wanted = {_normal(b.member): b for b in release_binaries(release) if b.member}
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    name = _normal(member.name)
                    if name not in wanted:
                        continue
                    if not member.isfile():
                        raise ArtifactError(f"{release.label}: archive member {member.name} is not a regular file",
                                            hint="the archive does not have the official layout")
                    stream = tar.extractfile(member)
                    assert stream is not None
                    sha, _ = self.cache.add_stream(stream)
                    self.cache.set_ref(member_key(archive_sha, name), sha256=sha, size=member.size)
                    del wanted[name]
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArtifactError(f"{release.label}: cannot unpack the archive: {exc}",
                                hint="the file matches its checksum, so the upstream archive itself is unusable "
                                     "here; report it") from None
        if wanted:
            raise ArtifactError(
                f"{release.label}: the archive has no {', '.join(sorted(wanted))}; {NOTHING_INSTALLED}",
                hint="the mirror's archive does not have the official layout (see kbuild.artifacts.catalogue)")
