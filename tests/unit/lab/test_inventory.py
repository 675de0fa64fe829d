"""The inventory `lab up` writes: kbuild's own format, valid by kbuild's own validation."""

from __future__ import annotations

from pathlib import Path

import yaml

from kbuild.inventory import load_cluster
from kbuild.lab.inventory import lab_inventory, render_inventory
from kbuild.lab.plan import make_plan


def test_inventory_data():
    plan = make_plan("lab", 1, 1)
    assert lab_inventory(plan, Path("/var/lib/kbuild/lab/lab/id_ed25519")) == {
        "cluster": {"name": "lab"},
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
