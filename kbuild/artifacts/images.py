"""Container images as artifacts: where an image's archive sits in a mirror or bundle, and which images a node gets.

Online, containerd pulls images from their registries and kbuild does nothing for them. An
air-gapped cluster gets them as OCI image archives instead (what `ctr images export`, `skopeo
copy ... oci-archive:` or `docker save` write), from a mirror, a bundle or local files; kbuild
verifies each archive's sha256, sends it to the nodes that need it and imports it into
containerd's k8s.io namespace (where the kubelet's images live), once.

Mirror layout, beside the official download paths (see kbuild.artifacts.mirror):

    MIRROR/images/registry.k8s.io/pause/3.10.2/linux-amd64.tar
    MIRROR/images/registry.k8s.io/pause/3.10.2/linux-amd64.tar.sha256      (the bare hash, like dl.k8s.io)
    MIRROR/images/registry.k8s.io/coredns/coredns/v1.14.6/linux-amd64.tar  ...

Image archives have no official download site, so their URLs use the `mirror:` scheme: a file
that exists only in mirrors and bundles.
"""

from __future__ import annotations

from kbuild.artifacts.catalogue import Release
from kbuild.artifacts.mirror import MIRROR_ONLY
from kbuild.imageref import ImageRef
from kbuild.inventory.cluster import Cluster, Host
from kbuild.releases import COREDNS_IMAGE, KUBERNETES, minor_of


def archive_path(ref: str, arch: str) -> str:
    """Where the archive of `ref` for linux/`arch` sits inside a mirror."""
    image = ImageRef.parse(ref)
    return f"images/{image.registry}/{image.repository}/{image.tag}/linux-{arch}.tar"


def image_release(ref: str, arch: str) -> Release:
    """The archive of one image for one architecture, as a release file checked against its .sha256."""
    url = f"{MIRROR_ONLY}{archive_path(ref, arch)}"
    return Release("image", ImageRef.parse(ref).tag, arch, url, f"{url}.sha256", archive=False, image=ref)


def uses_archives(cluster: Cluster) -> bool:
    """Whether nodes get their images from archives (mirror, bundle, files) rather than from registries."""
    source = cluster.artifacts.images.source
    return source == "archives" or (source == "auto" and bool(cluster.artifacts.mirror))


def node_image_refs(cluster: Cluster, host: Host) -> list[str]:
    """The images a node gets from archives: its sandbox image, the addons' (CoreDNS may run on any node),
    then the inventory's preload list."""
    if not host.runs_kubelet or not uses_archives(cluster):
        return []
    sandbox = KUBERNETES[minor_of(cluster.settings.versions.kubernetes)].pause_image
    addons = [COREDNS_IMAGE] if cluster.settings.addons.coredns.enabled else []
    return list(dict.fromkeys([sandbox, *addons, *cluster.artifacts.images.preload]))
