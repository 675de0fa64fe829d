"""Container images for the mirror, made without a registry or a container engine: OCI image-layout archives.

An image here is one gzip'd layer (a tar of its files), a config (architecture, os, the layer's
diff_id, entrypoint) and a manifest, packed as an OCI image layout (oci-layout, index.json,
blobs/sha256/...) in one tar, which `ctr images import` reads. index.json names the image
(io.containerd.image.name), so the import gives it its full reference. Everything is
deterministic: fixed mtimes, owners and gzip headers, so an unchanged input gives the same digests.

    pause     build/pause/linux/pause.c from the k8s.io/kubernetes module, compiled static with gcc
    busybox   busybox built from Debian's source (tests.mirror.busybox), the binary plus a link per applet
              (a test image for pods)
    coredns   the CoreDNS binary built from github.com/coredns/coredns
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.mirror.errors import MirrorBuildError

EPOCH = 1_700_000_000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Entry:
    """A file, directory or symlink in an image's layer."""

    path: str
    data: bytes = b""
    mode: int = 0o755
    kind: str = "file"  # "file", "dir", "symlink"
    target: str = ""  # symlink target
    uid: int = 0


@dataclass(frozen=True)
class ImageArchive:
    ref: str  # registry.k8s.io/pause:3.10.2
    data: bytes  # the OCI layout tar
    manifest_digest: str  # sha256:... of the manifest, what containerd lists for the image
    config_digest: str  # sha256:... of the config, the image id crictl shows


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _tar(entries: Iterable[Entry]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime, info.mode, info.uid, info.gid = EPOCH, entry.mode, entry.uid, entry.uid
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return raw.getvalue()


def image_archive(ref: str, entries: list[Entry], *, entrypoint: list[str], cmd: list[str] | None = None,
                  user: str = "", env: list[str] | None = None) -> ImageArchive:
    """An OCI layout tar holding one linux/amd64 image of `entries`, named `ref`."""
    layer_tar = _tar(entries)
    layer = gzip.compress(layer_tar, compresslevel=6, mtime=0)
    config = _json({
        "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd, "User": user,
                   "Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "kbuild test mirror"}],
    })
    manifest = _json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": _digest(layer), "size": len(layer)}],
    })
    tag = ref.rsplit(":", 1)[1]
    index = _json({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": _digest(manifest), "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}}],
    })
    blobs = [Entry("blobs", kind="dir"), Entry("blobs/sha256", kind="dir")]
    blobs += [Entry(f"blobs/sha256/{_digest(b)[7:]}", b, mode=0o644) for b in (layer, config, manifest)]
    data = _tar([Entry("oci-layout", _json({"imageLayoutVersion": "1.0.0"}), mode=0o644),
                 Entry("index.json", index, mode=0o644), *blobs])
    return ImageArchive(ref, data, _digest(manifest), _digest(config))


# -- the images -----------------------------------------------------------------------------------


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MirrorBuildError(f"{what}: {argv[0]} is not installed") from None
    if result.returncode != 0:
        raise MirrorBuildError(f"{what} failed: {(result.stderr or result.stdout).strip()[-400:]}")
    return result.stdout


def pause_version(kubernetes_module_dir: Path) -> str:
    """The pause image tag this Kubernetes release builds (TAG in build/pause/Makefile)."""
    makefile = (kubernetes_module_dir / "build/pause/Makefile").read_text()
    match = re.search(r"^TAG \?= *(\S+)", makefile, re.MULTILINE)
    if not match:
        raise MirrorBuildError(f"no TAG in {kubernetes_module_dir}/build/pause/Makefile")
    return match.group(1)


def pause_image(kubernetes_module_dir: Path, scratch: Path) -> ImageArchive:
    """registry.k8s.io/pause:<TAG>, compiled as build/pause/Makefile does (static, -Os), run as 65535 like upstream."""
    version = pause_version(kubernetes_module_dir)
    source = kubernetes_module_dir / "build/pause/linux/pause.c"
    binary = scratch / "pause"
    _run(["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{version}-kbuild", "-o", str(binary),
          str(source)], f"compiling {source}")
    _run(["strip", str(binary)], f"stripping {binary}")
    return image_archive(f"registry.k8s.io/pause:{version}", [Entry("pause", binary.read_bytes())],
                         entrypoint=["/pause"], user="65535:65535")


def busybox_image(busybox: Path, version: str) -> ImageArchive:
    """A small test image from a static busybox (tagged with its upstream version): sh, sleep, nslookup, wget, ..."""
    applets = sorted(set(_run([str(busybox), "--list"], f"listing the applets of {busybox}").split()) - {"busybox"})
    entries = [Entry("bin", kind="dir"), Entry("bin/busybox", busybox.read_bytes()),
               *(Entry(f"bin/{applet}", kind="symlink", target="busybox") for applet in applets),
               Entry("etc", kind="dir"), Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                                                         b"nobody:x:65534:65534:nobody:/:/bin/false\n", mode=0o644),
               Entry("etc/group", b"root:x:0:\nnobody:x:65534:\n", mode=0o644),
               Entry("tmp", kind="dir", mode=0o1777), Entry("root", kind="dir", mode=0o700)]
    return image_archive(f"kbuild.test/busybox:{version}", entries, entrypoint=[], cmd=["sh"])


def coredns_image(binary: Path, version: str) -> ImageArchive:
    return image_archive(f"registry.k8s.io/coredns/coredns:v{version}", [Entry("coredns", binary.read_bytes())],
                         entrypoint=["/coredns"])
