"""The top-level CLI: help, version, completion, `inventory check`, and one way of refusing a bad inventory."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from kbuild import __version__
from kbuild.cli import app, run

GROUPS = ["bootstrap", "preflight", "status", "reset", "kubeconfig", "render", "ping", "exec", "certs",
          "artifacts", "inventory", "lab", "etcd", "upgrade"]

GOOD = """\
cluster:
  name: lab
hosts:
  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
  w1: {address: 198.18.0.11, roles: [worker]}
"""
BAD = GOOD.replace("198.18.0.11", "198.18.0.10")  # two hosts, one address
# What some commands need besides -i to get as far as reading the inventory.
EXTRA_ARGS = {("certs", "renew"): ["--all"]}


def commands_taking_an_inventory() -> Iterator[tuple[list[str], object]]:
    def walk(command: object, path: list[str]) -> Iterator[tuple[list[str], object]]:
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            for name, sub in subcommands.items():
                yield from walk(sub, [*path, name])
        elif any("-i" in getattr(p, "opts", []) for p in command.params):  # type: ignore[attr-defined]
            yield path, command

    yield from walk(typer.main.get_command(app), [])


def test_help_lists_every_command_group_and_completion(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == GROUPS
    assert "--install-completion" in out and "--show-completion" in out


def test_version_through_the_console_script() -> None:
    kbuild = Path(sys.executable).parent / "kbuild"
    result = subprocess.run([str(kbuild), "--version"], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, f"kbuild {__version__}")


def test_inventory_check_prints_the_resolved_hosts_and_settings(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(GOOD)
    assert run(["inventory", "check", "-i", str(inventory)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as the terminal width wrapped it
    assert "is valid: cluster 'lab', 2 hosts" in out
    assert "etcd, control-plane" in out and "pod_cidr" in out and "10.200.0.0/16" in out  # a default, resolved
    assert run(["inventory", "check", "-i", str(inventory), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(h["name"], h["address"], h["roles"]) for h in data["hosts"]] == [
        ("m1", "198.18.0.10", ["etcd", "control-plane"]), ("w1", "198.18.0.11", ["worker"])]
    assert data["cluster"]["pod_cidr"] == "10.200.0.0/16"


def test_every_command_taking_an_inventory_refuses_a_bad_one_the_same_way(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(BAD)
    commands = list(commands_taking_an_inventory())
    assert len(commands) >= 20  # every group that reads an inventory is walked, not just the top level
    for path, command in commands:
        args = [*path, "-i", str(inventory), *EXTRA_ARGS.get(tuple(path), [])]
        for param in command.params:  # type: ignore[attr-defined]
            if param.required and param.opts != ["-i", "--inventory"]:
                args += ["x"] if type(param).__name__.endswith("Argument") else [param.opts[0], str(tmp_path / "x")]
        code = run(args)
        err = capsys.readouterr().err
        assert code == 2, (path, err)
        assert f"{inventory}:5: hosts.w1.address: address 198.18.0.10 is already used by host 'm1'" in err, (path, err)
        assert "Traceback" not in err and "internal error" not in err, (path, err)
    assert not (tmp_path / "x").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yaml"]
