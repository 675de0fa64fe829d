"""The etcd facts against etcdctl's real output (3.4, 3.5, 3.6, --hex, IPv6, an unstarted learner) and against
what comes back when a member cannot be reached or the output is garbage."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kbuild.engine.session import QueryError
from kbuild.engine.ssh import Result
from kbuild.plays.clusterfacts import etcd_members, etcd_status, etcd_version
from kbuild.plays.clusterfacts.version import Version
from kbuild.plays.etcd_ops.commands import member_names
from kbuild.plays.etcd_ops.health import membership_problems

RECORDED = Path(__file__).parent / "recorded"
CLUSTER_ID = f"{12994138546084183722:x}"
# The recorded members by endpoint, and who led when each version was recorded.
IDS = {"http://127.0.0.77:23791": f"{11948501402612527631:x}", "http://127.0.0.78:23791": f"{14668376414443388228:x}",
       "http://127.0.0.79:23791": f"{1232740359453244196:x}"}
LEADER = {"3.4": "http://127.0.0.79:23791", "3.5": "http://127.0.0.79:23791", "3.6": "http://127.0.0.77:23791"}
VERSION = {"3.4": "3.4.34", "3.5": "3.5.35", "3.6": "3.6.16"}


def recorded(name: str) -> str:
    return (RECORDED / name).read_text()


@pytest.mark.parametrize("etcd", ["3.4", "3.5", "3.6"])
def test_endpoint_status_of_every_version(etcd: str) -> None:
    statuses = etcd_status.parse(recorded(f"etcd-{etcd}-endpoint-status.json"))
    assert {s.endpoint: s.member_id for s in statuses} == IDS  # IDs past 2**63 read exactly
    assert [s.endpoint for s in statuses if s.is_leader] == [LEADER[etcd]]
    assert {(s.cluster_id, s.version, s.revision, s.raft_term, s.raft_index) for s in statuses} == {
        (CLUSTER_ID, VERSION[etcd], 2, 2, 9)}
    assert all(s.leader_id == IDS[LEADER[etcd]] and s.db_size >= 20480 for s in statuses)
    named = etcd_status.named(statuses, {"http://127.0.0.77:23791": "m1"})
    assert [s.name for s in named] == ["http://127.0.0.79:23791", "m1", "http://127.0.0.78:23791"]


@pytest.mark.parametrize("etcd", ["3.4", "3.5", "3.6"])
def test_member_list_of_every_version(etcd: str) -> None:
    listing = etcd_members.parse(recorded(f"etcd-{etcd}-member-list.json"))
    assert listing.cluster_id == CLUSTER_ID
    assert {m.client_urls: m.id for m in listing.members} == {(url,): i for url, i in IDS.items()}
    assert [m.name for m in listing.members] == ["m3", "m1", "m2"] and not any(m.learner for m in listing.members)
    assert listing.members[1].peer_urls == ("http://127.0.0.77:23801",)


@pytest.mark.parametrize("etcd", ["3.5", "3.6"])
def test_member_list_with_hex_ids_reads_the_same(etcd: str) -> None:
    # --hex prints IDs as hex strings; 3.5 also spells the client URLs' key "clientURLS".
    listing = etcd_members.parse(recorded(f"etcd-{etcd}-member-list-hex.json"))
    (member,) = listing.members
    assert (listing.cluster_id, member.id) == ("5c9f331cc9581de5", "3940266226c16ed")
    assert member.client_urls == ("http://127.0.0.77:23791",)


@pytest.mark.parametrize("etcd", ["3.5", "3.6"])
def test_a_learner_never_started_has_no_name_and_no_client_urls(etcd: str) -> None:
    members = etcd_members.parse(recorded(f"etcd-{etcd}-member-list-learner.json")).members
    (learner,) = [m for m in members if m.learner]
    assert learner.name == "" and learner.client_urls == () and learner.peer_urls == ("http://127.0.0.78:23801",)
    assert [m.name for m in members if not m.learner] == ["m1"]


@pytest.fixture
def ipv6_cluster(cluster_from):
    return cluster_from("""\
        cluster: {name: t}
        hosts:
          m1: {address: 'fd00::1', roles: [etcd, control-plane]}
          m2: {address: 'fd00::2', roles: [etcd]}
          m3: {address: 'fd00::3', roles: [etcd]}
        """)


def test_ipv6_endpoints_are_named_after_their_hosts(ipv6_cluster) -> None:
    statuses = etcd_status.parse(recorded("etcd-3.6-endpoint-status-ipv6.json"))
    named = etcd_status.named(statuses, member_names(ipv6_cluster))
    assert [(s.name, s.endpoint, s.is_leader) for s in named] == [
        ("m3", "https://[fd00::3]:2379", False), ("m1", "https://[fd00::1]:2379", True),
        ("m2", "https://[fd00::2]:2379", False)]
    listing = etcd_members.parse(recorded("etcd-3.6-member-list-ipv6.json"))
    assert membership_problems(ipv6_cluster, listing.members) == []  # peer URLs match the inventory's


@pytest.mark.parametrize("etcd", ["3.5", "3.6"])
def test_an_unreachable_member_is_one_line_naming_the_host_and_what_etcdctl_said(etcd: str) -> None:
    *stderr, stdout = recorded(f"etcd-{etcd}-endpoint-status-unreachable.txt").splitlines()
    query = etcd_status.query(None, every_member=True)  # type: ignore[arg-type]  # no cluster needed to read
    with pytest.raises(QueryError) as info:
        query.read("m2", Result(1, stdout.encode(), "\n".join(stderr).encode()))
    message = str(info.value)
    assert "\n" not in message and message.startswith("m2: etcd endpoint status failed (exit 1): ")
    assert "Failed to get the status of endpoint http://127.0.0.79:23791" in message


@pytest.mark.parametrize(("output", "says"), [
    ("", "no JSON in the output: (empty)"),
    ("Error: context deadline exceeded", "no JSON in the output: Error: context deadline exceeded"),
    ("null", "the JSON has no 'Endpoint': null"),  # what 3.6 prints when no endpoint answered
    ('{"Endpoint": "e"}', "expected a list of endpoints"),
    ('[{"Endpoint": "https://198.18.0.10:2379"}]', "'Status'"),
    ('[{"Endpoint": "e", "Status": {"header": {"member_id": "xyz"}}}]', "invalid literal for int() with base 16"),
])
def test_garbage_endpoint_status_says_what_came(output: str, says: str) -> None:
    query = etcd_status.query(None)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="^m1: unexpected etcd endpoint status output: ") as info:
        query.read("m1", Result(0, output.encode(), b""))
    assert says in str(info.value)


def test_garbage_member_list_says_what_came() -> None:
    query = etcd_members.query(None)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match=r"^m1: unexpected etcd member list output: expected a member list: \[\]"):
        query.read("m1", Result(0, b"[]", b""))


def test_json_log_lines_before_the_document_are_skipped() -> None:
    log = '{"level":"warn","ts":"2026-12-03T05:38:40Z","msg":"retrying of unary invoker failed"}\n'
    assert len(etcd_status.parse(log + recorded("etcd-3.6-endpoint-status.json"))) == 3
    assert etcd_members.parse(log + recorded("etcd-3.6-member-list.json")).cluster_id == CLUSTER_ID


def test_the_version_query_is_a_command_curl_accepts() -> None:
    # Run by the real curl: against this machine's port 2379, where nothing listens, it gets as far as
    # connecting. Exit 2 is curl refusing its own arguments (it has no --option=value form).
    proc = subprocess.run(["sh", "-c", etcd_version.COMMAND], capture_output=True, text=True, timeout=30)
    assert proc.returncode not in (0, 2), proc.stderr
    assert "is unknown" not in proc.stderr and "try 'curl --help'" not in proc.stderr, proc.stderr
    assert etcd_version.parse('{"etcdserver":"3.6.16","etcdcluster":"3.6.0"}') == Version.parse("3.6.0")
