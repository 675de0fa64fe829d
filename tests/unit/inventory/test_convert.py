"""`inventory convert` and `inventory check --json` write inventories that load back to the same cluster."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kbuild.cli import run
from kbuild.errors import KbuildError
from kbuild.inventory import load_cluster
from tests.unit.inventory.oracle import cases, entry

K0SCTL = sorted((Path(__file__).parent / "k0sctl_examples").glob("*.yaml"))


def loadable_sources() -> list[Path]:
    found = []
    for source in [entry(c) for c in cases()] + K0SCTL:
        try:
            load_cluster(source)
        except KbuildError:
            continue  # corpus entries made for Ansible's semantics, not complete clusters
        found.append(source)
    return found


SOURCES = loadable_sources()


def same_file(path):
    return os.path.normpath(os.path.abspath(path)) if path else None


def same(a, b) -> bool:
    def key(h):
        s = h.ssh
        bastion = s.bastion.model_copy(update={"key_file": same_file(s.bastion.key_file)}) if s.bastion else None
        return (h.name, str(h.address), h.role_names, s.host, s.user, s.port, same_file(s.key_file), s.become,
                bastion, h.labels, h.taints, h.extra_flags)
    return [key(h) for h in a.hosts] == [key(h) for h in b.hosts] and a.settings == b.settings


def test_enough_sources_are_round_tripped():
    assert len(SOURCES) >= 15


@pytest.mark.parametrize("source", SOURCES, ids=[f"{s.parent.name}/{s.name}" for s in SOURCES])
def test_convert_then_load_gives_the_same_cluster(tmp_path: Path, source: Path, capsys):
    out = tmp_path / "elsewhere" / "kbuild.yaml"
    out.parent.mkdir()
    assert run(["inventory", "convert", str(source), "-o", str(out)]) == 0, capsys.readouterr().err
    assert same(load_cluster(out), load_cluster(source))
    assert "# " in out.read_text()  # origins are written down


@pytest.mark.parametrize("source", SOURCES, ids=[f"{s.parent.name}/{s.name}" for s in SOURCES])
def test_check_json_loads_back_as_the_same_cluster(tmp_path: Path, source: Path, capsys):
    assert run(["inventory", "check", "-i", str(source), "--json"]) == 0
    saved = tmp_path / "check.json"
    saved.write_text(capsys.readouterr().out)
    json.loads(saved.read_text())
    again = load_cluster(saved)
    assert same(again, load_cluster(source)) and again.state_dir == load_cluster(source).state_dir


def test_convert_comments_origins_and_dropped_settings(tmp_path: Path):
    source = Path(__file__).parent / "ansible_corpus" / "25-kubespray-mycluster" / "inventory.ini"
    out = tmp_path / "kbuild.yaml"
    assert run(["inventory", "convert", str(source), "-o", str(out)]) == 0
    text = out.read_text()
    assert "address: 10.0.2.171  # ip, inventory.ini:2" in text
    assert "user: ubuntu  # ansible_user, group_vars/all/all.yml:6" in text
    assert "#   group_vars/all/all.yml:3: bin_dir: /usr/local/bin: kbuild uses its own fixed paths" in text


def test_convert_refuses_to_overwrite_without_force(tmp_path: Path, capsys):
    source = Path(__file__).parent / "k0sctl_examples" / "basic.yaml"
    out = tmp_path / "kbuild.yaml"
    out.write_text("mine\n")
    assert run(["inventory", "convert", str(source), "-o", str(out)]) == 2
    assert "exists; not overwritten" in capsys.readouterr().err and out.read_text() == "mine\n"
    assert run(["inventory", "convert", str(source), "-o", str(out), "--force"]) == 0
    assert load_cluster(out).name == "k0s-cluster"
    assert [p.name for p in tmp_path.iterdir()] == ["kbuild.yaml"]  # no temporary file left behind


def test_convert_refuses_a_bad_source_and_writes_nothing(tmp_path: Path, capsys):
    source = tmp_path / "hosts"
    source.write_text("[kube_control_plane]\ncp1 ip=10.0.0.999\n[etcd]\ncp1\n")
    assert run(["inventory", "convert", str(source), "-o", str(tmp_path / "out.yaml")]) == 2
    assert "hosts:2: ip (hosts.cp1.address)" in capsys.readouterr().err and not (tmp_path / "out.yaml").exists()


def test_convert_keeps_relative_key_files_pointing_at_the_same_file(tmp_path: Path):
    source = Path(__file__).parent / "ansible_corpus" / "07-group-vars-dir" / "hosts.ini"
    out = tmp_path / "deep" / "kbuild.yaml"
    out.parent.mkdir()
    assert run(["inventory", "convert", str(source), "-o", str(out)]) == 0
    converted, original = load_cluster(out).host("cp1"), load_cluster(source).host("cp1")
    assert same_file(converted.ssh.key_file) == same_file(original.ssh.key_file)
