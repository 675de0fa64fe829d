"""Snapshots and scheduled backups, the pure parts: the member chosen, the host's answers parsed, the
timer's files rendered only on etcd hosts when etcd.backup is enabled, and inventory values checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kbuild import layout
from kbuild.engine.ssh import Result
from kbuild.errors import InventoryError
from kbuild.plays import etcd as etcd_play
from kbuild.plays.etcd_backup import (
    SnapshotError,
    _parse_save,
    choose_source,
    parse_remote_list,
    save_script,
)
from kbuild.plays.clusterfacts.etcd_members import Member
from kbuild.plays.clusterfacts.etcd_status import EndpointStatus
from kbuild.plays.etcd_ops.health import membership_problems, status_problems
from kbuild.plays.etcd_ops.probe import HostProbe, probe_hosts, unreachable_hosts
from kbuild.plays.phases import Context
from kbuild.plays.etcd_ops.snapfile import FORMAT
from kbuild.render import host_files

from tests.unit.fakes import FakeSession
from tests.unit.supported import ETCD_RELEASES, ETCD_VERSION

from .etcd_fakes import cluster

BACKUP = "etcd:\n  backup: {enabled: true, keep: 3, schedule: '*-*-* 02:30:00', dir: /srv/etcd-backups}"


def member(name: str, *, healthy: bool = True, leader: bool = False, cluster_id: str = "c1") -> HostProbe:
    status = EndpointStatus("e", cluster_id, name, name if leader else "lead", 5, 2, 5, 1, ETCD_VERSION)
    return HostProbe(name, True, healthy, "" if healthy else "deadline exceeded", status, "member")


def test_the_snapshot_comes_from_a_healthy_follower_then_the_leader() -> None:
    assert choose_source({"m1": member("m1", leader=True), "m2": member("m2", healthy=False),
                          "m3": member("m3")}) == "m3"
    assert choose_source({"m1": member("m1", leader=True), "m2": None}) == "m1"
    with pytest.raises(SnapshotError) as info:
        choose_source({"m1": member("m1", healthy=False), "m2": None})
    assert "m1: NOT healthy (deadline exceeded)" in str(info.value) and "m2: unreachable" in str(info.value)
    assert "nothing was written" in str(info.value)


def test_the_save_script_saves_privately_and_reports_everything(tmp_path: Path) -> None:
    script = save_script(cluster(tmp_path), status_tool="etcdutl")
    assert "umask 077" in script and "mktemp -d /var/tmp/kbuild-snapshot." in script
    assert 'snapshot save "$d/snapshot.db"' in script and "--command-timeout=1800s" in script
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    out = ("@@kb-etcd dir\n/var/tmp/kbuild-snapshot.abc\n@@kb-etcd sha256\n" + "a" * 64 + "\n@@kb-etcd size\n20512\n"
           '@@kb-etcd snapshot-status\n{"hash":1,"revision":4,"totalKey":9,"totalSize":20480}\n@@kb-etcd endpoint-status\n'
           '[{"Endpoint":"e","Status":{"header":{"cluster_id":1,"member_id":2,"revision":4},"version":"'
           + ETCD_VERSION + '"}}]\n')
    remote = _parse_save(out)
    assert (remote.dir, remote.size, remote.version, remote.status.revision) == (
        "/var/tmp/kbuild-snapshot.abc", 20512, ETCD_VERSION, 4)
    with pytest.raises(SnapshotError, match="snapshot save failed: Error: context deadline exceeded"):
        _parse_save("@@kb-etcd dir\n/x\n@@kb-etcd failed\nError: context deadline exceeded\n")


def test_remote_listing_keeps_only_kbuild_metadata() -> None:
    found = parse_remote_list(f'@@kb-etcd /b/etcd-a.db\n{{"format": "{FORMAT}", "time": "t"}}\n\n'
                              '@@kb-etcd /b/etcd-b.db\n\n@@kb-etcd /b/etcd-c.db\n{"format": "other"}\n')
    assert [(p, m is not None) for p, m in found] == [("/b/etcd-a.db", True), ("/b/etcd-b.db", False),
                                                     ("/b/etcd-c.db", False)]


def test_membership_against_the_inventory(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    good = [Member(str(i), f"m{i}", (f"https://198.18.0.{10 + i}:2380",), (), False) for i in (1, 2, 3)]
    assert membership_problems(c, good) == []
    odd = [good[0], Member("9", "", ("https://198.18.0.12:2380",), (), False),
           Member("3", "m3", ("https://10.0.0.3:2380",), (), False), Member("4", "old", ("https://x:2380",), (), True)]
    problems = membership_problems(c, odd)
    assert "m2: added but never started" in problems
    assert any(p.startswith("m3: peer URLs https://10.0.0.3:2380") for p in problems)
    assert any(p.startswith("member old (4") for p in problems)
    split = status_problems(c, {"m1": member("m1", cluster_id="a", leader=True), "m2": member("m2", cluster_id="b"),
                                "m3": None})
    assert "m3: unreachable" in split and any("disagree on the cluster ID" in p for p in split)


def test_a_member_without_a_probe_is_reported_with_the_reason(tmp_path: Path) -> None:
    """`kbuild etcd status` says why a member has no answer: unreachable, or a probe that failed on the host."""
    c = cluster(tmp_path)
    healthy = ('@@kb-etcd health\nok\nrc 0\n@@kb-etcd status\n[{"Endpoint":"e","Status":{"header":{"cluster_id":1,'
               '"member_id":2,"revision":4,"raft_term":2},"leader":2,"version":"' + ETCD_VERSION + '"}}]\n'
               '@@kb-etcd facts\ndata member\n')

    def answer(host: str, command: str) -> Result | str:
        return healthy if host == "m1" else Result(127, b"", b"sh: etcdctl: not found")

    session = FakeSession(c.hosts, answer, unreachable={"m2"})
    probes = probe_hosts(Context(c, session), c.etcd_hosts)
    assert probes["m1"] is not None and probes["m2"] is None and probes["m3"] is None
    assert unreachable_hosts(probes) == {"m2"}
    problems = status_problems(c, probes)
    assert "m2: unreachable (m2: connection refused (scripted))" in problems
    assert any(p.startswith("m3: probe failed (the probe printed nothing usable (exit 127): sh: etcdctl: not found")
               for p in problems), problems
    assert unreachable_hosts({"m1": probes["m1"], "m3": None}) == {"m3"}  # only the absence known: unreachable


def test_backup_files_only_on_etcd_hosts_when_enabled(tmp_path: Path) -> None:
    plain = cluster(tmp_path)
    assert not [f for h in plain.hosts for f in host_files(plain, h) if "backup" in f.template]
    c = cluster(tmp_path, extra=BACKUP)
    files = {str(f.path): f for f in host_files(c, c.host("m1"))}
    script = files[str(layout.ETCD_BACKUP_SCRIPT)]
    timer = files["/etc/systemd/system/etcd-backup.timer"]
    service = files[str(layout.unit_path("etcd-backup"))]
    assert script.mode == 0o755 and script.services == () and service.services == ()
    assert timer.services == ("etcd-backup.timer",)  # a new schedule restarts the timer, nothing else
    assert "OnCalendar=*-*-* 02:30:00" in timer.content and "Persistent=true" in timer.content
    assert f"ExecStart={layout.ETCD_BACKUP_SCRIPT}" in service.content and "Type=oneshot" in service.content
    assert "dir=/srv/etcd-backups" in script.content and "keep=3" in script.content
    assert "/usr/local/bin/etcdutl snapshot status" in script.content and "prefix=etcd-demo-m1" in script.content
    assert subprocess.run(["sh", "-n"], input=script.content, text=True).returncode == 0
    assert not [f for f in host_files(c, c.host("w1")) if "backup" in f.template]
    for etcd in ETCD_RELEASES:  # every supported etcd checks its snapshots with etcdutl
        other = cluster(tmp_path, etcd=etcd, extra=BACKUP)
        other_script = next(f for f in host_files(other, other.host("m1")) if f.path == layout.ETCD_BACKUP_SCRIPT)
        assert "/usr/local/bin/etcdutl snapshot status" in other_script.content


def test_the_etcd_plan_runs_the_timer_only_when_enabled(tmp_path: Path) -> None:
    from kbuild.plays.desired import HostInputs

    for extra, wanted in (("", False), (BACKUP, True)):
        c = cluster(tmp_path, extra=extra)
        inputs = HostInputs(c.host("m1"), (), tuple(host_files(c, c.host("m1"))), ())
        timer = next(r for r in etcd_play.plan(c, inputs).resources if r.key == "service:etcd-backup.timer")
        assert (timer.enabled, timer.running) == (wanted, wanted)


@pytest.mark.parametrize(("field", "value"), [("dir", "relative/dir"), ("dir", "/with space"), ("dir", "/a/../b"),
                                              ("dir", "/"), ("schedule", ""), ("schedule", "daily\\nExecStart=/x")])
def test_backup_settings_that_would_break_the_script_or_timer_are_refused(tmp_path: Path, field: str,
                                                                           value: str) -> None:
    with pytest.raises(InventoryError) as info:
        cluster(tmp_path, extra=f'etcd:\n  backup: {{{field}: "{value}"}}')
    assert f"etcd.backup.{field}" in str(info.value)
