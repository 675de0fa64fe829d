"""The gate that holds the rollout until a leader-elected controller leads again: its shell test run under sh,
with systemctl and kubectl stood in for by scripts that answer as a host would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kbuild import layout
from kbuild.plays.upgrade.leaders import leading_gate

STARTED = 1796276460  # when the restarted controller-manager's process started, by the host's clock


def run_gate(tmp_path: Path, renew_time: str | None) -> subprocess.CompletedProcess[str]:
    """The gate's command with `renew_time` as the Lease's spec.renewTime (None: no Lease, kubectl fails)."""
    (tmp_path / "systemctl").write_text(f"#!/bin/sh\n[ \"$*\" = 'show -P ExecMainStartTimestamp --timestamp=unix "
                                        f"kube-controller-manager' ] && echo @{STARTED}\n")
    answer = "echo 'Error from server (NotFound)' >&2; exit 1" if renew_time is None else f"printf %s '{renew_time}'"
    (tmp_path / "kubectl").write_text(f"#!/bin/sh\necho \"$*\" > {tmp_path}/kubectl-args\n{answer}\n")
    for stub in ("systemctl", "kubectl"):
        (tmp_path / stub).chmod(0o755)
    gate = leading_gate("kube-controller-manager")
    command = gate.command.replace(str(layout.binary_path("kubectl")), str(tmp_path / "kubectl"))
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "TZ": "UTC"}
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=10)


def stamp(seconds_after_start: float) -> str:
    """A Lease's renewTime (RFC 3339 with microseconds, as the API writes it) this long after the start."""
    return subprocess.run(["date", "-u", "-d", f"@{STARTED + seconds_after_start}", "+%Y-%m-%dT%H:%M:%S.%6NZ"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_a_lease_renewed_after_the_restart_means_a_live_leader(tmp_path):
    assert run_gate(tmp_path, stamp(3.2)).returncode == 0
    args = (tmp_path / "kubectl-args").read_text().split()
    assert args[1:] == ["get", "lease", "-n", "kube-system", "kube-controller-manager", "-o",
                        "jsonpath={.spec.renewTime}"]


@pytest.mark.parametrize("renew_time", [stamp(-7.5), stamp(0.4), ""],
                         ids=["before the restart", "in the second the new process started", "never renewed"])
def test_a_lease_last_renewed_by_the_stopped_leader_holds_the_rollout(tmp_path, renew_time):
    # The stopped instance's last renewal may fall in the very second its successor started: not a leader.
    assert run_gate(tmp_path, renew_time).returncode != 0


def test_no_lease_holds_the_rollout(tmp_path):
    assert run_gate(tmp_path, None).returncode != 0


def test_the_gate_waits_even_when_nothing_changed_and_shows_the_units_log():
    gate = leading_gate("kube-scheduler")
    assert gate.always and gate.unit == "kube-scheduler" and "kube-scheduler" in gate.name
    assert gate.timeout > 15  # more than the Lease's duration: a takeover waits for it to expire
