"""The shell of the restore's data-directory steps, run for real with sh on temporary directories."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kbuild.plays.etcd_ops.restore_plan import MemberPlan
from kbuild.plays.etcd_restore import (
    move_aside_command,
    restore_command,
    rollback_command,
    start_command,
    stop_command,
)


def member(tmp_path: Path, restore: str = "mkdir -p \"$D/member\" && echo new > \"$D/member/db\"") -> MemberPlan:
    data = str(tmp_path / "etcd")
    return MemberPlan("m1", "https://198.18.0.11:2380", data, True, f"{data}.before-restore-X",
                      f"{data}.restore-X.db", restore.replace("$D", data))


def sh(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)


def old_data(tmp_path: Path) -> Path:
    (tmp_path / "etcd" / "member").mkdir(parents=True)
    (tmp_path / "etcd" / "member" / "db").write_text("old")
    return tmp_path / "etcd"


def test_move_aside_then_restore_then_rollback_brings_the_old_data_back(tmp_path: Path) -> None:
    data = old_data(tmp_path)
    m = member(tmp_path)
    assert sh(move_aside_command(m)).stdout.strip() == "moved"
    assert not data.exists() and (tmp_path / "etcd.before-restore-X" / "member" / "db").read_text() == "old"
    result = sh(restore_command(m))
    assert result.returncode == 0, result.stderr
    assert (data / "member" / "db").read_text() == "new\n" and oct(data.stat().st_mode & 0o777) == "0o700"
    result = sh(rollback_command(m, restored=True, moved=True))
    assert result.returncode == 0, result.stderr
    assert (data / "member" / "db").read_text() == "old" and not (tmp_path / "etcd.before-restore-X").exists()


def test_move_aside_never_overwrites_an_earlier_copy(tmp_path: Path) -> None:
    old_data(tmp_path)
    (tmp_path / "etcd.before-restore-X").mkdir()
    result = sh(move_aside_command(member(tmp_path)))
    assert result.returncode != 0 and "already exists" in result.stderr
    assert (tmp_path / "etcd" / "member" / "db").read_text() == "old"


def test_restore_refuses_a_data_dir_that_was_not_moved_aside(tmp_path: Path) -> None:
    old_data(tmp_path)
    result = sh(restore_command(member(tmp_path)))
    assert result.returncode != 0 and "was not moved aside" in result.stderr
    assert (tmp_path / "etcd" / "member" / "db").read_text() == "old"


def test_a_failed_restore_reports_the_tools_output_and_rollback_removes_the_partial_copy(tmp_path: Path) -> None:
    old_data(tmp_path)
    m = member(tmp_path, restore="mkdir -p \"$D/member\" && echo 'no space left on device' && false")
    sh(move_aside_command(m))
    result = sh(restore_command(m))
    assert result.returncode != 0 and "no space left on device" in result.stderr
    assert sh(rollback_command(m, restored=True, moved=True)).returncode == 0
    assert (tmp_path / "etcd" / "member" / "db").read_text() == "old"


def test_rollback_on_a_member_that_was_never_touched_does_nothing(tmp_path: Path) -> None:
    old_data(tmp_path)
    assert sh(rollback_command(member(tmp_path), restored=False, moved=False)).stdout.strip() == "rolled-back"
    assert (tmp_path / "etcd" / "member" / "db").read_text() == "old"


def test_service_commands_start_without_blocking_and_check_stopped() -> None:
    assert "systemctl start --no-block etcd" in start_command(("etcd",))
    assert "is-active" in stop_command(("etcd",)) and "not-found" in stop_command(("etcd",))
