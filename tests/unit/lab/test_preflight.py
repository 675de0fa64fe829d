"""Hosts that cannot run a lab get one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import pytest

from kbuild.cli import run
from kbuild.errors import ExitCode
from kbuild.lab import preflight
from kbuild.lab.errors import LabUnavailable
from kbuild.lab.preflight import check_host


def found(tool: str) -> str:
    return f"/usr/bin/{tool}"


def test_a_capable_host_passes():
    asked: list[str] = []
    check_host(["systemd-nspawn", "ip"], platform="linux", euid=0, which=lambda tool: asked.append(tool) or found(tool))
    assert asked == ["systemd-nspawn", "ip"]  # every tool was looked for, and none was missing


@pytest.mark.parametrize(("platform", "euid", "missing", "message"), [
    ("darwin", 0, set(), "kbuild lab needs Linux (systemd-nspawn machines); this host runs darwin"),
    ("linux", 1000, set(), "kbuild lab needs root (it mounts overlays, creates a bridge and boots systemd-nspawn "
                           "machines); run it with sudo"),
    ("linux", 0, {"systemd-nspawn"}, "kbuild lab needs systemd-nspawn, not found on PATH; install it with: "
                                     "apt-get install debootstrap systemd-container"),
    ("linux", 0, {"systemd-nspawn", "debootstrap"}, "kbuild lab needs systemd-nspawn and debootstrap, not found "
                                                    "on PATH; install them with: apt-get install debootstrap "
                                                    "systemd-container"),
])
def test_what_is_missing_is_named(platform, euid, missing, message):
    with pytest.raises(LabUnavailable) as caught:
        check_host(["systemd-nspawn", "debootstrap", "ip"], platform=platform, euid=euid,
                   which=lambda tool: None if tool in missing else found(tool))
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code is ExitCode.BAD_INPUT


@pytest.mark.parametrize("argv", [
    ["lab", "up"], ["lab", "status"], ["lab", "down"], ["lab", "image"], ["lab", "stop", "worker-1"],
    ["lab", "start", "worker-1"], ["lab", "exec", "worker-1", "true"],
])
def test_cli_says_root_is_needed(monkeypatch, capsys, argv):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    assert run(argv) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: kbuild lab needs root (it mounts overlays, creates a bridge and "
                                        "boots systemd-nspawn machines); run it with sudo"]


def test_cli_rejects_a_bad_shape_before_touching_anything(capsys):
    assert run(["lab", "up", "--masters", "0"]) == ExitCode.BAD_INPUT
    assert "--masters must be at least 1" in capsys.readouterr().err
