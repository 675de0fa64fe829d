"""Artifacts reaching hosts: push mode sends a file only when the host's sha256 differs; pull mode has hosts
download from the mirror and verify checksums themselves. Real parts: sshd, systemd, sha256sum and curl on
lab hosts; the mirror is served over HTTP on the lab bridge's own address (the hosts' gateway)."""

from __future__ import annotations

import pytest

from kbuild.inventory.model import Versions
from tests.integration.conftest import ClusterLab, inventory_with_mirror, run_kbuild
from tests.mirror.plugin import MirrorCopy
from tests.mirror.server import MirrorServer

pytestmark = pytest.mark.integration


def artifact_changes(events):
    return [(e["host"], e["resource"]) for e in events
            if e["event"] == "resource" and e["status"] == "changed" and e["resource"].startswith("artifact:")]


def test_push_sends_only_what_differs(cluster_lab: ClusterLab):
    code, events, stderr = cluster_lab.kbuild("bootstrap")
    assert code == 0, stderr
    assert artifact_changes(events) == []
    assert events[-1]["data"]["bytes_sent"] < 200_000  # scripts only: no binary went out again
    worker = next(m for m in cluster_lab.lab.machines if m.role == "worker")
    # A running binary cannot be written to (ETXTBSY): replace it, as a careless upgrade by hand would.
    tampered = cluster_lab.lab.exec(worker.name, "cp /usr/local/bin/kube-proxy /usr/local/bin/.kp && printf '#tampered'"
                                                 " >> /usr/local/bin/.kp && mv /usr/local/bin/.kp /usr/local/bin/kube-proxy")
    assert tampered.returncode == 0, tampered.stderr
    code, events, stderr = cluster_lab.kbuild("bootstrap")
    assert code == 0, stderr
    assert artifact_changes(events) == [(worker.name, "artifact:/usr/local/bin/kube-proxy")]
    assert [(e["host"], e["resource"]) for e in events if e["event"] == "handler"] == \
        [(worker.name, "service kube-proxy")]
    assert "#tampered" not in cluster_lab.lab.exec(worker.name, "tail -c 20 /usr/local/bin/kube-proxy").stdout


@pytest.fixture(scope="module")
def pull_lab(lab_factory, built_mirror, tmp_path_factory):
    handle = lab_factory("pull", masters=1, workers=1)
    mirror_copy = MirrorCopy(built_mirror.root, tmp_path_factory.mktemp("mirror") / "copy")
    with MirrorServer(mirror_copy.root, host=handle.gateway) as server:
        base = tmp_path_factory.mktemp("pull")
        inventory = inventory_with_mirror(handle.inventory, base / "inventory.yaml", mirror_copy.root,
                                          artifacts={"mirror": server.url, "transfer": "pull",
                                                     "cache_dir": str(base / "cache")})
        yield handle, inventory, base / "state", server, mirror_copy
    lab_factory.release(handle)


def test_pull_mode_hosts_download_and_verify(pull_lab):
    handle, inventory, state, server, _ = pull_lab
    server.reset()
    code, events, stderr = run_kbuild(["bootstrap", "-i", str(inventory), "--state-dir", str(state)])
    assert code == 0, stderr
    # The hosts fetched the binaries themselves (the controller read only checksum files).
    assert any(path.endswith("/kube-apiserver") for path in server.requests)
    assert any(path.startswith("/images/") and path.endswith(".tar") for path in server.requests)  # images too
    assert events[-1]["data"]["bytes_sent"] < 1_000_000
    master = next(m for m in handle.machines if m.role == "master")
    assert handle.exec(master.name, "/usr/local/bin/etcd --version").stdout.startswith(
        f"etcd Version: {Versions().etcd}")
    code, events, _ = run_kbuild(["bootstrap", "-i", str(inventory), "--state-dir", str(state)])
    assert code == 0 and artifact_changes(events) == []


def test_pull_mode_refuses_a_file_that_does_not_match_its_checksum(pull_lab):
    handle, inventory, state, server, mirror = pull_lab
    worker = next(m for m in handle.machines if m.role == "worker")
    relative = next(p.relative_to(mirror.root).as_posix() for p in mirror.root.rglob("kube-proxy")
                    if f"v{Versions().kubernetes}" in p.as_posix())
    original = mirror.read(relative)
    mirror.replace(relative, original + b"\n# not what was published\n")
    try:
        handle.exec(worker.name, "rm -f /usr/local/bin/kube-proxy")
        code, events, stderr = run_kbuild(["bootstrap", "-i", str(inventory), "--state-dir", str(state)])
        assert code == 1
        failed = [e for e in events if e["event"] == "resource" and e["status"] == "failed"]
        assert failed and failed[0]["resource"] == "artifact:/usr/local/bin/kube-proxy"
        assert "checksum mismatch" in failed[0]["message"]
        assert handle.exec(worker.name, "test -e /usr/local/bin/kube-proxy; echo $?").stdout.strip() == "1"
    finally:
        mirror.replace(relative, original)
    code, _, stderr = run_kbuild(["bootstrap", "-i", str(inventory), "--state-dir", str(state)])
    assert code == 0, stderr
