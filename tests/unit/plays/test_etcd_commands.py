"""etcd command lines and the parsers of etcdctl/etcdutl JSON (recorded from 3.4.23 and 3.5.1)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from kbuild import layout
from kbuild.plays.etcd_ops import commands
from kbuild.plays.etcd_ops.probe import parse_probe
from kbuild.render import host_files

from .etcd_fakes import cluster

STATUS_35 = '{"hash":80118854,"revision":4,"totalKey":9,"totalSize":20480}\n'
# etcdctl 3.4 prints its zap log on stderr; merged with 2>&1 it surrounds the JSON.
STATUS_34 = ('{"level":"info","ts":1.2,"caller":"snapshot/v3_snapshot.go:68","msg":"x"}\n'
             '{"hash":278880138,"revision":43,"totalKey":48,"totalSize":61440}\n')
ENDPOINT = ('[{"Endpoint":"https://127.0.0.1:2379","Status":{"header":{"cluster_id":17765137548823575923,'
            '"member_id":6090535317558273548,"revision":309,"raft_term":2},"version":"3.5.1","dbSize":20480,'
            '"leader":6090535317558273548,"raftIndex":370,"raftTerm":2,"raftAppliedIndex":370,"dbSizeInUse":16384}}]')
MEMBERS = ('{"header":{"cluster_id":10573478516335042203,"member_id":1,"raft_term":2},"members":['
           '{"ID":7974163431716721614,"name":"m1","peerURLs":["https://198.18.0.11:2380"],'
           '"clientURLs":["https://198.18.0.11:2379"]},'
           '{"ID":13070428467735918022,"peerURLs":["https://198.18.0.12:2380"],"isLearner":true}]}')


@pytest.mark.parametrize(("version", "tool"), [("3.4.23", "etcdctl"), ("3.5.1", "etcdutl"), ("v3.6.0", "etcdutl")])
def test_the_offline_tool_follows_the_etcd_version(version: str, tool: str) -> None:
    assert commands.snapshot_tool(version) == tool


def test_restore_command_matches_the_unit_each_member_runs(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    host = c.host("m2")
    line = commands.snapshot_restore(c, host, tool="etcdutl", snapshot="/var/lib/etcd.restore-1.db",
                                     data_dir="/var/lib/etcd", token=commands.restore_token(c, "20260101T000000Z"))
    argv = shlex.split(line)
    assert argv[:4] == ["ETCDCTL_API=3", str(layout.binary_path("etcdutl")), "snapshot", "restore"]
    flags = dict(a[2:].split("=", 1) for a in argv[5:])
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
    assert f"--cert={layout.ETCD_HEALTHCHECK_CLIENT_CERT}" in line


@pytest.mark.parametrize("text", [STATUS_35, STATUS_34])
def test_snapshot_status_is_read_from_either_version(text: str) -> None:
    status = commands.parse_snapshot_status(text)
    assert status.revision in (4, 43) and status.total_keys in (9, 48) and status.hash > 0


def test_snapshot_status_garbage_says_what_came() -> None:
    with pytest.raises(ValueError, match="no JSON"):
        commands.parse_snapshot_status("Error: snapshot file has wrong size")


def test_endpoint_status_and_member_list() -> None:
    (status,) = commands.parse_endpoint_status(ENDPOINT)
    assert status.is_leader and status.revision == 309 and status.version == "3.5.1"
    assert status.cluster_id == f"{17765137548823575923:x}"
    cluster_id, members = commands.parse_member_list(MEMBERS)
    assert cluster_id == f"{10573478516335042203:x}"
    assert members[0].name == "m1" and members[0].peer_urls == ("https://198.18.0.11:2380",)
    assert members[1].name == "" and members[1].learner


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
