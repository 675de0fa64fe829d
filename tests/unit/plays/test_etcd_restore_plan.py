"""The restore plan, decided before anything is touched: every refusal, and what the plan says it will do."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from kbuild.errors import ExitCode
from kbuild.plays.clusterfacts.etcd_status import EndpointStatus
from kbuild.plays.etcd_ops.probe import HostProbe
from kbuild.plays.etcd_ops.restore_plan import RestoreRefused, build_plan
from kbuild.plays.etcd_ops.snapfile import FORMAT, FileCheck

from tests.unit.supported import ETCD_PREVIOUS, ETCD_RELEASES, ETCD_VERSION, step

from .etcd_fakes import cluster

CHECK = FileCheck(size=10_000_000, sha256="ab" * 32, page_size=4096, txid=9)
STAMP = "20260101T000000Z"


def probe(name: str, *, healthy: bool = True, leader: bool = False, tools=("etcdctl", "etcdutl"),
          free_kb: int = 10_000_000, data: str = "member", mountpoint: bool = False) -> HostProbe:
    status = EndpointStatus("https://127.0.0.1:2379", "c1", name, name if leader else "x", 10, 2, 10, 1, ETCD_VERSION)
    return HostProbe(name, True, healthy, "" if healthy else "no quorum", status if healthy else None, data,
                     mountpoint, frozenset(tools), free_kb, {"etcd": "active"})


def probes(c, **overrides) -> dict[str, HostProbe | None]:
    found: dict[str, HostProbe | None] = {h.name: probe(h.name, leader=h.name == "m1") for h in c.etcd_hosts}
    found.update(overrides)
    return found


def metadata(**changes) -> dict:
    return {"format": FORMAT, "cluster": "demo", "etcd_version": ETCD_VERSION, "revision": 42, "total_keys": 7,
            "time": "2026-01-01T00:00:00.000Z", "member": "m2", "reason": "manual", "sha256": CHECK.sha256, **changes}


def test_plan_for_three_members(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    plan = build_plan(c, tmp_path / "s.db", CHECK, metadata(), probes(c), STAMP)
    assert [m.host for m in plan.members] == ["m1", "m2", "m3"]
    assert plan.tool == "etcdutl" and plan.token == "demo-etcd-restore-20260101T000000Z"
    assert plan.pre_snapshot_from == "m1" and plan.control_planes == ("m1", "m2", "m3")
    m2 = plan.member("m2")
    assert (m2.aside, m2.upload) == (f"/var/lib/etcd.before-restore-{STAMP}", f"/var/lib/etcd.restore-{STAMP}.db")
    argv = shlex.split(m2.restore_command)
    assert "--name=m2" in argv and "--initial-advertise-peer-urls=https://198.18.0.12:2380" in argv
    assert f"--initial-cluster-token={plan.token}" in argv and m2.upload in argv
    text = "\n".join(plan.describe())
    for expected in ("m1: /var/lib/etcd -> /var/lib/etcd.before-restore-", "take a snapshot of the running cluster",
                     "new cluster token demo-etcd-restore-", "revision 42", "put back"):
        assert expected in text, expected


@pytest.mark.parametrize("etcd", ETCD_RELEASES)
def test_every_supported_etcd_restores_with_etcdutl(tmp_path: Path, etcd: str) -> None:
    c = cluster(tmp_path, etcd=etcd)
    plan = build_plan(c, tmp_path / "s.db", CHECK, metadata(etcd_version=etcd), probes(c), STAMP)
    assert plan.tool == "etcdutl" and "/usr/local/bin/etcdutl snapshot restore" in plan.members[0].restore_command


def test_a_snapshot_of_the_previous_etcd_minor_restores_into_the_inventory_s(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    plan = build_plan(c, tmp_path / "s.db", CHECK, metadata(etcd_version=ETCD_PREVIOUS), probes(c), STAMP)
    assert [m.host for m in plan.members] == ["m1", "m2", "m3"]


def test_unreachable_members_are_all_named_and_exit_4(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    with pytest.raises(RestoreRefused) as info:
        build_plan(c, tmp_path / "s.db", CHECK, metadata(), probes(c, m2=None, m3=None), STAMP)
    assert "m2: unreachable" in str(info.value) and "m3: unreachable" in str(info.value)
    assert "nothing was changed" in str(info.value) and info.value.exit_code == ExitCode.UNREACHABLE


@pytest.mark.parametrize(("meta", "probe_changes", "reason"), [
    (metadata(cluster="prod"), {}, "the snapshot is of cluster 'prod'"),
    (metadata(etcd_version=step(ETCD_VERSION, 1)), {}, f"newer than the inventory's {ETCD_VERSION}"),
    (metadata(sha256="cd" * 32), {}, "differs from the one in its metadata"),
    (metadata(), {"m3": probe("m3", tools=("etcdctl",))}, "m3: no etcdutl"),
    (metadata(), {"m2": probe("m2", mountpoint=True)}, "m2: /var/lib/etcd is a mount point"),
    (metadata(), {"m1": probe("m1", free_kb=1000)}, "m1: 0 MiB free next to /var/lib/etcd"),
])
def test_refusals(tmp_path: Path, meta: dict, probe_changes: dict, reason: str) -> None:
    c = cluster(tmp_path)
    with pytest.raises(RestoreRefused) as info:
        build_plan(c, tmp_path / "s.db", CHECK, meta, probes(c, **probe_changes), STAMP)
    assert reason in str(info.value) and info.value.exit_code == ExitCode.FAILED


def test_an_unhealthy_cluster_is_restored_without_a_snapshot_first_and_says_so(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    sick = {f"m{i}": probe(f"m{i}", healthy=False) for i in (1, 2, 3)}
    plan = build_plan(c, tmp_path / "s.db", CHECK, metadata(), probes(c, **sick), STAMP)
    assert plan.pre_snapshot_from is None
    assert "NO snapshot of the current state" in "\n".join(plan.describe())


def test_without_metadata_the_plan_notes_what_cannot_be_checked(tmp_path: Path) -> None:
    c = cluster(tmp_path, masters=1)
    absent = probe("m1", data="absent")
    plan = build_plan(c, tmp_path / "s.db", CHECK, None, probes(c, m1=absent), STAMP)
    assert plan.notes and "no metadata" in plan.notes[0]
    assert not plan.members[0].has_data and "does not exist (nothing to move)" in "\n".join(plan.describe())
