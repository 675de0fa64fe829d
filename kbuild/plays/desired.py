"""Turn what PKI, templates and artifacts say a host needs into engine resources, per component.

Every play builds its plan from these, so a file's mode, secrecy and the services it restarts
are decided in exactly one place (the producing module), never re-guessed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from kbuild import components as table
from kbuild import layout
from kbuild.artifacts import HostArtifact, HostImage, cluster_artifacts, cluster_images
from kbuild.engine.resources import Artifact, ContainerImage, Directory, File, Resource
from kbuild.errors import KbuildError
from kbuild.inventory import Cluster, Host
from kbuild.pki import EnsureReport, PKIFile
from kbuild.pki import host_files as pki_host_files
from kbuild.pki.deploy import Reader
from kbuild.plays.phases import Slot
from kbuild.render import RenderedFile
from kbuild.render import host_files as rendered_host_files

# Which phase a PKI file belongs to, by the services that read it (the component table's roles).
COMPONENT_SERVICES = {role: table.role_services(role) for role in table.ROLES}


@dataclass(frozen=True)
class HostInputs:
    """Everything one host should have, before it is split into phases."""

    host: Host
    pki: tuple[PKIFile, ...]
    rendered: tuple[RenderedFile, ...]
    artifacts: tuple[HostArtifact, ...]
    images: tuple[HostImage, ...] = ()


# The artifacts phase's result, which every phase that applies a plan builds on.
INPUTS: Slot[dict[str, HostInputs]] = Slot("inputs", "every host's binaries, image archives and rendered files "
                                            "(fetched and verified)")


# The PKI phase's result: the PKI as this run leaves it (in check mode, only in memory).
PKI: Slot[EnsureReport] = Slot("pki", "the cluster PKI (generated or reused)")


def gather_inputs(cluster: Cluster, host: Host, artifacts: Iterable[HostArtifact],
                  images: Iterable[HostImage] = (), read_pki: Reader | None = None) -> HostInputs:
    return HostInputs(host, tuple(pki_host_files(cluster, host, read_pki)),
                      tuple(rendered_host_files(cluster, host)), tuple(artifacts), tuple(images))


def prepare_inputs(cluster: Cluster, hosts: Iterable[Host], read_pki: Reader | None = None) -> dict[str, HostInputs]:
    """What each host should have, with every binary and image archive fetched and verified first.

    read_pki: where the PKI files' content comes from (kbuild.pki.host_files); the state directory by default.
    """
    artifacts = cluster_artifacts(cluster, prepare=True)
    images = cluster_images(cluster, prepare=True)
    return {h.name: gather_inputs(cluster, h, artifacts[h.name], images[h.name], read_pki) for h in hosts}


PHASE_ORDER = table.ROLES


def pki_role(f: PKIFile, host: Host) -> str:
    """The first phase with a service that reads the file installs it (each file has exactly one owner):
    the etcd CA goes out with etcd, and the apiserver's restart for it is owed until its own phase."""
    for role in PHASE_ORDER:
        if set(f.services) & set(COMPONENT_SERVICES[role]):
            return role
    # Read by no service: etcd's client certificates (for health checks) go with etcd; the rest
    # (admin.conf, say) with the host's first Kubernetes phase.
    if f.path.is_relative_to(layout.ETCD_PKI_DIR):
        return "etcd"
    first = (table.CONTROL_PLANE, table.NODE, table.ETCD)
    return next((role for role in first if table.host_has_role(host, role)), table.CONTROL_PLANE)


def pki_resources(inputs: HostInputs, role: str) -> list[Resource]:
    return [_pki_file(f) for f in inputs.pki if pki_role(f, inputs.host) == role]


def rendered_resources(inputs: HostInputs, role: str) -> list[Resource]:
    files = [f for f in inputs.rendered if f.role == role]
    return [File(str(f.path), f.content, mode=f.mode, notify=f.services) for f in files]


def artifact_resources(inputs: HostInputs, role: str) -> list[Resource]:
    return [_artifact(a) for a in inputs.artifacts if artifact_role(a) == role]


def artifact_role(a: HostArtifact) -> str:
    """Which phase installs a binary: the role of the component that brings it."""
    return table.binary_owner(a.component, a.name).role


def image_resources(inputs: HostInputs) -> list[Resource]:
    """The node's images from archives, imported into the namespace the kubelet's containerd uses."""
    ctr, socket = str(layout.binary_path("ctr")), str(layout.CONTAINERD_SOCKET)
    platform = f"linux/{inputs.host.arch}"
    resources: list[Resource] = []
    for image in inputs.images:
        if image.sha256 is None:
            raise KbuildError(f"{inputs.host.name}: the checksum of image {image.ref}'s archive is not known",
                              hint="run `kbuild artifacts fetch` (or import a bundle) first")
        resources.append(ContainerImage(image.ref, image.sha256, ctr=ctr, address=socket, platform=platform,
                                        source=image.local_path, url=image.url))
    return resources


def _pki_file(f: PKIFile) -> File:
    return File(str(f.path), f.content, mode=f.mode, secret=f.secret, notify=f.services)


def _artifact(a: HostArtifact) -> Artifact:
    if a.local_path is not None:
        return Artifact(str(a.remote_path), a.sha256, source=a.local_path, mode=a.mode, notify=a.services)
    return Artifact(str(a.remote_path), a.sha256, url=a.url, archive_sha256=a.archive_sha256, member=a.member,
                    mode=a.mode, notify=a.services)


def directories(paths: Iterable[PurePosixPath | str], mode: int = 0o755) -> list[Resource]:
    return [Directory(str(p), mode=mode) for p in paths]


def parents_of(resources: Iterable[Resource], *, secret_mode: int = 0o700) -> list[Resource]:
    """Directories for the files given, created before them with a deliberate mode (private dirs for PKI)."""
    seen: dict[str, int] = {}
    for resource in resources:
        if isinstance(resource, (File, Artifact)):
            parent = str(PurePosixPath(resource.path).parent)
            private = parent.startswith(str(layout.PKI_DIR)) or parent.startswith(str(layout.KUBELET_PKI_DIR))
            seen.setdefault(parent, secret_mode if private else 0o755)
    return [Directory(path, mode=mode) for path, mode in sorted(seen.items())]
