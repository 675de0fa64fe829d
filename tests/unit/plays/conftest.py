"""Fixtures for the play tests: clusters whose hosts' inputs are fetched and verified from a fake mirror."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kbuild import pki
from kbuild.inventory import Cluster
from kbuild.plays.desired import HostInputs, prepare_inputs
from tests.unit.artifacts.helpers import write_cluster_mirror

INVENTORY = """\
cluster: {{name: t}}
pki: {{key_algorithm: ecdsa-p256}}
artifacts: {{mirror: mirror, cache_dir: cache{images}}}
hosts:
"""


@pytest.fixture
def prepared(cluster_from: Callable[[str], Cluster], tmp_path: Path) -> Callable[..., tuple[Cluster, HostInputs]]:
    """prepared(hosts, images="") -> (cluster, inputs of its first host), as the artifacts phase makes them
    (prepare_inputs) from a fake mirror holding every binary and image archive the cluster needs."""

    def prepare(hosts: str, images: str = "") -> tuple[Cluster, HostInputs]:
        cluster = cluster_from(INVENTORY.format(images=f", images: {images}" if images else "") + hosts)
        pki.ensure(cluster)
        write_cluster_mirror(tmp_path / "mirror", cluster)
        host = cluster.hosts[0]
        return cluster, prepare_inputs(cluster, [host])[host.name]

    return prepare
