"""Fixtures for unit tests: clusters from inline inventory text."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

from kbuild.inventory import Cluster, load_cluster


@pytest.fixture
def cluster_from(tmp_path: Path) -> Callable[[str], Cluster]:
    """cluster_from(yaml_text) writes an inventory into the test's directory and loads it."""

    def load(text: str) -> Cluster:
        path = tmp_path / "inventory.yaml"
        path.write_text(textwrap.dedent(text))
        return load_cluster(path)

    return load


@pytest.fixture(autouse=True)
def _no_user_artifact_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default artifact cache (~/.cache/kbuild/artifacts) is this machine's: a unit test never reads it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def one_master_two_workers(cluster_from: Callable[[str], Cluster]) -> Cluster:
    """m1 (etcd and control plane), w1 and w2 (workers): the smallest cluster with a host of each kind to spare."""
    return cluster_from("""\
        cluster: {name: t}
        hosts:
          m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
          w1: {address: 198.18.0.11, roles: [worker]}
          w2: {address: 198.18.0.12, roles: [worker]}
        """)
