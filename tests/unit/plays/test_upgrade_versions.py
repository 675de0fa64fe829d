"""Versions read from hosts: recorded probe output in, what runs where out; and the probe script itself."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from kbuild.errors import UsageError
from kbuild.plays.clusterfacts import etcd_status, etcd_version
from kbuild.plays.clusterfacts import nodes as node_facts
from kbuild.plays.upgrade.nodes import ANNOTATION, cordoned_by_kbuild
from kbuild.plays.clusterfacts.installed import MARK
from kbuild.plays.clusterfacts.installed import parse as parse_probe
from kbuild.plays.upgrade.running import Version, host_components, probe_script
from tests.unit.supported import CONTAINERD, ETCD_PREVIOUS, ETCD_VERSION, KUBE, KUBE_PREVIOUS, short, step

# The version lines are the test mirror's binaries' `--version`, as the probe prints them (first 3 lines
# joined): etcd 3.6.16, kube-apiserver 1.37.2, kube-controller-manager 1.36.3 (replaced, not restarted yet),
# containerd 2.4.2.
MASTER = """\
@@kbuild-version etcd version etcd Version: 3.6.16 Git SHA: Not provided (use ./build instead of go build) Go Version: go1.26.8
@@kbuild-version etcd active active
@@kbuild-version etcd started @1795776378
@@kbuild-version etcd mtime 1795776377
@@kbuild-version kube-apiserver version Kubernetes v1.37.2
@@kbuild-version kube-apiserver active active
@@kbuild-version kube-apiserver started @1795776386
@@kbuild-version kube-apiserver mtime 1795776386
@@kbuild-version kube-controller-manager version Kubernetes v1.36.3
@@kbuild-version kube-controller-manager active active
@@kbuild-version kube-controller-manager started @1795776395
@@kbuild-version kube-controller-manager mtime 1795776399
@@kbuild-version kube-scheduler version absent
@@kbuild-version kube-scheduler active inactive
@@kbuild-version kube-scheduler started
@@kbuild-version kube-scheduler mtime
"""
WORKER = """\
@@kbuild-version containerd version containerd github.com/containerd/containerd/v2 v2.4.2
@@kbuild-version containerd active active
@@kbuild-version containerd started @1795776403
@@kbuild-version containerd mtime 1795776022
@@kbuild-version kubelet version known 1.37.2
@@kbuild-version kubelet active failed
@@kbuild-version kubelet started @0
@@kbuild-version kubelet mtime 1795776402
"""
ETCD_35 = ("etcd Version: 3.5.35\nGit SHA: Not provided (use ./build instead of go build)\nGo Version: go1.26.8\n"
           "Go OS/Arch: linux/amd64\n")
# A rolling upgrade half done, recorded on loopback: m1 still at 3.5.35, m2 at 3.6.16 and the leader
# (`etcdctl endpoint status -w json`, and m2's /version).
MIXED = ('[{"Endpoint":"http://127.0.0.1:23791","Status":{"header":{"cluster_id":6136682073650644037,"member_id":'
         '8645782499530242234,"revision":1,"raft_term":4},"version":"3.5.35","dbSize":24576,"leader":'
         '11539305337000706507,"raftIndex":11,"raftTerm":4,"raftAppliedIndex":11,"dbSizeInUse":16384}},'
         '{"Endpoint":"http://127.0.0.1:23792","Status":{"header":{"cluster_id":6136682073650644037,"member_id":'
         '11539305337000706507,"revision":1,"raft_term":4},"version":"3.6.16","dbSize":20480,"leader":'
         '11539305337000706507,"raftIndex":11,"raftTerm":4,"raftAppliedIndex":11,"dbSizeInUse":16384,'
         '"storageVersion":"3.5.0","dbSizeQuota":2147483648,"downgradeInfo":{}}}]')
MIXED_VERSION = '{"etcdserver":"3.6.16","etcdcluster":"3.5.0","storage":"3.5.0"}'


def test_the_recordings_are_of_the_mirror_s_releases():
    assert Version.find(MASTER) == Version.parse(ETCD_VERSION) and f"v{KUBE}" in MASTER
    assert f"v{KUBE_PREVIOUS}" in MASTER and f"v{CONTAINERD}" in WORKER and Version.find(ETCD_35) == Version.parse(
        ETCD_PREVIOUS)


@pytest.fixture
def cluster(cluster_from):
    return cluster_from("""\
        cluster: {name: t}
        hosts:
          m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
          e1: {address: 198.18.0.11, roles: [etcd]}
          w1: {address: 198.18.0.12, roles: [worker]}
        """)


def test_versions_parse_compare_and_refuse_nonsense():
    new = Version.parse(KUBE)
    assert Version.parse(f"v{KUBE}") == new and str(new) == KUBE
    assert Version(1, new.minor, 10) > Version(1, new.minor, 9) > Version(1, new.minor - 1, 99)
    assert Version.parse(step(KUBE, -2)).minors_to(new) == 2 and new.minors_to(Version.parse(KUBE_PREVIOUS)) == -1
    assert Version.find(ETCD_35) == Version.parse(ETCD_PREVIOUS)
    assert Version.find("Go Version: go1.26.8") is None  # a Go version is not the component's
    with pytest.raises(UsageError, match="not a version like"):
        Version.parse(short(KUBE))


def test_probe_output_gives_version_unit_state_and_pending_restarts():
    found = parse_probe("m1", MASTER)
    etcd = found.get("etcd")
    assert (etcd.version, etcd.active, etcd.stale) == (Version.parse(ETCD_VERSION), True, False)
    # Binary written in the same second the process started: the normal case after a restart.
    assert found.get("kube-apiserver").at(Version.parse(KUBE))
    # Binary newer than the process: replaced, but the old one still runs.
    kcm = found.get("kube-controller-manager")
    assert kcm.stale and not kcm.at(Version.parse(KUBE_PREVIOUS)) and "restart pending" in kcm.describe()
    scheduler = found.get("kube-scheduler")
    assert not scheduler.present and scheduler.describe() == "not installed"


def test_a_binary_known_by_checksum_and_a_failed_unit():
    found = parse_probe("w1", WORKER)
    assert found.get("containerd").version == Version.parse(CONTAINERD)
    kubelet = found.get("kubelet")
    assert kubelet.version == Version.parse(KUBE) and not kubelet.active and not kubelet.at(Version.parse(KUBE))
    assert "not running" in kubelet.describe()


def test_each_host_is_probed_for_its_roles_only(cluster):
    assert [c.name for c in host_components(cluster.host("e1"))] == ["etcd"]
    assert [c.name for c in host_components(cluster.host("m1"))] == [
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    assert [c.name for c in host_components(cluster.host("w1"))] == ["containerd", "kubelet", "kube-proxy"]


def test_the_probe_script_runs_in_sh_and_reports_absent_binaries(cluster):
    # Nothing is installed here under /usr/local/bin/etcd in the test environment: the script must
    # still run to the end under dash/sh and report every component.
    script = probe_script(cluster.host("e1")).replace("/usr/local/bin/etcd", "/nonexistent/etcd")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert f"{MARK} etcd version absent" in out
    assert not parse_probe("e1", out).get("etcd").present


def test_a_known_checksum_spares_running_the_binary(cluster, tmp_path):
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'etcd Version: 9.9.9'\n")
    fake.chmod(0o755)
    sha = hashlib.sha256(fake.read_bytes()).hexdigest()
    base = probe_script(cluster.host("e1"), {"etcd": (sha, ETCD_VERSION)}).replace("/usr/local/bin/etcd", str(fake))
    out = subprocess.run(["sh", "-c", base], capture_output=True, text=True, check=True).stdout
    assert parse_probe("e1", out).get("etcd").version == Version.parse(ETCD_VERSION)  # the checksum, not the run
    other = probe_script(cluster.host("e1"), {"etcd": ("0" * 64, ETCD_VERSION)})
    other = other.replace("/usr/local/bin/etcd", str(fake))
    out = subprocess.run(["sh", "-c", other], capture_output=True, text=True, check=True).stdout
    assert parse_probe("e1", out).get("etcd").version == Version(9, 9, 9)  # another binary: asked for real


def test_etcd_leader_and_cluster_version_from_recorded_output():
    members = etcd_status.named(etcd_status.parse(MIXED), {"http://127.0.0.1:23791": "m1",
                                                           "http://127.0.0.1:23792": "m2"})
    assert [(m.name, m.is_leader, str(m.version)) for m in members] == [("m1", False, ETCD_PREVIOUS),
                                                                      ("m2", True, ETCD_VERSION)]
    assert etcd_version.parse(MIXED_VERSION) == Version.parse(step(ETCD_PREVIOUS, 0))  # the lowest member's minor
    assert etcd_version.parse("not json") is None


def test_nodes_from_kubectl_json():
    text = json.dumps({"items": [
        {"metadata": {"name": "w1", "annotations": {ANNOTATION: KUBE}}, "spec": {"unschedulable": True},
         "status": {"nodeInfo": {"kubeletVersion": f"v{KUBE_PREVIOUS}"},
                    "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "w2"}, "spec": {}, "status": {"conditions": []}},
    ]})
    nodes = node_facts.parse(text)
    assert cordoned_by_kbuild(nodes["w1"]) and nodes["w1"].unschedulable and nodes["w1"].ready
    assert nodes["w1"].kubelet == Version.parse(KUBE_PREVIOUS)
    assert not nodes["w2"].ready and nodes["w2"].kubelet is None and not cordoned_by_kbuild(nodes["w2"])
