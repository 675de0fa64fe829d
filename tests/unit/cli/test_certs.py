"""`kbuild certs ...` through kbuild.cli.run: exit codes, output, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbuild.cli import run
from kbuild.inventory import load_cluster
from kbuild.pki.store import StateFiles

from tests.unit.pki.conftest import snapshot, write_inventory


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return write_inventory(tmp_path)


def test_generate_then_check(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["certs", "generate", "-i", str(inventory)]) == 0
    out = capsys.readouterr().out
    assert '[certs] Generating ca certificate authority' in out
    assert "[kubeconfig] Generating admin.conf kubeconfig" in out
    state = inventory.parent / "state"
    assert (state / "admin.conf").stat().st_mode & 0o777 == 0o600

    assert run(["certs", "generate", "-i", str(inventory)]) == 0
    out = capsys.readouterr().out
    assert "Generating" not in out and "0 changed, 30 reused" in out
    assert run(["certs", "generate", "-i", str(inventory), "-v"]) == 0
    assert "[certs] Using existing apiserver certificate and key" in capsys.readouterr().out

    assert run(["certs", "check", "-i", str(inventory)]) == 0
    out = capsys.readouterr().out
    assert "RESIDUAL TIME" in out and "kubelet-serving/w1" in out and "all 30 items are valid" in out


def test_check_fails_when_something_needs_attention(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["certs", "check", "-i", str(inventory)]) == 1
    err = capsys.readouterr().err
    assert "error: 30 of 30 PKI items need attention (missing)" in err and "kbuild certs generate" in err
    run(["certs", "generate", "-i", str(inventory)])
    (inventory.parent / "state" / "pki" / "scheduler.crt").unlink()
    capsys.readouterr()
    assert run(["certs", "check", "-i", str(inventory), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert [c["name"] for c in data["certificates"] if not c["ok"]] == ["scheduler", "scheduler.conf"]


def test_renew(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["certs", "generate", "-i", str(inventory)])
    capsys.readouterr()
    assert run(["certs", "renew", "-i", str(inventory), "apiserver", "kubelet-client/w1"]) == 0
    out = capsys.readouterr().out
    assert "[certs] Reissuing apiserver certificate and key (renewal requested)" in out
    assert "[kubeconfig] Reissuing kubelet.conf/w1 kubeconfig (embedded an older client certificate)" in out
    assert "3 changed" in out

    assert run(["certs", "renew", "-i", str(inventory), "--all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    actions = {o["name"]: o["action"] for o in data["outcomes"]}
    assert actions["ca"] == "reused" and actions["etcd-server/m3"] == "reissued" and actions["sa"] == "reused"


@pytest.mark.parametrize("args,message", [
    (["apiserverr"], "no certificate named 'apiserverr'"),
    (["ca"], "'ca' is a CA"),
    ([], "name the certificates to renew, or pass --all"),
    (["admin", "--all"], "name the certificates to renew, or pass --all"),
])
def test_renew_usage_errors(inventory: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                            message: str) -> None:
    run(["certs", "generate", "-i", str(inventory)])
    before = snapshot(inventory.parent / "state")
    capsys.readouterr()
    assert run(["certs", "renew", "-i", str(inventory), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert snapshot(inventory.parent / "state") == before


def test_corrupt_key_is_a_clean_error(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["certs", "generate", "-i", str(inventory)])
    key = inventory.parent / "state" / "pki" / "hosts" / "m2" / "etcd-peer.key"
    key.write_text("junk")
    before = snapshot(inventory.parent / "state")
    capsys.readouterr()
    assert run(["certs", "generate", "-i", str(inventory)]) == 2
    err = capsys.readouterr().err
    assert f"{key}: not a PEM private key" in err and "nothing was changed" in err and "hint:" in err
    assert "Traceback" not in err
    assert snapshot(inventory.parent / "state") == before


def test_force_new_ca_needs_yes_when_not_interactive(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["certs", "generate", "-i", str(inventory)])
    ca = StateFiles(inventory.parent / "state").cert("ca").read_bytes()
    capsys.readouterr()
    assert run(["certs", "generate", "-i", str(inventory), "--force-new-ca"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert StateFiles(inventory.parent / "state").cert("ca").read_bytes() == ca

    assert run(["certs", "generate", "-i", str(inventory), "--force-new-ca", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "[certs] previous PKI copied to" in out and "[certs] Replacing ca certificate authority" in out
    assert StateFiles(inventory.parent / "state").cert("ca").read_bytes() != ca


def test_check_mode_writes_nothing(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["certs", "generate", "-i", str(inventory), "--check"]) == 0
    out = capsys.readouterr().out
    assert "[certs] [check] would be created: ca certificate authority" in out and "30 would change" in out
    assert not (inventory.parent / "state").exists()


def test_state_dir_option(inventory: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    assert run(["certs", "generate", "-i", str(inventory), "--state-dir", str(elsewhere)]) == 0
    assert (elsewhere / "pki" / "ca.crt").exists()
    assert not (inventory.parent / "state").exists()
    assert load_cluster(inventory, state_dir=elsewhere).state_dir == elsewhere


def test_help_lists_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["certs", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("apiserver-kubelet-client", "etcd-healthcheck-client", "kubelet-serving", "kube-proxy.conf"):
        assert name in out
