"""The restore procedure's order and its rollback, against simulated hosts (a fake runner and connections that
answer each step's shell like a host would): what runs, in which order, and what is undone after a failure."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kbuild.engine.runner import HostOutcome, HostStatus, Plan, Runner
from kbuild.engine.ssh import Result
from kbuild.plays import etcd_restore
from kbuild.plays.etcd_backup import Snapshot
from kbuild.plays.etcd_ops import commands, snapfile
from kbuild.plays.etcd_ops.restore_plan import RestoreRefused
from kbuild.plays.phases import Context
from tests.unit.fakes import FakeSession
from tests.unit.supported import ETCD_VERSION

from .etcd_fakes import cluster, write_snapshot

REVISION = 42


@dataclass
class World:
    """Hosts as the restore sees them; `fail` maps (step, host) to an error message."""

    cluster: object
    fail: dict[tuple[str, str], str] = field(default_factory=dict)
    interrupt: tuple[str, str] | None = None
    log: list[tuple[str, str]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    served: int = commands.restored_revision(REVISION)  # the revision members report
    inputs: dict[str, bytes] = field(default_factory=dict)  # the last stdin each host was sent (the session's)

    def step_of(self, command: str) -> str:
        for marker, step in (("@@kb-etcd health", "probe"), ("cat > ", "upload"), ("sha256sum", "sha256"),
                             ("snapshot status", "status"), ("snapshot restore", "restore"),
                             ("rolled-back", "rollback"), ("before-restore", "move-aside"),
                             ("kube-apiserver kube-controller-manager", "control-plane"),
                             ("systemctl stop", "stop-etcd"), ("start --no-block etcd", "start-etcd"),
                             ("member list", "member-list"), ("rm -f", "cleanup"), ("mv ", "mv-upload")):
            if marker in command:
                if step == "control-plane":
                    return "stop-cp" if "systemctl stop" in command else "start-cp"
                return step
        raise AssertionError(f"unexpected command: {command[:200]}")

    def run(self, host: str, command: str) -> Result:
        step = self.step_of(command)
        self.log.append((step, host))
        if self.interrupt == (step, host):
            raise KeyboardInterrupt
        if (step, host) in self.fail:  # once: the rollback's own step of that name succeeds
            return Result(1, b"", self.fail.pop((step, host)).encode())
        if step == "probe":
            return Result(0, self.probe(host).encode(), b"")
        if step == "upload":
            self.uploads[host] = self.inputs[host]
            return Result(0, b"", b"")
        if step == "sha256":
            return Result(0, hashlib.sha256(self.uploads[host]).hexdigest().encode() + b"\n", b"")
        if step == "status":
            return Result(0, json.dumps({"hash": 1, "revision": REVISION, "totalKey": 7, "totalSize": 1}).encode(), b"")
        if step == "move-aside":
            return Result(0, b"moved\n", b"")
        if step == "member-list":
            members = [{"ID": i + 1, "name": h.name, "peerURLs": [f"https://{h.address}:2380"]}
                       for i, h in enumerate(self.cluster.etcd_hosts)]
            return Result(0, json.dumps({"header": {"cluster_id": 99}, "members": members}).encode(), b"")
        return Result(0, b"", b"")

    def probe(self, host: str) -> str:
        status = [{"Endpoint": "https://127.0.0.1:2379", "Status": {
            "header": {"cluster_id": 99, "member_id": 1, "revision": self.served, "raft_term": 2},
            "version": ETCD_VERSION, "leader": 1, "dbSize": 1}}]
        return (f"@@kb-etcd health\nrc 0\n@@kb-etcd status\n{json.dumps(status)}\n@@kb-etcd facts\ndata member\n"
                "mountpoint no\ntool etcdctl\ntool etcdutl\nfree 100000000\nactive etcd active\n")

    def steps(self, ignore: tuple[str, ...] = ()) -> list[str]:
        """The steps in order, each once per run of consecutive hosts."""
        out: list[str] = []
        for step, _ in self.log:
            if step not in ignore and (not out or out[-1] != step):
                out.append(step)
        return out


class GatedRunner(Runner):
    """The real runner (one host at a time, so the order is deterministic), with each plan's health gates
    answered by the world instead of polled."""

    world: World

    def apply(self, phase: str, plans: dict[str, Plan], *, serial: int | None = None,
              describe: str | None = None) -> dict[str, HostOutcome]:
        outcomes = {}
        for name, plan in plans.items():
            for gate in plan.gates:
                step = "gate-etcd" if "endpoint health" in (gate.command or "") else "gate-cp"
                self.world.log.append((step, name))
                if (step, name) in self.world.fail:
                    outcomes[name] = HostOutcome(name, HostStatus.FAILED, message=self.world.fail.pop((step, name)))
                    break
            else:
                outcomes[name] = HostOutcome(name, HostStatus.OK)
        return outcomes


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    c = cluster(tmp_path)
    world = World(c)
    session = FakeSession(c.hosts, world.run, runner=GatedRunner, forks=1)
    assert isinstance(session.runner, GatedRunner)
    session.runner.world = world
    world.inputs = session.inputs
    snap = write_snapshot(tmp_path / "s.db")
    check = snapfile.verify_file(snap)
    snapfile.write_metadata(snap, {"format": snapfile.FORMAT, "cluster": "demo", "etcd_version": ETCD_VERSION,
                                   "revision": REVISION, "sha256": check.sha256})
    pre = Snapshot(tmp_path / "pre.db", {"revision": 50}, tmp_path / "pre.db.json")
    monkeypatch.setattr(etcd_restore, "take_snapshot", lambda ctx, reason: pre)
    return Context(c, session), world, snap


HAPPY = ["probe", "upload", "sha256", "mv-upload", "status", "stop-cp", "stop-etcd", "move-aside", "restore",
         "start-etcd", "gate-etcd", "probe", "member-list", "start-cp", "gate-cp", "cleanup"]
ROLLBACK = ["stop-cp", "stop-etcd", "rollback", "start-etcd", "gate-etcd", "start-cp", "gate-cp", "cleanup"]


def test_the_steps_run_in_the_documented_order(setup) -> None:
    ctx, world, snap = setup
    result = etcd_restore.restore(ctx, snap, confirm=lambda plan: True)
    steps = world.steps()
    # Per host the upload's steps interleave; the order of the phases is what matters.
    per_host = ("sha256", "mv-upload", "status")
    assert world.steps(ignore=per_host) == [s for s in HAPPY if s not in per_host]
    assert result.revision == REVISION and result.pre_snapshot is not None
    assert "rollback" not in steps


@pytest.mark.parametrize(("failing", "at"), [("restore", "m2"), ("gate-etcd", "m3"), ("gate-cp", "m1"),
                                             ("start-cp", "m2"), ("move-aside", "m3")])
def test_a_failure_after_stopping_puts_the_old_data_back(setup, failing: str, at: str) -> None:
    ctx, world, snap = setup
    world.fail[(failing, at)] = f"injected {failing} failure"
    with pytest.raises(etcd_restore.RestoreFailed) as info:
        etcd_restore.restore(ctx, snap, confirm=lambda plan: True)
    message = str(info.value)
    assert f"injected {failing} failure" in message and "rolled back" in message
    tail = world.steps()[world.steps().index(failing) + 1:]
    assert tail[tail.index("stop-cp"):] == ROLLBACK
    # Every moved data directory goes back (a member whose move failed has nothing to put back).
    moved = ["m1", "m2"] if failing == "move-aside" else ["m1", "m2", "m3"]
    assert sorted(h for s, h in world.log if s == "rollback") == moved
    assert dict(ctx.session.dead) == {}


def test_members_serving_another_revision_than_the_snapshots_are_rolled_back(setup) -> None:
    ctx, world, snap = setup
    world.served = REVISION  # the restore did not bump the revision: watches would miss changes
    with pytest.raises(etcd_restore.RestoreFailed,
                       match=f"serves revision {REVISION}, the snapshot has {REVISION} "
                             rf"\(so {commands.restored_revision(REVISION)} once restored\)"):
        etcd_restore.restore(ctx, snap, confirm=lambda plan: True)
    assert "start-cp" not in world.steps()[:world.steps().index("rollback")]
    assert world.steps()[-len(ROLLBACK):] == ROLLBACK


def test_an_interrupt_midway_is_rolled_back_then_reraised(setup) -> None:
    ctx, world, snap = setup
    world.interrupt = ("restore", "m2")
    with pytest.raises(KeyboardInterrupt):
        etcd_restore.restore(ctx, snap, confirm=lambda plan: True)
    assert world.steps()[-len(ROLLBACK):] == ROLLBACK


def test_a_rollback_that_cannot_finish_says_what_to_do_by_hand(setup) -> None:
    ctx, world, snap = setup
    world.fail[("restore", "m1")] = "injected"
    world.fail[("rollback", "m3")] = "mv: cannot move"
    with pytest.raises(etcd_restore.RestoreFailed) as info:
        etcd_restore.restore(ctx, snap, confirm=lambda plan: True)
    message = str(info.value)
    assert "ROLLBACK INCOMPLETE" in message and "m3: old data NOT put back" in message
    assert "mv ASIDE DATA_DIR" in message and "ASIDE=/var/lib/etcd.before-restore-" in message


def test_a_damaged_upload_refuses_before_anything_is_stopped(setup) -> None:
    ctx, world, snap = setup
    world.fail[("sha256", "m2")] = "sha256sum: read error"
    with pytest.raises(RestoreRefused, match="nothing was changed"):
        etcd_restore.restore(ctx, snap, confirm=lambda plan: True)
    assert not {"stop-cp", "stop-etcd", "move-aside"} & set(world.steps())
    assert world.steps()[-1] == "cleanup"


def test_saying_no_at_the_prompt_changes_nothing(setup) -> None:
    ctx, world, snap = setup
    with pytest.raises(etcd_restore.RestoreAborted):
        etcd_restore.restore(ctx, snap, confirm=lambda plan: False)
    assert world.steps() == ["probe"]


def test_a_bad_file_is_refused_before_any_host_is_asked(setup, tmp_path: Path) -> None:
    ctx, world, _ = setup
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"x" * 100)
    with pytest.raises(snapfile.SnapshotFileError):
        etcd_restore.restore(ctx, bad, confirm=lambda plan: True)
    assert world.log == []
