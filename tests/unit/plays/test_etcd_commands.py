"""etcd command lines and the parsers of etcdctl/etcdutl JSON (recorded from the test mirror's etcd 3.5.35, 3.6.16)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from kbuild import layout
from kbuild.pki.certlist import remote_path
from kbuild.plays.clusterfacts import etcd_members, etcd_status
from kbuild.plays.etcd_ops import commands
from kbuild.plays.etcd_ops.probe import parse_probe
from kbuild.render import host_files
from tests.unit.supported import ETCD_PREVIOUS, ETCD_RELEASES, ETCD_VERSION

from .etcd_fakes import cluster

# `etcdutl snapshot status -w json` of one snapshot, by each etcdutl: a fresh 3.6.16 member on loopback,
# `etcdctl put k1 v1` ... `put k7 v7`, then `etcdctl snapshot save`.
STATUS = {
    "3.6.16": '{"hash":31713166,"revision":8,"totalKey":7,"totalSize":20480,"version":"3.6.0"}\n',
    "3.5.35": '{"hash":31713166,"revision":8,"totalKey":14,"totalSize":20480}\n',
}
# etcdctl's zap log on stderr (from `etcdctl snapshot save`, 3.6.16): merged with 2>&1 it comes before the JSON.
LOG = ('{"level":"info","ts":"2026-12-02T12:57:23.888166Z","caller":"snapshot/v3_snapshot.go:83",'
       '"msg":"created temporary db file","path":"s.db.part"}\n')
# `etcdctl endpoint status -w json` and `etcdctl member list -w json` (3.6.16, a learner just added).
ENDPOINT = ('[{"Endpoint":"http://127.0.0.1:23791","Status":{"header":{"cluster_id":15118495548433857066,'
            '"member_id":13668033151171901709,"revision":8,"raft_term":2},"version":"3.6.16","dbSize":20480,'
            '"leader":13668033151171901709,"raftIndex":11,"raftTerm":2,"raftAppliedIndex":11,"dbSizeInUse":16384,'
            '"storageVersion":"3.6.0","dbSizeQuota":2147483648,"downgradeInfo":{}}}]')
MEMBERS = ('{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"raft_term":2},"members":['
           '{"ID":12280976461958443993,"peerURLs":["http://127.0.0.1:23802"],"isLearner":true},'
           '{"ID":13668033151171901709,"name":"m1","peerURLs":["http://127.0.0.1:23801"],'
           '"clientURLs":["http://127.0.0.1:23791"]}]}')


def test_the_recordings_are_of_the_supported_releases() -> None:
    assert set(STATUS) == set(ETCD_RELEASES) == {ETCD_PREVIOUS, ETCD_VERSION}


@pytest.mark.parametrize("version", [*ETCD_RELEASES, f"v{ETCD_VERSION}"])
def test_every_supported_etcd_has_etcdutl_for_offline_work(version: str) -> None:
    assert commands.snapshot_tool(version) == "etcdutl"


def test_restore_command_matches_the_unit_each_member_runs(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    host = c.host("m2")
    line = commands.snapshot_restore(c, host, tool="etcdutl", snapshot="/var/lib/etcd.restore-1.db",
                                     data_dir="/var/lib/etcd", token=commands.restore_token(c, "20260101T000000Z"))
    argv = shlex.split(line)
    assert argv[:4] == ["ETCDCTL_API=3", str(layout.binary_path("etcdutl")), "snapshot", "restore"]
    flags = dict(a[2:].split("=", 1) for a in argv[5:] if "=" in a)
    # The revision moves on past anything a client saw, and watches from before are told to relist.
    assert flags["bump-revision"] == str(commands.RESTORE_REVISION_BUMP) and "--mark-compacted" in argv
    unit = next(f.content for f in host_files(c, host) if f.path == layout.unit_path("etcd"))
    # Name, peer URL and initial cluster exactly as the etcd unit has them; the token is new.
    for flag in ("name", "initial-cluster", "initial-advertise-peer-urls"):
        assert f"--{flag}={flags[flag]} " in unit.replace("\\\n", " ").replace("  ", " ") + " ", flag
    assert flags["initial-cluster-token"] == "demo-etcd-restore-20260101T000000Z"
    assert "--initial-cluster-token=demo-etcd " in unit.replace("\\\n", " ") + " "
    assert flags["data-dir"] == "/var/lib/etcd" and flags["initial-cluster"].count("=https://") == 3


def test_ctl_overrides_the_health_check_timeout_last() -> None:
    line = commands.ctl(None, "snapshot", "save", "/x", timeout="1800s")  # type: ignore[arg-type]
    assert line.index("--command-timeout=5s") < line.index("--command-timeout=1800s")
    assert f"--cert={remote_path('etcd-healthcheck-client.crt')}" in line


@pytest.mark.parametrize("version", sorted(STATUS))
def test_snapshot_status_is_read_from_either_version(version: str) -> None:
    status = commands.parse_snapshot_status(STATUS[version])
    assert (status.hash, status.revision, status.total_size) == (31713166, 8, 20480)
    assert status.total_keys == (7 if version == ETCD_VERSION else 14)  # 3.5's etcdutl counts the meta keys too


def test_snapshot_status_after_etcdctl_log_lines_is_found() -> None:
    assert commands.parse_snapshot_status(LOG + STATUS[ETCD_VERSION]).revision == 8


def test_snapshot_status_garbage_says_what_came() -> None:
    with pytest.raises(ValueError, match="no JSON"):
        commands.parse_snapshot_status("Error: snapshot file has wrong size")


def test_endpoint_status_and_member_list() -> None:
    (status,) = etcd_status.parse(ENDPOINT)
    assert status.is_leader and status.revision == 8 and status.version == ETCD_VERSION
    assert status.cluster_id == f"{15118495548433857066:x}"
    listing = etcd_members.parse(MEMBERS)
    cluster_id, members = listing.cluster_id, listing.members
    assert cluster_id == f"{15118495548433857066:x}"
    learner, m1 = members
    assert m1.name == "m1" and m1.peer_urls == ("http://127.0.0.1:23801",) and not m1.learner
    assert learner.name == "" and learner.learner


def test_probe_output_is_parsed(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    out = ("@@kb-etcd health\nhttps://127.0.0.1:2379 is healthy: successfully committed proposal\nrc 0\n"
           f"@@kb-etcd status\n{ENDPOINT}\n@@kb-etcd facts\ndata member\nmountpoint no\ntool etcdctl\ntool etcdutl\n"
           "free 1048576\nactive etcd active\nactive kube-apiserver inactive\n")
    probe = parse_probe(c.host("m1"), out)
    assert probe.healthy and probe.status is not None and probe.status.is_leader
    assert probe.tools == {"etcdctl", "etcdutl"} and probe.free_kb == 1048576 and probe.data_dir == "member"
    assert probe.active == {"etcd": "active", "kube-apiserver": "inactive"}
    down = parse_probe(c.host("m1"), "@@kb-etcd health\n{\"level\":\"warn\"}\nhttps://127.0.0.1:2379 is unhealthy: "
                                     "failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\n"
                                     "rc 1\n@@kb-etcd status\n@@kb-etcd facts\ndata absent\n")
    assert not down.healthy and "unhealthy" in down.health_error and "level" not in down.health_error
    assert down.status is None and down.data_dir == "absent" and "NOT healthy" in down.describe()
