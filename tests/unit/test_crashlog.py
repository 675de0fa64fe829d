"""The crash log: a new private file per crash in the user's state directory, never through a planted link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kbuild import cli
from kbuild.crashlog import write_crash_log


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "kbuild" / "crashes"


def test_each_crash_gets_its_own_private_file(state_home: Path) -> None:
    first, second = write_crash_log("one"), write_crash_log("two")
    assert first != second and first.parent == second.parent == state_home
    assert stat.S_IMODE(first.stat().st_mode) == 0o600 and first.read_text() == "one"
    assert stat.S_IMODE(state_home.stat().st_mode) == 0o700


def test_a_directory_others_can_write_is_not_used(state_home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    state_home.mkdir(parents=True)
    state_home.chmod(0o777)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    path = write_crash_log("x")
    assert path.parent == tmp_path / "tmp" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_internal_error_is_logged_there_and_never_through_the_old_shared_path(
        state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    os.symlink(victim, tmp_path / "kbuild-crash.log")  # what a local attacker would plant

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_invoke", boom)  # the command itself, as run() calls it
    assert cli.run(["status"]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and str(state_home) in err
    assert victim.read_text() == "keep"
    logs = list(state_home.iterdir())
    assert len(logs) == 1 and "RuntimeError: boom" in logs[0].read_text()
