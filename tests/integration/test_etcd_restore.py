"""etcd snapshots and restore on a 3-member cluster (3 masters: etcd + control plane, no workers), kbuild's etcd.

Real parts: systemd-nspawn machines with systemd and sshd, etcd/etcdctl/etcdutl and the control plane built
from source, the apiserver storing in etcd over mTLS; kbuild runs as a child process like a user would.
Tests build on each other's cluster in order (one bootstrap for the module) and leave it healthy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kbuild.inventory.model import Versions
from kbuild.plays.etcd_ops.snapfile import verify_file
from tests.integration.etcd_support import (
    PREFIX,
    EtcdLab,
    assert_no_op_bootstrap_and_members_rejoin,
    round_trip,
    saved_snapshot,
)

pytestmark = pytest.mark.integration

CONTROL = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


@pytest.fixture(scope="module")
def three(lab_factory, built_mirror, tmp_path_factory):
    handle = lab_factory("etcd3", masters=3, workers=0)
    lab = EtcdLab.bootstrapped(handle, built_mirror.root, tmp_path_factory.mktemp("etcd3"))
    yield lab
    lab_factory.release(handle)  # free the machines for the next module's lab


def untouched(lab: EtcdLab) -> dict[str, tuple]:
    """What a refused restore must leave as it was, per member: running units, etcd's process, the data."""
    return {m: (lab.active(m, *CONTROL), lab.main_pid(m, "etcd"), lab.member_inode(m), lab.etcd_dirs(m))
            for m in lab.masters}


