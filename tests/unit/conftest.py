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
