"""pytest fixtures for the test mirror; load with `pytest_plugins = ["tests.mirror.plugin"]` in tests/conftest.py.

    built_mirror        (session) the built mirror (tests.mirror.builder.Mirror), built on demand
    kubectl             (session) path of the mirror's kubectl (kbuild's default Kubernetes release)
    etcdctl             (session) path of the mirror's etcdctl (kbuild's default etcd release)
    mirror_server       (session) a MirrorServer serving it on 127.0.0.1; .url, .requests, .reset()
    mirror_copy         (function) a MirrorCopy in tmp_path: symlinks to the built files, safe to tamper with

CI builds the mirror once beforehand (`python -m tests.mirror build`); a session that finds it
missing builds it itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mirror.builder import Mirror, ensure_mirror
from tests.mirror.server import MirrorServer


class MirrorCopy:
    """A private mirror: every file a symlink to the built one, so changing a file never touches the original."""

    def __init__(self, source: Path, root: Path) -> None:
        self.root = root
        for path in source.rglob("*"):
            if path.is_file():
                target = root / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(path, target)

    def replace(self, relative: str, data: bytes) -> None:
        path = self.root / relative
        path.unlink()  # drop the symlink first: writing through it would damage the shared mirror
        path.write_bytes(data)

    def remove(self, relative: str) -> None:
        (self.root / relative).unlink()

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()


@pytest.fixture(scope="session")
def built_mirror() -> Mirror:
    return ensure_mirror()


@pytest.fixture(scope="session")
def kubectl(built_mirror: Mirror) -> Path:
    return built_mirror.tool("kubectl")


@pytest.fixture(scope="session")
def etcdctl(built_mirror: Mirror) -> Path:
    return built_mirror.tool("etcdctl")


@pytest.fixture(scope="session")
def mirror_server(built_mirror: Mirror) -> Iterator[MirrorServer]:
    with MirrorServer(built_mirror.root) as server:
        yield server


@pytest.fixture
def mirror_copy(built_mirror: Mirror, tmp_path: Path) -> MirrorCopy:
    return MirrorCopy(built_mirror.root, tmp_path / "mirror-copy")
