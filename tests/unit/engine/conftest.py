"""Engine test doubles: a connection that runs the real generated shell locally, and a systemctl shim.

The scripts the runner builds are the thing most likely to be wrong, so unit tests execute them
for real with /bin/sh (on paths under a temporary directory) instead of mocking them out.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbuild.engine.report import Event, Reporter
from kbuild.engine.runner import Runner
from kbuild.engine.ssh import Connection, ConnectionPool, Result, SSHTarget, Stats
from tests.unit.engine.sshserver import LoopbackServer, loopback_server
from tests.unit.fakes import EventLog

SYSTEMCTL = r"""#!/bin/sh
# A tiny stand-in for systemctl: state lives in files, every call is logged.
state="$SHIM_DIR"; mkdir -p "$state/enabled" "$state/active"
echo "$*" >> "$state/calls"
cmd=$1; shift
case "$cmd" in
  is-enabled) [ -f "$state/enabled/$1" ] && { echo enabled; exit 0; }; echo disabled; exit 1 ;;
  is-active) [ -f "$state/active/$1" ] && { echo active; exit 0; }; echo inactive; exit 3 ;;
  show)  # `show -p ... -- unit...`: one block per unit, as systemd prints them
    while [ "$1" != "--" ]; do shift; done; shift; first=1
    for u in "$@"; do
      [ $first = 1 ] || echo; first=0
      [ -f "$state/enabled/$u" ] && e=enabled || e=disabled
      [ -f "$state/active/$u" ] && a=active || a=inactive
      printf 'LoadState=loaded\nActiveState=%s\nUnitFileState=%s\n' "$a" "$e"
    done ;;
  enable) touch "$state/enabled/$1" ;;
  disable) rm -f "$state/enabled/$1" ;;
  start) [ -f "$state/broken-$1" ] && { echo "Job for $1.service failed." >&2; exit 1; }; touch "$state/active/$1" ;;
  restart) [ -f "$state/broken-$1" ] && { echo "Job for $1.service failed." >&2; exit 1; }; touch "$state/active/$1" ;;
  stop) rm -f "$state/active/$1" ;;
  try-restart) for s in "$@"; do [ -f "$state/active/$s" ] && echo "restart $s" >> "$state/calls"; done ;;
  daemon-reload|reset-failed) ;;
  *) echo "shim: unsupported $cmd" >&2; exit 2 ;;
esac
"""


class LocalConnection(Connection):
    """Runs commands with the local /bin/sh, as the SSH Connection would on a host."""

    def __init__(self, target: SSHTarget, stats: Stats, env: dict[str, str]) -> None:
        self.target = target
        self.stats = stats
        self.env = env
        self.commands: list[str] = []

    def run(self, command: str, *, stdin=None, timeout=600, stdout_sink=None, progress=None) -> Result:
        data = stdin if isinstance(stdin, (bytes, type(None))) else stdin.read()
        self.commands.append(command)
        proc = subprocess.run(["sh", "-c", command], input=data or b"", capture_output=True, env=self.env,
                              timeout=timeout)
        self.stats.count(round_trips=1, sent=len(data or b""))
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def run_script(self, script: bytes, *, timeout: float | None = 600) -> Result:
        return self.run("sh -s", stdin=script, timeout=timeout)

    def close(self) -> None:
        pass


class Recorder(EventLog):
    def of(self, kind: str, status: str | None = None) -> list[Event]:
        return [e for e in self.events if e.event == kind and (status is None or e.status == status)]


class Host:
    """A fake host rooted in a temporary directory, with a systemctl shim."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shim = root / "shim"
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "systemctl").write_text(SYSTEMCTL)
        (bin_dir / "systemctl").chmod(0o755)
        self.env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SHIM_DIR=str(self.shim),
                        KB_STAMPS=str(root / "stamps"))
        self.connections: list[LocalConnection] = []

    def path(self, rel: str) -> str:
        return str(self.root / "fs" / rel)

    def calls(self) -> list[str]:
        log = self.shim / "calls"
        return log.read_text().splitlines() if log.exists() else []

    def runner(self, *, check: bool = False, diff: bool = False, names: tuple[str, ...] = ("h1",)) -> tuple[Runner, Recorder, ConnectionPool]:
        def connector(target: SSHTarget, stats: Stats) -> LocalConnection:
            conn = LocalConnection(target, stats, self.env)
            self.connections.append(conn)
            stats.count(connections=1)
            return conn

        pool = ConnectionPool({n: SSHTarget(n, "127.0.0.1") for n in names}, self.root / "known_hosts",
                              connector=connector)
        recorder = Recorder()
        return Runner(pool, Reporter([recorder]), check=check, diff=diff), recorder, pool


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[LoopbackServer]:
    """A real SSH server on loopback that records what it is asked to run (tests/unit/engine/sshserver.py)."""
    with loopback_server(tmp_path) as server:
        yield server
