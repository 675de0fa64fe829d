"""Offline bundles: one tar file with every binary and image archive an inventory needs, and a manifest to verify them by.

Layout of the (uncompressed) tar:

    manifest.json          format, creator, and per file: name, component, version, arch, sha256, size,
                           the release file it came from (official URL, sha256, published sha256) and
                           its member path in that release's archive
    blobs/sha256/<hex>     each binary once, named by its sha256

Only unpacked binaries travel (not the release archives): that is all push mode uploads; container image
archives (kbuild.artifacts.images) travel whole, as entries of component "image" named by reference. Importing
verifies every blob against its name and the manifest before any index entry is written, so a damaged
bundle leaves the cache as it was (verified blobs are content-addressed and harmless).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from kbuild import __version__
from kbuild.artifacts.cache import Cache, Mismatch, default_cache_dir
from kbuild.artifacts.checksums import SHA256
from kbuild.artifacts.errors import ArtifactConfigError, BundleError
from kbuild.artifacts.hosts import cluster_binaries, cluster_image_releases
from kbuild.artifacts.store import ArtifactStore, cache_dir_for, member_key, release_key, update_release_ref
from kbuild.inventory.cluster import Cluster

FORMAT = "kbuild-artifacts-bundle/1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BundleFile:
    name: str
    component: str
    version: str
    arch: str
    sha256: str
    size: int
    release_url: str
    release_sha256: str
    published_sha256: str | None
    member: str | None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.component, self.name, self.version, self.arch)

    @property
    def blob(self) -> str:
        return f"blobs/sha256/{self.sha256}"


@dataclass(frozen=True)
class BundleManifest:
    files: tuple[BundleFile, ...]
    cluster: str | None = None
    created: str = ""
    kbuild: str = ""
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps({"format": self.format, "kbuild": self.kbuild, "created": self.created,
                           "cluster": self.cluster, "files": [asdict(f) for f in self.files]}, indent=2)

    @classmethod
    def from_json(cls, text: str, where: str) -> BundleManifest:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format') if isinstance(data, dict) else None!r}, "
                                 f"expected {FORMAT!r}")
            files = tuple(BundleFile(**entry) for entry in data["files"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{where}: not a kbuild artifacts bundle manifest: {exc}",
                              hint="make bundles with `kbuild artifacts bundle -i INV -o FILE`") from None
        for entry in files:
            for value in (entry.sha256, entry.release_sha256, entry.published_sha256 or "0" * 64):
                if not isinstance(value, str) or not SHA256.match(value):
                    raise BundleError(f"{where}: manifest entry {entry.name} has a bad sha256 {value!r}")
        return cls(files, data.get("cluster"), data.get("created", ""), data.get("kbuild", ""))


def write_bundle(cluster: Cluster, output: Path, *, store: ArtifactStore | None = None) -> BundleManifest:
    """Fetch (if needed) every binary and image archive the inventory needs and write them with a manifest to
    `output`."""
    store = store or ArtifactStore.for_cluster(cluster)
    files: list[BundleFile] = []
    paths: dict[str, Path] = {}
    for binary in cluster_binaries(cluster):
        sha, path = store.ensure_binary(binary)
        expected = store.expected(binary.release, fetch=False)
        assert expected is not None  # ensure_binary established it
        ref = store.cache.ref(release_key(binary.release.url)) or {}
        files.append(BundleFile(binary.name, binary.component, binary.version, binary.arch, sha,
                                path.stat().st_size, binary.release.url, expected.sha256, ref.get("published"),
                                binary.member))
        paths[sha] = path
    for release in cluster_image_releases(cluster):
        sha, path = store.ensure_release(release)
        ref = store.cache.ref(release_key(release.url)) or {}
        files.append(BundleFile(str(release.image), release.component, release.version, release.arch, sha,
                                path.stat().st_size, release.url, sha, ref.get("published"), None))
        paths[sha] = path
    manifest = BundleManifest(tuple(files), cluster.name, datetime.now(UTC).isoformat(timespec="seconds"),
                              __version__)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
            data = manifest.to_json().encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o644, int(datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(data))
            for sha, path in paths.items():
                info = tarfile.TarInfo(f"blobs/sha256/{sha}")
                info.size, info.mode, info.mtime = path.stat().st_size, 0o755, int(path.stat().st_mtime)
                with path.open("rb") as blob:
                    tar.addfile(info, blob)
        os.chmod(name, 0o644)
        os.replace(name, output)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return manifest


def read_manifest(path: Path) -> BundleManifest:
    try:
        with tarfile.open(path, "r:*") as tar:
            member = tar.getmember(MANIFEST)
            stream = tar.extractfile(member)
            if stream is None:
                raise KeyError(MANIFEST)
            return BundleManifest.from_json(stream.read().decode("utf-8", "replace"), str(path))
    except FileNotFoundError:
        raise BundleError(f"{path}: bundle file not found") from None
    except KeyError:
        raise BundleError(f"{path}: no {MANIFEST} in the bundle",
                          hint="make bundles with `kbuild artifacts bundle -i INV -o FILE`") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{path}: not a readable tar file: {exc}") from None


def use_bundle(path: str | os.PathLike[str], cluster: Cluster | None = None, *,
               cache_dir: Path | None = None) -> BundleManifest:
    """Verify a bundle and load it into the artifact cache, so installs need no network at all.

    With `cluster`, the bundle must hold every binary and image the inventory needs (checked before
    anything is imported). The cache filled is `cache_dir` if given, else the cluster's, else the default.
    """
    bundle = Path(path)
    manifest = read_manifest(bundle)
    if cluster is not None:
        _check_covers(manifest, cluster, bundle)
    cache = Cache(cache_dir or (cache_dir_for(cluster) if cluster is not None else default_cache_dir()))
    needed = {f.sha256 for f in manifest.files}
    try:
        with tarfile.open(bundle, "r:*") as tar:
            for member in tar:
                sha = member.name.removeprefix("blobs/sha256/")
                if sha == member.name or sha not in needed:
                    continue  # the manifest, or something this kbuild does not know: never extracted
                if not member.isfile():
                    raise BundleError(f"{bundle}: {member.name} is not a regular file")
                if cache.has(sha):
                    needed.discard(sha)
                    continue
                stream = tar.extractfile(member)
                assert stream is not None
                try:
                    cache.add_stream(stream, expected=sha)
                except Mismatch as exc:
                    raise BundleError(f"{bundle}: {member.name} is damaged: its content has sha256 {exc.found}; "
                                      "nothing from this bundle was imported",
                                      hint="copy the bundle again (or make a new one)") from None
                needed.discard(sha)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{bundle}: cannot read the bundle: {exc}") from None
    for sha in needed:
        if not cache.has(sha):
            names = ", ".join(sorted({f.name for f in manifest.files if f.sha256 == sha}))
            raise BundleError(f"{bundle}: the manifest lists {names} (sha256 {sha}) but the bundle does not hold it",
                              hint="the bundle is incomplete: make it again")
    for entry in manifest.files:
        _record(cache, entry)
    return manifest


def _record(cache: Cache, entry: BundleFile) -> None:
    values = {"verified": entry.release_sha256}
    if entry.published_sha256:  # a bundle that knows of no published checksum keeps the one on record
        values["published"] = entry.published_sha256
    update_release_ref(cache, entry.release_url, **values)
    if entry.member is not None:
        cache.set_ref(member_key(entry.release_sha256, entry.member), sha256=entry.sha256, size=entry.size)


def _check_covers(manifest: BundleManifest, cluster: Cluster, bundle: Path) -> None:
    if cluster.artifacts.transfer == "pull":
        raise ArtifactConfigError(
            f"{bundle}: a bundle serves push transfer only, but artifacts.transfer is pull (hosts would download "
            "from the mirror themselves)",
            hint="set artifacts.transfer: push to install from the bundle")
    present = {f.key for f in manifest.files}
    missing = [b.label for b in cluster_binaries(cluster) if b.key not in present]
    missing += [r.label for r in cluster_image_releases(cluster)
                if (r.component, r.image, r.version, r.arch) not in present]
    if missing:
        raise BundleError(f"{bundle}: the bundle lacks what this inventory needs: {', '.join(missing)}",
                          hint=f"make the bundle from this inventory: kbuild artifacts bundle -i "
                               f"{cluster.inventory_path} -o FILE")
