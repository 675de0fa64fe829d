"""The CLI contract, walked over every command registered in the Typer app (a new command is covered, or this
fails until it is placed in one of the classes below): -h, -y, --json results and errors, the README's exit codes.

Hosts are real sockets on loopback: a port that was just closed refuses the connection at once, so every
command that reaches hosts runs its real path to "unreachable" in milliseconds.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from kbuild.cli import app, run
from kbuild.errors import ExitCode
from kbuild.plays import preflight as preflight_play
from tests.unit.artifacts.helpers import make_cluster, write_cluster_mirror
from tests.unit.lab.test_vagrant import VIRTUALBOX
from tests.unit.plays.etcd_fakes import write_snapshot

README = Path(__file__).parents[3] / "README.md"

# Commands whose output is another program's (etcdctl, a command in a lab machine): no JSON of kbuild's own.
PASSTHROUGH = {("etcd", "ctl"), ("lab", "exec")}
# Commands that need root, systemd-nspawn and a lab on this machine: walked for -h and bad input only.
LAB_MACHINES = {("lab", "image"), ("lab", "up"), ("lab", "status"), ("lab", "stop"), ("lab", "start"),
                ("lab", "down")}
# Commands that reach hosts, with what they need besides -i to get there.
REACH_HOSTS = {
    ("bootstrap",): [], ("preflight",): [], ("status",): [], ("reset",): ["--yes"], ("ping",): [],
    ("exec",): ["--", "true"], ("etcd", "status"): [], ("etcd", "snapshot", "save"): [],
    ("etcd", "snapshot", "fetch"): [], ("etcd", "snapshot", "restore"): ["{snapshot}", "--yes"],
    ("etcd", "ctl"): ["--", "endpoint", "health"], ("upgrade", "plan"): [], ("upgrade", "apply"): ["--yes"],
}
# Commands that work on this machine alone, with the arguments of a run that succeeds.
LOCAL = {
    ("inventory", "check"): ["-i", "{inv}"],
    ("inventory", "convert"): ["{ansible}", "-o", "{tmp}/converted.yaml"],
    ("certs", "generate"): ["-i", "{inv}"],
    ("certs", "renew"): ["-i", "{inv}", "--all"],
    ("certs", "check"): ["-i", "{inv}"],
    ("certs", "check-expiration"): ["-i", "{inv}"],
    ("kubeconfig",): ["-i", "{inv}"],
    ("render",): ["-i", "{inv}", "-o", "{tmp}/rendered"],
    ("reset",): ["-i", "{inv}"],  # without --yes: the plan, no host contacted
    ("artifacts", "list"): ["-i", "{inv}"],
    ("artifacts", "fetch"): ["-i", "{inv}"],
    ("artifacts", "bundle"): ["-i", "{inv}", "-o", "{tmp}/bundle.tar"],
    ("artifacts", "import"): ["{tmp}/bundle.tar", "-i", "{inv}"],
    ("etcd", "snapshot", "list"): ["-i", "{inv}"],
    ("lab", "vagrant-inventory"): ["--from", "{ssh_config}"],
}


def walk(command: object = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every group and command of the app, the root first, as (path, click command)."""
    command = command if command is not None else typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, (*path, name))


def leaves() -> list[tuple[tuple[str, ...], object]]:
    return [(path, c) for path, c in walk() if not hasattr(c, "commands")]


def options(command: object) -> set[str]:
    return {o for p in command.params for o in p.opts}  # type: ignore[attr-defined]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An inventory whose hosts refuse SSH on loopback, its PKI made, a fake mirror for its binaries."""
    port = closed_port()
    ssh = f"ssh: {{host: 127.0.0.1, port: {port}, retries: 0, connect_timeout: 2}}"
    cluster = make_cluster(tmp_path, artifacts="mirror: mirror\ncache_dir: cache\n", hosts=(
        f"  cp1: {{address: 198.18.0.10, roles: [etcd, control-plane], {ssh}}}\n"
        f"  w1: {{address: 198.18.0.11, roles: [worker], {ssh}}}\n"))
    write_cluster_mirror(tmp_path / "mirror", cluster)
    inv = str(cluster.inventory_path)
    assert run(["certs", "generate", "-i", inv]) == 0
    (tmp_path / "hosts.ini").write_text("[kube_control_plane]\ncp1 ansible_host=198.18.0.10\n[etcd]\ncp1\n"
                                        "[kube_node]\nw1 ansible_host=198.18.0.11\n")
    (tmp_path / "ssh-config").write_text(VIRTUALBOX)
    return {"inv": inv, "tmp": str(tmp_path), "ansible": str(tmp_path / "hosts.ini"),
            "ssh_config": str(tmp_path / "ssh-config"),
            "snapshot": str(write_snapshot(tmp_path / "snap.db"))}


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    return [a.format(**env) for a in args]


