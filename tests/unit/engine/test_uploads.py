"""Uploads are atomic: a file is replaced by rename, never rewritten in place, and a cut upload places nothing.

Runs the real generated shell on a local fake host (tests/unit/engine/conftest.py).
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from kbuild.engine.resources import File
from kbuild.engine.runner import HostStatus, Plan
from tests.unit.engine.conftest import LocalConnection

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def conf(host, content: str, mode: int = 0o640) -> File:
    return File(host.path("etc/app/app.conf"), content, mode=mode, owner=ME, group=MY_GROUP)


def test_a_changed_file_is_replaced_by_rename_with_its_mode_and_owner(host):
    runner, _, _ = host.runner()
    runner.apply("d", {"h1": Plan([conf(host, "old\n" * 1000)])})
    path = Path(host.path("etc/app/app.conf"))
    before = path.stat()
    with path.open() as reader:  # a reader of the old file sees it whole, never a mix
        out = runner.apply("d", {"h1": Plan([conf(host, "new\n" * 1000)])})["h1"]
        assert out.status is HostStatus.CHANGED
        assert reader.read() == "old\n" * 1000
    after = path.stat()
    assert path.read_text() == "new\n" * 1000
    assert after.st_ino != before.st_ino  # a new file renamed into place
    assert (after.st_mode & 0o777, after.st_uid, after.st_gid) == (0o640, os.getuid(), os.getgid())
    assert sorted(p.name for p in path.parent.iterdir()) == ["app.conf"]  # no temporary file left


def test_an_upload_cut_short_places_nothing(host, monkeypatch: pytest.MonkeyPatch):
    runner, _, _ = host.runner()
    runner.apply("d", {"h1": Plan([conf(host, "old\n")])})
    real_run = LocalConnection.run

    def cut_upload(self, command, *, stdin=None, **kwargs):
        if stdin is not None and "tar -xf" in command:  # the apply: its stream stops halfway
            data = stdin if isinstance(stdin, bytes) else stdin.read()
            stdin = data[: len(data) // 2]
        return real_run(self, command, stdin=stdin, **kwargs)

    monkeypatch.setattr(LocalConnection, "run", cut_upload)
    runner, _, _ = host.runner()
    out = runner.apply("d", {"h1": Plan([conf(host, "new\n" * 50_000), File(host.path("etc/app/extra"), "x\n")])})["h1"]
    assert out.status is HostStatus.FAILED
    path = Path(host.path("etc/app/app.conf"))
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["app.conf"]  # neither the new file nor a temporary
