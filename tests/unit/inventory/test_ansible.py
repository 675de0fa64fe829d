"""Ansible (kubespray-style) inventories, INI and YAML, become kbuild clusters."""

from __future__ import annotations

import textwrap

import pytest

from kbuild.errors import InventoryError
from kbuild.inventory import Role, load_cluster
from tests.unit.supported import KUBE, KUBE_PREVIOUS

INI = f"""\
# kubespray-style inventory
[all]
node1 ansible_host=203.0.113.1 ip=10.0.0.1 ansible_user=ubuntu
node2 ansible_host=203.0.113.2 ip=10.0.0.2 ansible_port=2222
node3 ip=10.0.0.3 ansible_ssh_private_key_file=keys/node3

[kube_control_plane]
node1

[etcd]
node1
node2
node3

[kube_node]
node2
node3

[bastion]
jump ansible_host=203.0.113.100 ansible_user=ops

[k8s_cluster:children]
kube_control_plane
kube_node

[all:vars]
ansible_become=true
kube_version=v{KUBE_PREVIOUS}
kube_service_addresses=10.233.0.0/18
kube_pods_subnet=10.234.64.0/18
"""

YAML = """\
all:
  hosts:
    cp1: {ansible_host: 10.1.0.1, ip: 10.1.0.1}
    w1: {ansible_host: 10.1.0.2}
  vars:
    kube_proxy_mode: nftables
  children:
    kube_control_plane:
      hosts: {cp1: }
    kube_node:
      hosts: {w1: }
    etcd:
      hosts: {cp1: }
    k8s_cluster:
      children:
        kube_control_plane:
        kube_node:
      vars:
        dns_domain: corp.local
"""


def test_ini_inventory(tmp_path):
    folder = tmp_path / "mycluster"
    folder.mkdir()
    (folder / "hosts.ini").write_text(INI)
    cluster = load_cluster(folder / "hosts.ini")
    assert cluster.name == "mycluster"
    hosts = {h.name: h for h in cluster.hosts}
    assert set(hosts) == {"node1", "node2", "node3"}  # the bastion is not a cluster member
    assert hosts["node1"].roles == {Role.CONTROL_PLANE, Role.ETCD}
    assert hosts["node2"].roles == {Role.ETCD, Role.WORKER}
    assert str(hosts["node1"].address) == "10.0.0.1" and hosts["node1"].ssh.host == "203.0.113.1"
    assert hosts["node1"].ssh.user == "ubuntu" and hosts["node1"].ssh.become
    assert hosts["node2"].ssh.port == 2222
    assert hosts["node3"].ssh.key_file == str(folder / "keys/node3")
    assert hosts["node1"].ssh.bastion is not None and hosts["node1"].ssh.bastion.host == "203.0.113.100"
    assert cluster.settings.versions.kubernetes == KUBE_PREVIOUS
    assert str(cluster.settings.service_cidr) == "10.233.0.0/18"


def test_yaml_inventory_with_group_vars(tmp_path):
    folder = tmp_path / "prod"
    (folder / "group_vars" / "k8s_cluster").mkdir(parents=True)
    (folder / "group_vars" / "k8s_cluster" / "k8s-cluster.yml").write_text(
        f"kube_version: v{KUBE}\ncluster_name: cluster.local\nkube_network_node_prefix: 25\n"
        "kube_pods_subnet: 10.233.64.0/18\nkube_service_addresses: '{{ some_jinja }}'\n")
    (folder / "hosts.yaml").write_text(YAML)
    cluster = load_cluster(folder / "hosts.yaml")
    assert cluster.name == "prod"
    assert cluster.settings.versions.kubernetes == KUBE
    assert cluster.settings.node_cidr_mask_size == 25
    assert str(cluster.settings.service_cidr) == "10.32.0.0/24"  # the Jinja value is left to Ansible
    assert cluster.settings.proxy_mode == "nftables" and cluster.settings.cluster_domain == "corp.local"
    w1 = cluster.host("w1")
    assert str(w1.address) == "10.1.0.2" and w1.roles == {Role.WORKER}


def test_a_group_vars_file_kbuild_cannot_read_is_named_in_a_warning(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162636465\n: [\n")
    (tmp_path / "hosts.yaml").write_text(YAML)
    cluster = load_cluster(tmp_path / "hosts.yaml")
    assert any("group_vars/all.yml:1: encrypted with ansible-vault: kbuild cannot read it" in w
               for w in cluster.warnings), cluster.warnings


def test_ansible_host_without_address(tmp_path):
    (tmp_path / "hosts.ini").write_text("[kube_control_plane]\ncp1\n[etcd]\ncp1\n")
    with pytest.raises(InventoryError, match=r"hosts.ini:2: cp1: host cp1 has no address: set `ip`"):
        load_cluster(tmp_path / "hosts.ini")


def test_ansible_ranges_become_hosts(tmp_path):
    (tmp_path / "hosts.ini").write_text("[kube_control_plane]\ncp1 ip=10.0.0.1\n[etcd]\ncp1\n"
                                        "[kube_node]\nnode[1:3]\n")
    (tmp_path / "host_vars").mkdir()
    for n in (1, 2, 3):
        (tmp_path / "host_vars" / f"node{n}.yml").write_text(f"ip: 10.0.1.{n}\n")
    cluster = load_cluster(tmp_path / "hosts.ini")
    assert [(h.name, str(h.address)) for h in cluster.hosts] == [
        ("cp1", "10.0.0.1"), ("node1", "10.0.1.1"), ("node2", "10.0.1.2"), ("node3", "10.0.1.3")]


def test_a_range_in_a_variable_is_not_expanded_and_the_literal_is_refused(tmp_path):
    # As in Ansible: only the host pattern is a range; ansible_host=10.0.1.[1:3] is that text, no address.
    (tmp_path / "hosts.ini").write_text("[kube_control_plane]\ncp1 ip=10.0.0.1\n[etcd]\ncp1\n"
                                        "[kube_node]\nnode[1:2] ip=10.0.1.9 ansible_host=10.0.1.[1:2]\n")
    with pytest.raises(InventoryError, match=r"ansible_host \(hosts.node1.ssh.host\): '10.0.1.\[1:2\]' is neither"):
        load_cluster(tmp_path / "hosts.ini")


def test_ansible_values_are_validated_like_native(tmp_path):
    (tmp_path / "hosts.ini").write_text(textwrap.dedent("""\
        [kube_control_plane]
        cp1 ip=10.0.0.999
        [etcd]
        cp1
        """))
    with pytest.raises(InventoryError, match=r"hosts.ini:2: ip \(hosts.cp1.address\): '10.0.0.999' is not an IP"):
        load_cluster(tmp_path / "hosts.ini")
