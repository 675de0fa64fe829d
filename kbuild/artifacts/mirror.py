"""Where files come from: the official sites, or a mirror laid out like them (a base URL or a local directory).

Mirror layout: the official URL with its scheme stripped, under the mirror's root. For example

    MIRROR/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver
    MIRROR/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver.sha256
    MIRROR/github.com/etcd-io/etcd/releases/download/v3.6.16/etcd-v3.6.16-linux-amd64.tar.gz
    MIRROR/github.com/etcd-io/etcd/releases/download/v3.6.16/SHA256SUMS
    MIRROR/github.com/containerd/containerd/releases/download/v2.4.2/containerd-2.4.2-linux-amd64.tar.gz
    MIRROR/github.com/containerd/containerd/releases/download/v2.4.2/containerd-2.4.2-linux-amd64.tar.gz.sha256sum
    MIRROR/github.com/opencontainers/runc/releases/download/v1.5.3/runc.amd64
    MIRROR/github.com/opencontainers/runc/releases/download/v1.5.3/runc.sha256sum
    MIRROR/github.com/containernetworking/plugins/releases/download/v1.10.0/cni-plugins-linux-amd64-v1.10.0.tgz
    MIRROR/github.com/containernetworking/plugins/releases/download/v1.10.0/cni-plugins-linux-amd64-v1.10.0.tgz.sha256
    MIRROR/github.com/kubernetes-sigs/cri-tools/releases/download/v1.37.0/crictl-v1.37.0-linux-amd64.tar.gz
    MIRROR/github.com/kubernetes-sigs/cri-tools/releases/download/v1.37.0/crictl-v1.37.0-linux-amd64.tar.gz.sha256

plus container image archives under MIRROR/images/ (kbuild.artifacts.images), which have no official
site. The rest is exactly what `wget -x URL` (--force-directories) writes in the current directory, so
`cd MIRROR && wget -x $(kbuild artifacts list -i INV --urls)` fills a mirror, and any web server
serving MIRROR works as a URL mirror. MIRROR is either `http(s)://host/base` or a directory
(absolute, `file://`, or relative to the inventory file).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from kbuild.artifacts.errors import ArtifactConfigError


MIRROR_ONLY = "mirror:"  # a file no official site has (container image archives): its path in a mirror


def mirror_relative_path(official_url: str) -> str:
    """`https://dl.k8s.io/release/...` -> `dl.k8s.io/release/...`: where a file sits inside a mirror."""
    if official_url.startswith(MIRROR_ONLY):
        path = official_url[len(MIRROR_ONLY):]
        if path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"not a relative mirror path: {official_url!r}")
        return path
    parsed = urllib.parse.urlsplit(official_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"not an http(s) URL: {official_url!r}")
    path = parsed.path.lstrip("/")
    if ".." in path.split("/"):
        raise ValueError(f"refusing a URL with '..' in its path: {official_url!r}")
    return f"{parsed.netloc}/{path}"


@dataclass(frozen=True)
class Origin:
    """The place files are read from: the official sites (base None), a mirror URL, or a mirror directory."""

    base_url: str | None = None
    directory: Path | None = None

    @classmethod
    def from_setting(cls, mirror: str | None, relative_to: Path) -> Origin:
        if not mirror or not mirror.strip():
            return cls()
        text = mirror.strip()
        scheme = urllib.parse.urlsplit(text).scheme
        if scheme in ("http", "https"):
            return cls(base_url=text.rstrip("/"))
        if scheme == "file":
            return cls(directory=Path(urllib.parse.unquote(urllib.parse.urlsplit(text).path)))
        if scheme and len(scheme) > 1:  # one letter would be a Windows drive, not a scheme
            raise ArtifactConfigError(
                f"artifacts.mirror: unsupported scheme {scheme!r} in {text!r}",
                hint="use an http(s):// base URL or a directory laid out like the official sites")
        directory = Path(text).expanduser()
        return cls(directory=directory if directory.is_absolute() else (relative_to / directory))

    @property
    def is_official(self) -> bool:
        return self.base_url is None and self.directory is None

    @property
    def description(self) -> str:
        if self.base_url:
            return f"mirror {self.base_url}"
        if self.directory:
            return f"mirror directory {self.directory}"
        return "the official release sites"

    def location(self, official_url: str) -> str:
        """Where to read the file known by `official_url`: a URL, or a local path for a directory mirror."""
        if self.base_url:
            return f"{self.base_url}/{mirror_relative_path(official_url)}"
        if self.directory:
            return str(self.directory / mirror_relative_path(official_url))
        if official_url.startswith(MIRROR_ONLY):
            raise ArtifactConfigError(
                f"{official_url[len(MIRROR_ONLY):]} exists only in mirrors and bundles, and artifacts.mirror is not set",
                hint="set artifacts.mirror, import a bundle, or let containerd pull images from their registries "
                     "(artifacts.images.source: registry)")
        return official_url

    def url(self, official_url: str) -> str:
        """The same place as a URL (file:// for a directory mirror): for messages and HostArtifact.url."""
        if self.directory:
            return (self.directory / mirror_relative_path(official_url)).resolve().as_uri()
        return self.location(official_url)

    def host_url(self, official_url: str) -> str:
        """A URL a cluster host can download from itself (pull mode): not a controller-local directory."""
        if self.directory:
            raise ArtifactConfigError(
                f"artifacts.transfer is pull, but artifacts.mirror is a local directory ({self.directory}) "
                "that cluster hosts cannot read",
                hint="serve the directory over HTTP and set artifacts.mirror to its URL, or use transfer: push")
        return self.location(official_url)