def test_save_verifies_and_records_the_snapshot(three: EtcdLab):
    code, events, stderr = three.kbuild("etcd", "snapshot", "save", "--keep", "5")
    assert code == 0, stderr
    path, metadata = saved_snapshot(events)
    assert path.parent == three.state_dir / "backups" and path.is_file()
    assert json.loads(Path(f"{path}.json").read_text()) == metadata
    assert metadata["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == verify_file(path).sha256
    assert metadata["size"] == path.stat().st_size and metadata["revision"] > 1 and metadata["total_keys"] > 0
    assert metadata["member"] in three.masters and metadata["etcd_version"] == Versions().etcd
    assert metadata["cluster"] == three.lab.name and metadata["reason"] == "manual"
    assert not list(path.parent.glob(".*partial*"))
    listed = three.kbuild_output("etcd", "snapshot", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert str(path) in [s["path"] for s in json.loads(listed.stdout)]


def test_ctl_runs_etcdctl_on_a_member(three: EtcdLab):
    code, _, stderr = three.kbuild("etcd", "ctl", "--", "put", f"{PREFIX}via-ctl", "hello world", json_events=False)
    assert code == 0, stderr
    got = three.kbuild_output("etcd", "ctl", "--", "get", f"{PREFIX}via-ctl", "--print-value-only")
    assert (got.returncode, got.stdout) == (0, "hello world\n"), got.stderr
    assert three.keys(three.masters[1])[f"{PREFIX}via-ctl"][0] == "hello world"
    # etcdctl's own failure comes back as kbuild's exit code.
    assert three.kbuild_output("etcd", "ctl", "--", "no-such-command").returncode != 0
    three.delete_keys(three.masters[0], ["via-ctl"])


def test_bad_files_are_refused_before_anything_is_stopped(three: EtcdLab, tmp_path: Path):
    code, events, stderr = three.kbuild("etcd", "snapshot", "save")
    assert code == 0, stderr
    good = saved_snapshot(events)[0].read_bytes()
    corrupted = bytearray(good)
    corrupted[len(good) // 2] ^= 0xFF
    files = {"truncated": good[: len(good) // 2], "corrupted": bytes(corrupted),
             "not etcd": b"this is not an etcd snapshot\n" * 100, "empty": b""}
    before = untouched(three)
    for name, data in files.items():
        path = tmp_path / f"{name.replace(' ', '-')}.db"
        path.write_bytes(data)
        code, _, stderr = three.kbuild("etcd", "snapshot", "restore", str(path), "--yes")
        assert code == 2, (name, stderr)
        assert str(path) in stderr and ("snapshot" in stderr), stderr
    assert untouched(three) == before


def test_round_trip_on_three_members(three: EtcdLab):
    result = round_trip(three)
    # The current state was saved first, automatically.
    backups = [json.loads(p.read_text()) for p in (three.state_dir / "backups").glob("*.json")]
    assert [b for b in backups if b["reason"] == "before restore" and b["revision"] > result["metadata"]["revision"]]


def test_bootstrap_after_restore_changes_nothing_and_members_rejoin(three: EtcdLab):
    assert_no_op_bootstrap_and_members_rejoin(three)


def test_failure_midway_puts_the_old_data_back(three: EtcdLab):
    first, victim = three.masters[0], three.masters[1]
    code, events, stderr = three.kbuild("etcd", "snapshot", "save")
    assert code == 0, stderr
    path = saved_snapshot(events)[0]
    three.put_keys(first, ["written-after-the-snapshot"])
    expected = three.keys(first)
    # Inject a failure after every member is stopped and moved aside: the restore on one member fails.
    three.sh(victim, "mv /usr/local/bin/etcdutl /usr/local/bin/etcdutl.real && printf '%s\\n' '#!/bin/sh' "
                     "'case \"$*\" in *\"snapshot restore\"*) echo \"injected: no space left on device\" >&2; exit 1;; esac' "
                     "'exec /usr/local/bin/etcdutl.real \"$@\"' > /usr/local/bin/etcdutl && chmod 755 /usr/local/bin/etcdutl")
    try:
        code, events, stderr = three.kbuild("etcd", "snapshot", "restore", str(path), "--yes")
    finally:
        three.sh(victim, "mv -f /usr/local/bin/etcdutl.real /usr/local/bin/etcdutl")
    assert code == 1, stderr
    assert "injected: no space left on device" in stderr and "rolled back" in stderr, stderr
    assert [e for e in events if e.get("phase") == "rollback-data" and e["event"] == "message"
            and "moved back" in e.get("message", "")], "the data directories were not moved back"
    for member in three.masters:
        assert three.keys(member) == expected, member  # the old data, including what came after the snapshot
        assert three.active(member, *CONTROL) == ["active"] * 4, member
        assert three.apiserver_ready(member)
        dirs = three.etcd_dirs(member)
        assert "/var/lib/etcd" in dirs and not [d for d in dirs if d.endswith(".db") or "partial" in d], dirs
    code, _, stderr = three.kbuild("etcd", "status", json_events=False)
    assert code == 0, stderr


def test_unreachable_member_refuses_the_restore(three: EtcdLab):
    code, events, stderr = three.kbuild("etcd", "snapshot", "save")
    assert code == 0, stderr
    path = saved_snapshot(events)[0]
    down = three.masters[2]
    up = three.masters[:2]
    three.lab.stop(down)
    try:
        before = {m: (three.active(m, *CONTROL), three.main_pid(m, "etcd"), three.member_inode(m), three.etcd_dirs(m))
                  for m in up}
        code, _, stderr = three.kbuild("etcd", "snapshot", "restore", str(path), "--yes")
        assert code == 4, stderr
        assert f"{down}: unreachable" in stderr and "nothing was changed" in stderr, stderr
        after = {m: (three.active(m, *CONTROL), three.main_pid(m, "etcd"), three.member_inode(m), three.etcd_dirs(m))
                 for m in up}
        assert after == before
        status = three.kbuild_output("etcd", "status")
        assert status.returncode == 4 and down in status.stdout and "unreachable" in status.stdout, status.stdout
    finally:
        three.lab.start(down)
    three.wait_healthy()


def test_a_cluster_that_lost_quorum_is_restored(three: EtcdLab):
    code, events, stderr = three.kbuild("etcd", "snapshot", "save")
    assert code == 0, stderr
    path, metadata = saved_snapshot(events)
    expected = three.keys(three.masters[0])
    for member in three.masters[1:]:
        three.sh(member, "systemctl stop etcd")  # two of three gone: no quorum
    status = three.kbuild_output("etcd", "status")
    assert status.returncode == 1 and "not healthy" in status.stdout, status.stdout
    code, _, stderr = three.kbuild("etcd", "snapshot", "save")
    assert code == 1 and "no healthy etcd member" in stderr, stderr
    code, events, stderr = three.kbuild("etcd", "snapshot", "restore", str(path), "--yes")
    assert code == 0, stderr[-3000:]
    assert "NO snapshot of the current state" in stderr  # the plan said it could not save the broken state
    for member in three.masters:
        assert three.keys(member) == expected, member
        assert three.apiserver_ready(member), member
    three.wait_healthy()


def test_keep_prunes_older_snapshots_of_this_cluster(three: EtcdLab):
    backups = three.state_dir / "backups"
    stranger = backups / "handmade.db"
    stranger.write_bytes(b"not kbuild's")
    code, events, stderr = three.kbuild("etcd", "snapshot", "save", "--keep", "2")
    assert code == 0, stderr
    newest = saved_snapshot(events)[0]
    ours = sorted(p.name for p in backups.glob("etcd-*.db"))
    assert len(ours) == 2 and newest.name in ours
    assert sorted(p.name for p in backups.glob("*.json")) == sorted(f"{n}.json" for n in ours)
    assert stranger.exists()  # a file without kbuild metadata is never counted or removed


def test_scheduled_backup_runs_verifies_and_keeps_the_newest(three: EtcdLab):
    scheduled = three.variant("backups.yaml",
                              etcd={"backup": {"enabled": True, "keep": 2, "schedule": "*-*-* 03:00:00"}})
    member = three.masters[0]
    assert three.active(member, "etcd-backup.timer") == ["active"]
    assert "etcd-backup.service" in three.sh(member, "systemctl list-timers etcd-backup.timer --no-pager")
    for _ in range(3):
        three.sh(member, "systemctl start etcd-backup.service")  # what the timer does when it fires
    names = three.sh(member, "ls /var/backups/etcd").split()
    dbs = [n for n in names if n.endswith(".db")]
    assert len(dbs) == 2 and sorted(names) == sorted(dbs + [f"{n}.json" for n in dbs]), names
    for name in dbs:
        meta = json.loads(three.sh(member, f"cat /var/backups/etcd/{name}.json"))
        assert meta["sha256"] == three.sh(member, f"sha256sum /var/backups/etcd/{name}").split()[0]
        assert meta["member"] == member and meta["reason"] == "scheduled" and meta["revision"] > 1
        status = json.loads(three.sh(member, f"/usr/local/bin/etcdutl snapshot status /var/backups/etcd/{name} -w json"))
        assert status["revision"] == meta["revision"]
    # The newest comes to the controller verified, and is a snapshot kbuild can restore.
    code, events, stderr = scheduled.kbuild("etcd", "snapshot", "fetch", "--host", member)
    assert code == 0, stderr
    fetched = sorted(dbs)[-1]
    local = three.state_dir / "backups" / fetched
    assert verify_file(local).sha256 == json.loads(Path(f"{local}.json").read_text())["sha256"]
    # A failing run (etcd down on this member) leaves no partial file and keeps the older snapshots.
    three.sh(member, "systemctl stop etcd")
    try:
        assert three.lab.exec(member, ["systemctl", "start", "etcd-backup.service"]).returncode != 0
        assert sorted(three.sh(member, "ls -A /var/backups/etcd").split()) == sorted(names)
    finally:
        three.sh(member, "systemctl start etcd")
    three.wait_healthy()
    # Turned off again: the timer is stopped and disabled.
    code, _, stderr = three.kbuild("bootstrap")
    assert code == 0, stderr[-2000:]
    assert three.active(member, "etcd-backup.timer") == ["inactive"]
