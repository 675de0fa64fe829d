"""Bootstrap's check mode and the PKI: decided by ensure(dry_run=True), held in memory, nothing written to disk."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from kbuild import pki
from kbuild.inventory import Cluster
from kbuild.pki.certlist import remote_path
from kbuild.plays import bootstrap
from kbuild.plays.desired import INPUTS, PKI
from kbuild.plays.phases import Context
from tests.unit.artifacts.helpers import write_cluster_mirror
from tests.unit.fakes import FakeSession

INVENTORY = """\
cluster: {{name: t}}
pki: {{key_algorithm: ecdsa-p256}}
artifacts: {{mirror: mirror, cache_dir: cache}}
state_dir: state
hosts:
  m1: {{address: 198.18.0.10, roles: [etcd, control-plane]}}
  w1: {{address: 198.18.0.11, roles: [worker]}}
{more}"""


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under root with its mode and content (directories with empty content)."""
    return {str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def cluster_with(cluster_from: Callable[[str], Cluster], tmp_path: Path) -> Callable[[str], Cluster]:
    def make(more: str = "") -> Cluster:
        cluster = cluster_from(INVENTORY.format(more=more))
        if not (tmp_path / "mirror").exists():  # once: every cluster here needs the same binaries
            write_cluster_mirror(tmp_path / "mirror", cluster)
        return cluster
    return make


def check_run(cluster: Cluster) -> tuple[Context, FakeSession]:
    """The pki and artifacts phases of `kbuild bootstrap --check`, as the CLI runs them (no host is asked)."""
    session = FakeSession(cluster.hosts, check=True)
    ctx = Context(cluster, session, check=True)
    bootstrap.phase_pki(ctx)
    bootstrap.phase_artifacts(ctx)
    assert session.commands == []
    return ctx, session


def test_check_mode_on_a_fresh_state_dir_writes_nothing_and_says_what_would_be_created(
        cluster_with, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = cluster_with()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # no throwaway copy of the state dir either
    ctx, session = check_run(cluster)

    assert not cluster.state_dir.exists()
    assert not list(scratch.iterdir())
    said = next(m for m in session.messages if "would write" in m)
    assert said.startswith("0 reused, ") and "ca, etcd-ca, front-proxy-ca" in said
    assert ctx.state.get(PKI).dry_run

    # The plans carry the PKI the run would create, whole and consistent, though no file of it exists.
    m1 = {f.path: f for f in ctx.state.get(INPUTS)["m1"].pki}
    w1 = {f.path: f for f in ctx.state.get(INPUTS)["w1"].pki}
    ca = x509.load_pem_x509_certificate(m1[remote_path("ca.crt")].content)
    apiserver = x509.load_pem_x509_certificate(m1[remote_path("apiserver.crt")].content)
    apiserver.verify_directly_issued_by(ca)
    assert w1[remote_path("ca.crt")].content == m1[remote_path("ca.crt")].content
    assert m1[remote_path("ca.key")].mode == 0o600 and m1[remote_path("ca.key")].secret
    assert remote_path("sa.key") in m1 and remote_path("encryption-config") in m1


def test_check_mode_on_an_existing_state_dir_leaves_it_byte_identical(cluster_with) -> None:
    pki.ensure(cluster_with())
    before = snapshot(cluster_with().state_dir)
    grown = cluster_with("  w2: {address: 198.18.0.12, roles: [worker]}\n")  # a new node: new certificates

    ctx, session = check_run(grown)

    assert snapshot(grown.state_dir) == before
    said = next(m for m in session.messages if "would write" in m)
    assert "kubelet-client/w2" in said and "kubelet.conf/w2" in said
    w2 = {f.path: f for f in ctx.state.get(INPUTS)["w2"].pki}
    serving = x509.load_pem_x509_certificate(w2[remote_path("kubelet-serving.crt")].content)
    assert serving.subject.rfc4514_string() == "CN=system:node:w2,O=system:nodes"
    # What exists is reused as it is: m1 gets the files on disk.
    m1 = {f.path: f for f in ctx.state.get(INPUTS)["m1"].pki}
    on_disk = (grown.state_dir / "pki" / "apiserver.crt").read_bytes()
    assert hashlib.sha256(m1[remote_path("apiserver.crt")].content).digest() == hashlib.sha256(on_disk).digest()


def test_a_real_run_writes_what_check_mode_showed_it_would(cluster_with) -> None:
    cluster = cluster_with()
    session = FakeSession(cluster.hosts)
    ctx = Context(cluster, session)
    bootstrap.phase_pki(ctx)
    bootstrap.phase_artifacts(ctx)
    m1 = {f.path: f for f in ctx.state.get(INPUTS)["m1"].pki}
    assert m1[remote_path("apiserver.crt")].content == (cluster.state_dir / "pki" / "apiserver.crt").read_bytes()
    assert any(m.startswith("0 reused, ") and " wrote: " in m for m in session.messages)
