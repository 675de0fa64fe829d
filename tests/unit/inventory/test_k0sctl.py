"""k0sctl.yaml files load as kbuild clusters: roles, SSH, bastion, version, networks, API address, flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.errors import InventoryError
from kbuild.inventory import Role, load_cluster

EXAMPLES = Path(__file__).parent / "k0sctl_examples"
ALL = {Role.ETCD, Role.CONTROL_PLANE, Role.WORKER}


def test_the_basic_example():
    cluster = load_cluster(EXAMPLES / "basic.yaml")
    assert cluster.name == "k0s-cluster" and cluster.settings.versions.kubernetes == "1.37.2"
    controller, worker = cluster.hosts
    assert (controller.name, controller.roles, str(controller.address)) == (
        "controller-1", {Role.ETCD, Role.CONTROL_PLANE}, "10.0.0.1")
    assert (worker.name, worker.roles) == ("worker-1", {Role.WORKER})
    assert (controller.ssh.user, controller.ssh.port) == ("root", 22)
    assert controller.ssh.key_file is not None and controller.ssh.key_file.endswith("/.ssh/id_rsa")


def test_bastion_private_address_flags_and_cluster_config():
    cluster = load_cluster(EXAMPLES / "bastion-flags-hooks.yaml")
    cp = cluster.host("cp1.example.com")
    assert cp.roles == ALL and str(cp.address) == "172.16.0.11" and cp.ssh.host == "cp1.public.example.com"
    assert (cp.ssh.user, cp.ssh.port, cp.ssh.key_file) == ("k0s", 2222, str(EXAMPLES / "keys/cp1"))
    assert cp.ssh.bastion is not None and (cp.ssh.bastion.host, cp.ssh.bastion.user) == ("203.0.113.9", "jump")
    assert cp.labels == {"zone": "a", "disk": "ssd"} and cp.taints == ("dedicated=edge:NoSchedule",)
    assert cp.extra_flags == {"kubelet": {"max-pods": "150"}}
    s = cluster.settings
    assert (str(s.pod_cidr), str(s.service_cidr), s.proxy_mode) == ("10.244.0.0/16", "10.96.0.0/12", "ipvs")
    assert s.api_endpoint == "api.example.com" and s.extra_sans == ["192.0.2.50"]
    warnings = "\n".join(cluster.warnings)
    for expected in ("bastion-flags-hooks.yaml:24: hooks: cp1.example.com: kbuild runs no hooks",
                     "bastion-flags-hooks.yaml:27: files: cp1.example.com: kbuild uploads no extra files",
                     "bastion-flags-hooks.yaml:31: environment: cp1.example.com: kbuild sets no environment",
                     "installFlags: --debug: a k0s flag with no kbuild equivalent; dropped",
                     "installFlags: --kubelet-extra-args: the kubelet has no flag --no-such-flag; dropped",
                     "network.provider: calico: calico is not installed by kbuild"):
        assert expected in warnings, warnings


def test_single_and_a_custom_network():
    cluster = load_cluster(EXAMPLES / "single.yaml")
    assert cluster.hosts[0].roles == ALL and cluster.settings.cni == "none"


@pytest.mark.parametrize("change,expected", [
    (("role: worker", "role: minion"), "'minion' is not a k0sctl role"),
    (("address: 10.0.0.2", "address: worker.example.com"), "'worker.example.com' is a name: set privateAddress"),
    (("version: 1.37.2+k0s.0", "version: latest"), "'latest' is not a k0s version"),
    (("version: 1.37.2+k0s.0", "version: 1.20.1+k0s.0"), "spec.k0s.version (cluster.versions.kubernetes)"),
])
def test_bad_k0sctl_files_name_the_place(tmp_path: Path, change, expected):
    path = tmp_path / "k0sctl.yaml"
    path.write_text((EXAMPLES / "basic.yaml").read_text().replace(*change))
    with pytest.raises(InventoryError) as caught:
        load_cluster(path)
    assert expected in str(caught.value) and f"{path}:" in str(caught.value), str(caught.value)