def json_values(text: str) -> list[object]:
    """stdout of a --json run: one document, or one JSON value per line (event streams). Raises if neither."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_command_is_in_exactly_one_class() -> None:
    found = {path for path, _ in leaves()}
    classes = [set(LOCAL) - {("reset",)}, set(REACH_HOSTS), LAB_MACHINES | {("lab", "exec")}]
    assert sorted(found - set().union(*classes)) == []  # a new command: put it in a class above
    assert sorted(set().union(*classes) - found) == []
    assert sum(len(c) for c in classes) == len(found)


def test_h_and_help_on_every_group_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    walked = list(walk())
    assert len(walked) > 35
    for path, _ in walked:
        assert run([*path, "-h"]) == 0, path
        short = capsys.readouterr().out
        assert run([*path, "--help"]) == 0, path
        assert capsys.readouterr().out == short and short.startswith(f"Usage: kbuild {' '.join(path)}".rstrip())


def test_y_wherever_yes_is() -> None:
    with_yes = [path for path, c in leaves() if "--yes" in options(c)]
    assert len(with_yes) >= 4  # reset, certs generate, etcd snapshot restore, upgrade apply
    assert [path for path, c in leaves() if "--yes" in options(c) and "-y" not in options(c)] == []


def test_json_on_every_command_that_prints_results() -> None:
    assert [path for path, c in leaves() if path not in PASSTHROUGH and "--json" not in options(c)] == []


def test_a_usage_error_with_json_is_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    for path, command in leaves():
        if path in PASSTHROUGH:
            continue
        assert run([*path, "--json", "--no-such-option"]) == 2, path
        out = capsys.readouterr().out
        error = json.loads(out)["error"]
        assert (error["kind"], error["exit_code"]) == ("bad-input", 2), path
        assert "--no-such-option" in error["message"]


def test_a_bad_inventory_with_json_is_one_json_object_naming_the_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: {name: t}\nhosts:\n  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}\n"
                   "  w1: {address: 198.18.0.10, roles: [worker]}\n")
    walked = [(p, c) for p, c in leaves() if "-i" in options(c) and "--json" in options(c)]
    assert len(walked) >= 20
    for path, command in walked:
        args = [*path, "-i", str(bad), "--json", *(["--all"] if path == ("certs", "renew") else [])]
        for param in command.params:  # type: ignore[attr-defined]
            if param.required and "-i" not in param.opts:
                args += ["x"] if not param.opts[0].startswith("-") else [param.opts[0], str(tmp_path / "x")]
        assert run(args) == 2, path
        error = json.loads(capsys.readouterr().out)["error"]
        assert error["exit_code"] == 2 and error["kind"] == "bad-input", path
        assert "hosts.w1.address: address 198.18.0.10 is already used" in error["message"], path


def test_every_local_command_succeeds_with_valid_json(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    order = sorted(LOCAL, key=lambda p: p == ("artifacts", "import"))  # the bundle is made first
    for path in order:
        code = run([*path, *expand(LOCAL[path], env), "--json"])
        out = capsys.readouterr().out
        assert code == 0, (path, out)
        values = json_values(out)
        assert values and all("error" not in v for v in values if isinstance(v, dict)), path


def test_every_command_reaching_an_unreachable_host_exits_4_with_valid_json(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    for path, extra in REACH_HOSTS.items():
        args = [*path, "-i", env["inv"], *expand(extra, env)]
        if path not in PASSTHROUGH:
            split = args.index("--") if "--" in args else len(args)
            args.insert(split, "--json")
        code = run(args)
        captured = capsys.readouterr()
        assert code == 4, (path, captured.out, captured.err)
        if path in PASSTHROUGH:
            assert "connection refused" in captured.err, path
            continue
        values = json_values(captured.out)
        errors = [v["error"] for v in values if isinstance(v, dict) and "error" in v]
        assert values, path  # event lines, a report (status) or an error object: JSON all the same
        if errors:  # an error object is the last thing on stdout and carries the code
            assert values[-1] == {"error": errors[-1]} and errors[-1]["exit_code"] == 4, path
            assert errors[-1]["kind"] == "unreachable"
        if path != ("etcd", "status"):  # its report says only "unreachable" (plays/etcd_ops, being reworked)
            assert "connection refused" in captured.out + captured.err, path


def test_text_errors_keep_the_code_and_say_connection_refused(env: dict[str, str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["upgrade", "plan", "-i", env["inv"]]) == 4  # the README's code, not 1
    err = capsys.readouterr().err
    assert "connection refused" in err and "Traceback" not in err


def readme_exit_codes() -> dict[int, str]:
    """code -> the `kind` a JSON error names, from the README's table."""
    section = README.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): kind for code, kind in re.findall(r"^\| (\d+) \| `([a-z-]+)` \| .+ \|$", section, re.M)}


