"""The inventory `lab up` writes: kbuild's own format, valid by kbuild's own validation."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from kbuild import layout
from kbuild.inventory import load_cluster
from kbuild.lab.inventory import (
    LAB_ADDONS,
    LAB_CONTAINERD_CONFIG,
    LAB_KUBE_PROXY_CONFIG,
    LAB_KUBELET_CONFIG,
    lab_inventory,
    render_inventory,
)
from kbuild.lab.topology import make_plan
from kbuild.render import host_files

APP = "kbuild.test/app:1.0"


def test_inventory_data():
    plan = make_plan("lab", 1, 1)
    assert lab_inventory(plan, Path("/var/lib/kbuild/lab/lab/id_ed25519")) == {
        "cluster": {"name": "lab", "kubelet_config": LAB_KUBELET_CONFIG, "kube_proxy_config": LAB_KUBE_PROXY_CONFIG,
                    "containerd_config": LAB_CONTAINERD_CONFIG, "addons": LAB_ADDONS},
        "ssh": {"user": "kbuild", "key_file": "/var/lib/kbuild/lab/lab/id_ed25519", "become": True},
        "hosts": {
            "lab-master-1": {"address": "198.18.0.10", "roles": ["etcd", "control-plane"]},
            "lab-worker-1": {"address": "198.18.0.11", "roles": ["worker"]},
        },
    }


def test_rendered_inventory_passes_validation(tmp_path):
    plan = make_plan("kbtest", 3, 2, "198.18.0.192/26")
    key = tmp_path / "id_ed25519"
    path = tmp_path / "inventory.yaml"
    path.write_text(render_inventory(plan, key))
    assert path.read_text().startswith("# kbuild inventory for lab 'kbtest'")
    cluster = load_cluster(path)
    assert cluster.name == "kbtest"
    assert [(h.name, str(h.address), h.role_names) for h in cluster.hosts] == [
        ("kbtest-master-1", "198.18.0.202", ["etcd", "control-plane"]),
        ("kbtest-master-2", "198.18.0.203", ["etcd", "control-plane"]),
        ("kbtest-master-3", "198.18.0.204", ["etcd", "control-plane"]),
        ("kbtest-worker-1", "198.18.0.205", ["worker"]),
        ("kbtest-worker-2", "198.18.0.206", ["worker"]),
    ]
    host = cluster.hosts[0]
    assert (host.ssh.user, host.ssh.become, host.ssh.key_file, host.ssh.port) == ("kbuild", True, str(key), 22)
    assert not cluster.warnings  # an odd etcd count, no warning
    assert yaml.safe_load(path.read_text())["ssh"].get("known_hosts") is None


def test_a_lab_node_is_set_up_for_a_container_on_a_shared_host(tmp_path):
    """What kind sets for its nodes, as inventory settings the rendered configs carry."""
    path = tmp_path / "inventory.yaml"
    path.write_text(render_inventory(make_plan("kbtest", 1, 1, "198.18.0.192/26"), tmp_path / "id_ed25519"))
    cluster = load_cluster(path)
    files = {f.path: f.content for f in host_files(cluster, cluster.host("kbtest-worker-1"))}
    kubelet = yaml.safe_load(files[layout.KUBELET_CONFIG])
    assert kubelet["failCgroupV1"] is False  # a host still on cgroup v1 runs its machines on v1 too
    assert kubelet["evictionHard"] == {"nodefs.available": "0%", "nodefs.inodesFree": "0%", "imagefs.available": "0%"}
    assert kubelet["imageGCHighThresholdPercent"] == 100  # images come from archives: nothing to pull back
    assert kubelet["authentication"]["anonymous"] == {"enabled": False}  # kbuild's own settings are kept
    assert yaml.safe_load(files[layout.KUBE_PROXY_CONFIG])["conntrack"]["maxPerCore"] == 0
    runtime = tomllib.loads(files[layout.CONTAINERD_CONFIG])["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cluster.settings.addons.coredns.forward == []  # the machines know no DNS server to forward to



def test_preloaded_images_and_a_mirror_go_into_artifacts(tmp_path):
    plan = make_plan("kb", 1, 1, "198.18.0.80/28")
    data = lab_inventory(plan, tmp_path / "id_ed25519", "/srv/mirror", [APP])
    assert data["artifacts"] == {"mirror": "/srv/mirror", "images": {"preload": [APP]}}
    path = tmp_path / "inventory.yaml"
    path.write_text(render_inventory(plan, tmp_path / "id_ed25519", "/srv/mirror", [APP]))
    assert load_cluster(path).artifacts.images.preload == [APP]
