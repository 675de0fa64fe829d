"""The node phase's plan: containerd running before its images are imported, images before the kubelet starts."""

from __future__ import annotations

from kbuild.engine.resources import ContainerImage, Service
from kbuild.plays import node
from tests.unit.supported import PAUSE

APP = "kbuild.test/app:1.0"
ALL_IN_ONE = "  m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}\n"


def test_containerd_starts_before_the_images_are_imported_and_the_kubelet_after(prepared):
    cluster, inputs = prepared(ALL_IN_ONE, images=f"{{preload: [{APP}]}}")
    resources = node.plan(cluster, inputs).resources
    where = {r.key: i for i, r in enumerate(resources)}
    containerd, kubelet = where[Service("containerd").key], where[Service("kubelet").key]
    imports = [i for i, r in enumerate(resources) if isinstance(r, ContainerImage)]
    refs = [resources[i].ref for i in imports]
    assert refs == [image.ref for image in inputs.images] and refs[0] == PAUSE and refs[-1] == APP
    assert all(resources[i].source is not None for i in imports)  # push mode: the verified archives
    assert containerd < min(imports) and max(imports) < kubelet < where[Service("kube-proxy").key]
    # Everything containerd reads (its binaries, its config) is in place before it starts.
    files = [i for i, r in enumerate(resources) if r.kind in ("file", "artifact")]
    assert max(files) < containerd


def test_images_from_registries_leave_the_node_nothing_to_import(prepared):
    cluster, inputs = prepared(ALL_IN_ONE, images="{source: registry}")
    resources = node.plan(cluster, inputs).resources
    assert not any(isinstance(r, ContainerImage) for r in resources)
    services = [r.key for r in resources if isinstance(r, Service)]
    assert services.index(Service("containerd").key) < services.index(Service("kubelet").key)
