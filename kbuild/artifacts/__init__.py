"""Cluster binaries: the component catalogue, checksums, the controller's cache, mirrors and offline bundles."""

from kbuild.artifacts.bundle import BundleFile, BundleManifest, read_manifest, use_bundle, write_bundle
from kbuild.artifacts.cache import Cache, default_cache_dir
from kbuild.artifacts.catalogue import Binary, Release, component_binaries, host_binaries
from kbuild.artifacts.checksums import Pins, parse_checksum_file, sha256_file
from kbuild.artifacts.errors import (
    ArtifactConfigError,
    ArtifactError,
    BundleError,
    ChecksumError,
    DownloadError,
    NotFound,
)
from kbuild.artifacts.hosts import (
    HostArtifact,
    HostImage,
    cluster_artifacts,
    cluster_binaries,
    cluster_images,
    host_artifacts,
)
from kbuild.artifacts.mirror import Origin, mirror_relative_path
from kbuild.artifacts.store import ArtifactStore, cache_dir_for
from kbuild.artifacts.transport import Transport

__all__ = [
    "ArtifactConfigError",
    "ArtifactError",
    "ArtifactStore",
    "Binary",
    "BundleError",
    "BundleFile",
    "BundleManifest",
    "Cache",
    "ChecksumError",
    "DownloadError",
    "HostArtifact",
    "HostImage",
    "NotFound",
    "Origin",
    "Pins",
    "Release",
    "Transport",
    "cache_dir_for",
    "cluster_artifacts",
    "cluster_binaries",
    "cluster_images",
    "component_binaries",
    "default_cache_dir",
    "host_artifacts",
    "host_binaries",
    "mirror_relative_path",
    "parse_checksum_file",
    "read_manifest",
    "sha256_file",
    "use_bundle",
    "write_bundle",
]
