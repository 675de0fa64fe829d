"""`kbuild render -i INV -o DIR`: the tree it writes, with and without the PKI."""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest
import yaml

from kbuild.cli import render_cmd, run
from kbuild.errors import KbuildError
from kbuild.inventory import load_cluster
from kbuild.pki import host_files as pki_host_files
from kbuild.render import host_files

from tests.unit.render.conftest import HOSTS, MakeCluster, make_cluster  # noqa: F401 - make_cluster is a fixture


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_render_writes_every_host_file(make_cluster: MakeCluster, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(render_cmd, "_pki_module", lambda: None)
    cluster = make_cluster()
    out = tmp_path / "out"
    assert run(["render", "-i", str(cluster.inventory_path), "-o", str(out)]) == 0
    expected = {f"{h.name}{f.path}": f for h in cluster.hosts for f in host_files(cluster, h)}
    assert _tree(out) == set(expected)
    for rel, f in expected.items():
        assert (out / rel).read_text() == f.content
        assert _mode(out / rel) == f.mode
    assert "w1/etc/systemd/system/kubelet.service" in expected
    assert "m1/etc/systemd/system/etcd.service" in expected
    printed = capsys.readouterr().out
    assert "templates only" in printed and "no PKI module" in printed


def test_render_includes_pki_files_secrets_0600(make_cluster: MakeCluster, tmp_path: Path, monkeypatch) -> None:
    def pki_host_files(cluster, host):
        return [SimpleNamespace(path=PurePosixPath("/etc/kubernetes/pki/ca.crt"), content=b"CERT", mode=0o644,
                                secret=False, services=()),
                SimpleNamespace(path=PurePosixPath(f"/etc/kubernetes/{host.name}.key"), content=b"KEY", mode=0o640,
                                secret=True, services=())]

    monkeypatch.setattr(render_cmd, "_pki_module", lambda: SimpleNamespace(host_files=pki_host_files))
    cluster = make_cluster()
    out = tmp_path / "out"
    assert run(["render", "-i", str(cluster.inventory_path), "-o", str(out)]) == 0
    for host in cluster.hosts:
        assert (out / host.name / "etc/kubernetes/pki/ca.crt").read_bytes() == b"CERT"
        key = out / host.name / f"etc/kubernetes/{host.name}.key"
        assert key.read_bytes() == b"KEY" and _mode(key) == 0o600


def test_render_leaves_pki_out_when_it_is_not_generated(make_cluster: MakeCluster, tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    calls: list[str] = []

    def pki_host_files(cluster, host):
        calls.append(host.name)
        if host.name == "w1":
            raise KbuildError("w1: the PKI is not generated for this host yet")
        return [SimpleNamespace(path=PurePosixPath("/etc/kubernetes/pki/ca.crt"), content=b"C", mode=0o644,
                                secret=False, services=())]

    monkeypatch.setattr(render_cmd, "_pki_module", lambda: SimpleNamespace(host_files=pki_host_files))
    cluster = make_cluster()
    out = tmp_path / "out"
    assert run(["render", "-i", str(cluster.inventory_path), "-o", str(out)]) == 0
    assert not list(out.rglob("ca.crt"))  # all hosts or none: never a partial PKI
    assert "PKI files left out: w1: the PKI is not generated" in capsys.readouterr().out


def test_render_with_the_real_pki(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"cluster": {"name": "demo"}, "pki": {"key_algorithm": "ecdsa-p256"},
                                   "hosts": HOSTS}))
    assert run(["certs", "generate", "-i", str(inv)]) == 0
    out = tmp_path / "out"
    assert run(["render", "-i", str(inv), "-o", str(out)]) == 0
    cluster = load_cluster(inv)
    for host in cluster.hosts:
        for f in pki_host_files(cluster, host):
            written = out / host.name / f.path.relative_to("/")
            assert written.read_bytes() == f.content
            if f.secret:
                assert _mode(written) == 0o600


@pytest.mark.parametrize("damage", ["corrupt key", "foreign ca"])
def test_render_verifies_the_pki_before_copying_it(tmp_path: Path, capsys, damage: str) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"cluster": {"name": "demo"}, "pki": {"key_algorithm": "ecdsa-p256"},
                                   "hosts": HOSTS}))
    assert run(["certs", "generate", "-i", str(inv)]) == 0
    pki = tmp_path / ".kbuild" / "demo" / "pki"
    if damage == "corrupt key":
        (pki / "apiserver.key").write_text("not a key")
        expected = "apiserver.key"
    else:
        other = tmp_path / "other"
        assert run(["certs", "generate", "-i", str(inv), "--state-dir", str(other)]) == 0
        for name in ("ca.crt", "ca.key"):
            (pki / name).write_bytes((other / "pki" / name).read_bytes())
        expected = "is not the CA this cluster was set up with"
    out = tmp_path / "out"
    assert run(["render", "-i", str(inv), "-o", str(out)]) == 2
    assert expected in capsys.readouterr().err
    assert not list(out.rglob("*.key"))


def test_render_needs_an_inventory(tmp_path: Path, capsys) -> None:
    assert run(["render", "-i", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "out")]) == 2
    assert "inventory file not found" in capsys.readouterr().err
