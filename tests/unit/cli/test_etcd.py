"""`kbuild etcd ...` through kbuild.cli.run: listing, and the restore's refusals that need no host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbuild.cli import run
from kbuild.plays import etcd_restore
from kbuild.plays.etcd_ops import snapfile
from kbuild.plays.etcd_ops.restore_plan import build_plan

from tests.unit.plays.etcd_fakes import cluster, write_snapshot
from tests.unit.plays.test_etcd_restore_plan import metadata, probes


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    cluster(tmp_path)
    return tmp_path / "inventory.yaml"


def test_list_shows_snapshots_newest_first(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backups = inventory.parent / ".kbuild" / "demo" / "backups"
    backups.mkdir(parents=True)
    for i, reason in enumerate(["manual", "before restore"], start=1):
        path = write_snapshot(backups / f"etcd-demo-2026010{i}T000000000Z-x.db")
        snapfile.write_metadata(path, {"format": snapfile.FORMAT, "cluster": "demo", "revision": i * 10,
                                       "time": f"2026-01-0{i}T00:00:00.000Z", "reason": reason})
    assert run(["etcd", "snapshot", "list", "-i", str(inventory), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["metadata"]["revision"] for s in listed] == [20, 10]
    assert run(["etcd", "snapshot", "list", "-i", str(inventory)]) == 0
    out = capsys.readouterr().out
    assert out.index("before") < out.index("manual")


def test_restore_refuses_a_bad_file_before_contacting_any_host(inventory: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "half.db"
    bad.write_bytes(write_snapshot(tmp_path / "s.db").read_bytes()[:5000])
    # The inventory's hosts do not exist: any connection attempt would fail differently (exit 4).
    assert run(["etcd", "snapshot", "restore", "-i", str(inventory), str(bad), "--yes"]) == 2
    assert "incomplete etcd snapshot" in capsys.readouterr().err


def test_restore_without_a_terminal_needs_yes(inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def fake_restore(ctx, path, *, confirm):  # noqa: ANN001, ANN202 - the real plan, shown; no host
        c = ctx.cluster
        check = snapfile.verify_file(path)
        plan = build_plan(c, path, check, metadata(sha256=check.sha256), probes(c), "20260101T000000Z")
        confirm(plan)
        raise AssertionError("confirm must refuse without a terminal")

    monkeypatch.setattr(etcd_restore, "restore", fake_restore)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    snap = write_snapshot(tmp_path / "s.db")
    assert run(["etcd", "snapshot", "restore", "-i", str(inventory), str(snap)]) == 2
    err = capsys.readouterr().err
    assert "restore plan for cluster demo" in err and "stop etcd on m1, m2, m3" in err
    assert "needs confirmation" in err and "--yes" in err and "nothing was changed" in err
