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


# -- labels the kubelet may not set itself ----------------------------------------------------------------

LABELLED = """\
cluster: {name: t}
hosts:
  m1: {address: 198.18.0.1, roles: [etcd, control-plane]}
  w1: {address: 198.18.0.2, roles: [worker],
       labels: {node-role.kubernetes.io/worker: "", node-role.kubernetes.io/gpu: "yes", zone: a}}
"""


def _guard_with(tmp_path, labels: str, unless: str) -> bool:  # noqa: ANN001
    """Run the guard locally against a kubectl that prints `labels` as the go-template would."""
    import subprocess

    fake = tmp_path / "kubectl"
    fake.write_text(f"#!/bin/sh\nprintf '{labels}'\n")
    fake.chmod(0o755)
    return subprocess.run(["sh", "-c", unless.replace("/usr/local/bin/kubectl", str(fake))]).returncode == 0


def test_labels_noderestriction_keeps_from_the_kubelet_are_set_through_the_api(cluster_from, tmp_path) -> None:
    from kbuild.plays.bootstrap import api_labels_command

    cluster = cluster_from(LABELLED)
    assert api_labels_command([cluster.host("m1")]) is None
    command = api_labels_command(cluster.hosts)
    assert command is not None
    assert command.command.endswith("label node w1 --overwrite node-role.kubernetes.io/gpu=yes "
                                    "node-role.kubernetes.io/worker= >/dev/null")
    assert "zone=a" not in command.command  # the kubelet registers that one itself (--node-labels)
    assert "m1" not in command.command
    # Idempotent: nothing to do once both are there with these values; again when one is missing or differs.
    assert _guard_with(tmp_path, "m1 kubernetes.io/hostname=m1\\nw1 node-role.kubernetes.io/gpu=yes\\n"
                                 "w1 node-role.kubernetes.io/worker=\\nw1 zone=a\\n", command.unless)
    assert not _guard_with(tmp_path, "w1 node-role.kubernetes.io/gpu=no\\nw1 node-role.kubernetes.io/worker=\\n",
                           command.unless)
    assert not _guard_with(tmp_path, "w1 node-role.kubernetes.io/gpu=yes\\n", command.unless)
    # Another Node's labels do not stand in for this one's.
    assert not _guard_with(tmp_path, "m1 node-role.kubernetes.io/gpu=yes\\nw1 node-role.kubernetes.io/worker=\\n",
                           command.unless)