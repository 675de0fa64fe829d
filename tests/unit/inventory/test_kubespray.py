"""kubespray inventories as kbuild reads them: who it logs in as and where, roles, addresses, every variable
either mapped to a kbuild setting or named in a warning."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from kbuild.errors import InventoryError
from kbuild.inventory import Role, load_cluster
from kbuild.inventory.ansible import kubespray_vars
from tests.unit.supported import KUBE

CORPUS = Path(__file__).parent / "ansible_corpus"
CP = "[kube_control_plane]\ncp1 ip=10.0.0.1\n[etcd]\ncp1\n[kube_node]\nw1 ip=10.0.0.2\n"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_group_vars_all_directory_decides_user_become_and_key():
    cluster = load_cluster(CORPUS / "07-group-vars-dir" / "hosts.ini")
    cp1 = cluster.host("cp1")
    assert cp1.ssh.user == "admin"  # zz-later.yml comes after all.yml in the directory
    assert cp1.ssh.become is True
    assert cp1.ssh.key_file == str(CORPUS / "07-group-vars-dir" / "keys/id_ed25519")
    assert str(cp1.address) == "192.0.2.21" and cp1.roles == {Role.CONTROL_PLANE, Role.ETCD}


def test_azurerm_output_connects_to_ansible_ssh_host_and_uses_ip_for_the_cluster():
    cluster = load_cluster(CORPUS / "06-azurerm-ssh-aliases" / "inventory")
    master0, master1, minion0 = (cluster.host(n) for n in ("master-0", "master-1", "minion-0"))
    assert (str(master0.address), master0.ssh.host) == ("172.16.0.10", "20.1.1.10")
    assert (master1.ssh.user, master1.ssh.port) == ("azureuser", 2200)
    assert master0.ssh.user == getpass.getuser()  # no ansible_user: Ansible's default, the local user
    assert minion0.ssh.key_file.endswith("/.ssh/azure") and minion0.roles == {Role.WORKER}
    assert any("ansible_user: not set for master-0, minion-0" in w for w in cluster.warnings), cluster.warnings


def test_host_vars_group_vars_of_a_group_and_extensionless_files_are_read():
    cluster = load_cluster(CORPUS / "08-host-vars-and-extensionless" / "hosts.ini")
    w1, w2, cp1 = cluster.host("w1"), cluster.host("w2"), cluster.host("cp1")
    assert (str(w1.address), w1.ssh.host, w1.ssh.port) == ("10.0.1.32", "192.0.2.32", 2201)
    assert w2.ssh.user == "worker"  # group_vars/kube_node.yml (deeper) beats group_vars/k8s_cluster
    assert cp1.ssh.user == "cluster"  # the extensionless group_vars/k8s_cluster
    assert cluster.settings.versions.kubernetes == "1.37.2"


def test_all_vars_in_the_inventory_lose_to_group_vars_all():
    cluster = load_cluster(CORPUS / "09-all-vars-vs-group-vars" / "hosts.ini")
    assert cluster.host("cp1").ssh.user == "fromgroupvars"


def test_ci_inventory_without_all_and_a_directory_and_ranges_load():
    ci = load_cluster(CORPUS / "05-ci-no-all-root" / "hosts.yml")
    assert ci.host("instance-1").roles == {Role.CONTROL_PLANE, Role.ETCD, Role.WORKER}
    assert any("kube_network_plugin: calico: calico is not installed by kbuild; the pod network is the bridge CNI"
               in w for w in ci.warnings), ci.warnings
    directory = load_cluster(CORPUS / "16-inventory-directory" / "inventory")
    assert [(h.name, h.ssh.user, h.ssh.port) for h in directory.hosts] == [("cp1", "override", 22),
                                                                          ("w1", "dirall", 2345)]


def test_a_kubespray_cluster_folder_maps_and_warns(tmp_path: Path):
    write(tmp_path / "mycluster", {
        "inventory.ini": CP + "[k8s_cluster:children]\nkube_control_plane\nkube_node\n",
        "group_vars/all/all.yml": "ansible_user: ubuntu\nansible_become: true\nbin_dir: /usr/local/bin\n"
                                  "loadbalancer_apiserver: {address: 10.0.0.100, port: 8443}\n"
                                  "apiserver_loadbalancer_domain_name: api.example.com\n",
        "group_vars/k8s_cluster/k8s-cluster.yml": (
            f"kube_version: v{KUBE}\nkube_network_plugin: calico\ncontainer_manager: crio\n"
            "etcd_deployment_type: docker\ncluster_name: prod\ndns_domain: \"{{ cluster_name }}.local\"\n"
            "kube_proxy_mode: ipvs\nkube_service_addresses: 10.233.0.0/18\nkube_pods_subnet: 10.233.64.0/18\n"
            "supplementary_addresses_in_ssl_keys: [10.0.0.200]\nmy_own_thing: 1\n"
            "kube_apiserver_node_port_range: 30000-32767\nkubelet_max_pods: 200\n"
            "dns_servers_weird: \"{{ groups['x'] | first }}\"\n"),
        "group_vars/k8s_cluster/addons.yml": "helm_enabled: true\nmetrics_server_enabled: false\n",
    })
    cluster = load_cluster(tmp_path / "mycluster" / "inventory.ini")
    s = cluster.settings
    assert cluster.name == "prod" and s.cluster_domain == "prod.local" and s.proxy_mode == "ipvs"
    assert str(s.service_cidr) == "10.233.0.0/18" and str(s.pod_cidr) == "10.233.64.0/18"
    assert s.api_endpoint == "api.example.com:8443"
    assert s.extra_sans == ["10.0.0.200", "api.example.com", "10.0.0.100"]
    assert s.extra_flags == {"kube-apiserver": {"service-node-port-range": "30000-32767"}}
    assert s.kubelet_config == {"maxPods": 200}
    cp1 = cluster.host("cp1")
    assert (cp1.ssh.user, cp1.ssh.become) == ("ubuntu", True)
    warnings = "\n".join(cluster.warnings)
    for expected in ("k8s-cluster.yml:2: kube_network_plugin: calico: calico is not installed by kbuild",
                     "k8s-cluster.yml:3: container_manager: crio: kbuild installs containerd",
                     "k8s-cluster.yml:4: etcd_deployment_type: docker: kbuild runs etcd on the host",
                     "all.yml:3: bin_dir: /usr/local/bin: kbuild uses its own fixed paths",
                     "addons.yml:1: helm_enabled: True: helm is not installed by kbuild",
                     "not settings kbuild reads, so ignored: my_own_thing ("):
        assert expected in warnings, warnings
    assert "metrics_server_enabled" not in warnings  # false: what kbuild does anyway
    assert "dns_servers_weird" in warnings and "Jinja expressions" in warnings


def test_dns_domain_referring_to_an_unset_variable_is_a_warning_not_a_silent_default(tmp_path: Path):
    write(tmp_path, {"hosts": CP, "group_vars/all.yml": "dns_domain: \"{{ cluster_name }}\"\n"})
    cluster = load_cluster(tmp_path / "hosts")
    assert any("dns_domain: '{{ cluster_name }}' refers to cluster_name, which the inventory does not set" in w
               for w in cluster.warnings), cluster.warnings


@pytest.mark.parametrize("variable,value,expected", [
    ("kube_version", KUBE, ("versions", "kubernetes", KUBE)),
    ("kube_network_node_prefix", 25, ("node_cidr_mask_size", None, 25)),
    ("kube_apiserver_port", 7443, ("api_port", None, 7443)),
    ("dns_domain", "corp.local", ("cluster_domain", None, "corp.local")),
    ("kube_proxy_mode", "nftables", ("proxy_mode", None, "nftables")),
    ("kubelet_fail_swap_on", False, ("fail_swap_on", None, False)),
    ("kube_encrypt_secret_data", False, ("encryption_at_rest", None, False)),
    ("kube_proxy_nodeport_addresses", ["10.0.0.0/8"], ("kube_proxy_config", "nodePortAddresses", ["10.0.0.0/8"])),
    ("upstream_dns_servers", ["192.0.2.53"], ("addons", "coredns", None)),
    ("kube_network_plugin", "cni", ("cni", None, "none")),
    ("dns_mode", "none", ("addons", "coredns", None)),
])
def test_each_mapped_variable_lands_in_its_setting(tmp_path: Path, variable, value, expected):
    import yaml
    write(tmp_path, {"hosts": CP, "group_vars/all.yml": yaml.safe_dump({variable: value})})
    settings = load_cluster(tmp_path / "hosts").settings
    first, second, result = expected
    found = getattr(settings, first)
    if second is not None:
        found = found[second] if isinstance(found, dict) else getattr(found, second)
    if variable == "upstream_dns_servers":
        assert found.forward == value
    elif variable == "dns_mode":
        assert found.enabled is False
    else:
        assert found == result


def test_etcd_data_dir_and_host_labels_and_taints(tmp_path: Path):
    write(tmp_path, {"hosts": CP, "group_vars/all.yml": "etcd_data_dir: /data/etcd\n",
                     "host_vars/w1.yml": "node_labels: {disk: ssd}\nnode_taints: ['dedicated=db:NoSchedule']\n"})
    cluster = load_cluster(tmp_path / "hosts")
    assert cluster.etcd.data_dir == "/data/etcd"
    assert cluster.host("w1").labels == {"disk": "ssd"} and cluster.host("w1").taints == ("dedicated=db:NoSchedule",)


def test_addresses_come_from_ip_then_access_ip_then_an_ip_ansible_host(tmp_path: Path):
    write(tmp_path, {"hosts": "[kube_control_plane]\ncp1 ip=10.0.0.1 access_ip=10.9.0.1 ansible_host=10.8.0.1\n"
                              "[etcd]\ncp1\n[kube_node]\nw1 access_ip=10.9.0.2 ansible_host=10.8.0.2\n"
                              "w2 ansible_host=10.8.0.3\n"})
    cluster = load_cluster(tmp_path / "hosts")
    assert [str(h.address) for h in cluster.hosts] == ["10.0.0.1", "10.9.0.2", "10.8.0.3"]
    assert [h.ssh.host for h in cluster.hosts] == ["10.8.0.1", "10.8.0.2", "10.8.0.3"]


def test_the_bastion_group_is_the_jump_host():
    cluster = load_cluster(CORPUS / "27-bastion" / "hosts.ini")
    bastion = cluster.host("cp1").ssh.bastion
    assert bastion is not None and (bastion.host, bastion.user) == ("203.0.113.5", "jump")
    assert {h.name for h in cluster.hosts} == {"cp1", "w1"}


def test_vault_files_and_values_are_named_in_warnings(tmp_path: Path):
    write(tmp_path, {"hosts": CP, "group_vars/all/vault.yml": "$ANSIBLE_VAULT;1.1;AES256\n3031\n",
                     "group_vars/all/main.yml": "ansible_user: ops\nansible_become_password: !vault |\n"
                                                "  $ANSIBLE_VAULT;1.1;AES256\n  3031\n"})
    cluster = load_cluster(tmp_path / "hosts")
    warnings = "\n".join(cluster.warnings)
    assert "group_vars/all/vault.yml:1: encrypted with ansible-vault: kbuild cannot read it" in warnings
    assert "main.yml:2: ansible_become_password: encrypted with ansible-vault (!vault)" in warnings
    assert cluster.host("cp1").ssh.user == "ops"


def test_old_group_names_map_to_roles():
    cluster = load_cluster(CORPUS / "03-kube-master-names" / "hosts")
    assert cluster.host("master1").roles == {Role.CONTROL_PLANE, Role.ETCD}
    assert cluster.host("worker2").roles == {Role.WORKER}


def test_k8s_cluster_group_vars_without_the_group_say_why_they_are_unused():
    cluster = load_cluster(CORPUS / "25-kubespray-mycluster" / "inventory.ini")
    assert any("group_vars/k8s_cluster: not used: the inventory has no group 'k8s_cluster'" in w and
               "add [k8s_cluster:children]" in w for w in cluster.warnings), cluster.warnings


def test_the_tables_do_not_overlap():
    tables = [set(kubespray_vars.MAPPED), set(kubespray_vars.MAPPED_SPECIALLY), set(kubespray_vars.WARNED),
              set(kubespray_vars.HOST_MAPPED)]
    for i, a in enumerate(tables):
        for b in tables[i + 1:]:
            assert not a & b, a & b


def test_a_node_name_with_dots_is_accepted_and_underscores_get_a_suggestion(tmp_path: Path):
    write(tmp_path, {"hosts": "[kube_control_plane]\ncp1.example.com ip=10.0.0.1\n[etcd]\ncp1.example.com\n"})
    assert load_cluster(tmp_path / "hosts").hosts[0].name == "cp1.example.com"
    write(tmp_path, {"hosts": "[kube_control_plane]\ncp_1 ip=10.0.0.1\n[etcd]\ncp_1\n"})
    with pytest.raises(InventoryError, match="host name 'cp_1' is not a valid node name .*; try 'cp-1'"):
        load_cluster(tmp_path / "hosts")


def test_the_readme_names_every_variable_of_the_tables():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Bringing an Ansible, kubespray or k0sctl inventory", 1)[1].split("\n## ", 1)[0]
    names = [*kubespray_vars.MAPPED, *kubespray_vars.MAPPED_SPECIALLY, *kubespray_vars.HOST_MAPPED,
             *kubespray_vars.WARNED, *kubespray_vars.WARNED_PREFIXES]
    missing = [name for name in names if f"`{name}`" not in section]
    assert not missing, f"README's mapping table lacks {missing}"