def test_the_readme_table_is_the_exit_code_enum() -> None:
    assert readme_exit_codes() == {int(c): c.kind for c in ExitCode}


def test_exit_1_when_a_check_finds_a_problem(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    (Path(env["tmp"]) / ".kbuild" / "t" / "pki" / "apiserver.crt").unlink()
    for args in (["certs", "check", "-i", env["inv"]], ["certs", "check-expiration", "-i", env["inv"]]):
        assert run(args) == 1
        assert "apiserver" in capsys.readouterr().out
        assert run([*args, "--json"]) == 1
        assert json.loads(capsys.readouterr().out)["ok"] is False  # the report itself, one document


def test_exit_3_when_preflight_finds_a_problem(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def unfit(ctx: object) -> None:
        raise preflight_play.PreflightFailed([preflight_play.PreflightFinding("cp1", "memory", "1 GiB, 2 GiB needed")])

    monkeypatch.setattr(preflight_play, "run", unfit)
    assert run(["preflight", "-i", env["inv"], "--json"]) == 3
    error = json_values(capsys.readouterr().out)[-1]["error"]
    assert (error["kind"], error["exit_code"]) == ("preflight", 3) and "cp1: [memory]" in error["message"]


def test_exit_130_when_interrupted(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("kbuild.cli.certs.check_pki", interrupt)
    assert run(["certs", "check", "-i", env["inv"]]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"
    assert run(["certs", "check", "-i", env["inv"], "--json"]) == 130
    assert json.loads(capsys.readouterr().out)["error"]["kind"] == "interrupted"


def kbuild(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(Path(sys.executable).parent / "kbuild"), *args], **kwargs)  # type: ignore[call-overload]


def test_a_closed_pipe_ends_quietly_with_141(env: dict[str, str]) -> None:
    proc = kbuild("certs", "check", "-i", env["inv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before kbuild writes its first line (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""  # no traceback, no "Exception ignored"


def test_tables_are_not_cut_in_a_pipe(env: dict[str, str]) -> None:
    proc = kbuild("status", "-i", env["inv"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 4
    lines = out.decode().splitlines()
    assert max(len(line) for line in lines) > 80
    assert any("connection refused (the host is up, but nothing listens on that port: is sshd running?)" in line
               for line in lines)  # the whole reason, on one row


def test_inventory_from_stdin_needs_a_state_dir(env: dict[str, str], tmp_path: Path) -> None:
    text = Path(env["inv"]).read_text()
    proc = kbuild("inventory", "check", "-i", "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, cwd=tmp_path)
    out, err = proc.communicate(text.encode(), timeout=60)
    assert proc.returncode == 2 and b"needs --state-dir" in err and out == b""
    state = tmp_path / "from-stdin"
    proc = kbuild("inventory", "check", "-i", "-", "--state-dir", str(state), "--json", stdin=subprocess.PIPE,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    out, err = proc.communicate(text.encode(), timeout=60)
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["state_dir"] == str(state) and [h["name"] for h in data["hosts"]] == ["cp1", "w1"]


def test_hints_keep_the_inventory_and_state_dir_given(env: dict[str, str], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    assert run(["kubeconfig", "-i", env["inv"], "--state-dir", str(elsewhere)]) == 2
    err = capsys.readouterr().err
    assert f"kbuild certs generate -i {env['inv']} --state-dir {elsewhere}" in err
    assert run(["certs", "check", "-i", env["inv"], "--state-dir", str(elsewhere)]) == 1
    assert f"kbuild certs generate -i {env['inv']} --state-dir {elsewhere}" in capsys.readouterr().err


@pytest.mark.parametrize("shell, installed", [("zsh", ".zfunc/_kbuild"), ("fish", ".config/fish/completions/kbuild.fish"),
                                              ("bash", ".bash_completions/kbuild.sh")])
def test_install_completion_for_the_shell_named(shell: str, installed: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHELL", "/bin/sh")  # not the shell named: the name must win over detection
    assert run(["--install-completion", shell]) == 0
    assert f"{shell} completion installed in {tmp_path / installed}" in capsys.readouterr().out
    script = (tmp_path / installed).read_text()
    assert "_KBUILD_COMPLETE" in script and f"complete_{shell}" in script or shell == "zsh"
    others = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert not any(o.endswith(("_kbuild", "kbuild.fish", "kbuild.sh")) and o != installed for o in others)
    assert run(["--install-completion", "tcsh"]) == 2
    assert "unknown shell 'tcsh'" in capsys.readouterr().err
