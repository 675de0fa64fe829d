"""Malformed Ansible inventories: exit 2 with a message naming the file and the place, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbuild.cli import run
from kbuild.inventory import textfile

CP = "[kube_control_plane]\ncp1 ip=10.0.0.1\n[etcd]\ncp1\n"
CASES = [
    # (name, {file: text}, the file -i names, expected text, including the place)
    ("hosts as a list", {"hosts.yml": "all:\n  children:\n    etcd:\n      hosts: [node1]\n"}, "hosts.yml",
     "hosts.yml:4: all.children.etcd.hosts: must be a mapping, got a list: write `hosts: {node1: }`"),
    ("children as a list", {"hosts.yml": "all:\n  children: [etcd, kube_node]\n"}, "hosts.yml",
     "hosts.yml:2: all.children: must be a mapping, got a list"),
    ("vars as a list", {"hosts.yml": "kube_node:\n  hosts: {w1: }\n  vars: [a, b]\n"}, "hosts.yml",
     "hosts.yml:3: kube_node.vars: must be a mapping, got a list"),
    ("host vars as a list", {"hosts.yml": "kube_node:\n  hosts:\n    w1: [1, 2]\n"}, "hosts.yml",
     "hosts.yml:3: kube_node.hosts.w1: host 'w1': its variables must be a mapping, got a list"),
    ("host name a number", {"hosts.yml": "kube_node:\n  hosts:\n    1:\n"}, "hosts.yml",
     "hosts.yml:3: kube_node.hosts.1: host name 1 must be a string: quote it"),
    ("a YAML list", {"hosts.yml": "- node1\n- node2\n"}, "hosts.yml",
     "hosts.yml:1: the inventory must be a mapping: kbuild's (cluster, hosts) or an Ansible inventory's groups"),
    ("range with a letter and a number", {"hosts": CP + "[kube_node]\nnode[1:c]\n"}, "hosts",
     "hosts:6: [kube_node]: host range [1:c] in 'node[1:c]' is neither numbers nor single letters"),
    ("range of unequal widths", {"hosts": CP + "[kube_node]\nnode[01:100]\n"}, "hosts",
     "hosts:6: [kube_node]: host range [01:100] in 'node[01:100]': begin and end must have the same width"),
    ("range backwards", {"hosts": CP + "[kube_node]\nnode[3:1] ip=10.0.0.9\n"}, "hosts",
     "hosts:6: [kube_node]: host range [3:1] in 'node[3:1]' is empty"),
    ("range not closed", {"hosts.yml": "kube_node:\n  hosts:\n    'node[1:3':\n"}, "hosts.yml",
     "hosts.yml:3: kube_node.hosts.node[1:3: host range in 'node[1:3' has no closing ']'"),
    ("range step zero", {"hosts": CP + "[kube_node]\nnode[1:3:0]\n"}, "hosts",
     "hosts:6: [kube_node]: host range [1:3:0] in 'node[1:3:0]': the step must be at least 1"),
    ("group_vars file a list", {"hosts": CP, "group_vars/all.yml": "- a\n- b\n"}, "hosts",
     "group_vars/all.yml:1: a vars file must be a mapping of variable names to values, got list"),
    ("group_vars file not YAML", {"hosts": CP, "group_vars/etcd.yml": "a: [1\n"}, "hosts",
     "group_vars/etcd.yml:2: not valid YAML"),
    ("host_vars file a string", {"hosts": CP, "host_vars/cp1": "just text\n"}, "hosts",
     "host_vars/cp1:1: a vars file must be a mapping of variable names to values, got str"),
    ("a loop of children", {"hosts": CP + "[a:children]\nb\n[b:children]\na\n[a]\n"}, "hosts",
     "group 'a' as a child of 'b' makes a loop"),
    ("vars of an undefined group", {"hosts": CP + "[ghost:vars]\nx=1\n"}, "hosts",
     "hosts:5: [ghost:vars]: [ghost:vars] is for a group that is never defined"),
    ("children naming an undefined group", {"hosts": CP + "[k8s_cluster:children]\nkube_nod\n"}, "hosts",
     "hosts:6: [k8s_cluster:children]: [k8s_cluster:children] names group 'kube_nod', which is never defined"),
    ("unknown section type", {"hosts": CP + "[etcd:hostvars]\n"}, "hosts",
     "hosts:5: [etcd:hostvars]: unknown section type 'hostvars'"),
    ("section with a space", {"hosts": CP + "[kube node]\n"}, "hosts",
     "hosts:5: [kube node]: invalid section header '[kube node]'"),
    ("host variable without =", {"hosts": "[kube_control_plane]\ncp1 ip 10.0.0.1\n"}, "hosts",
     "hosts:2: [kube_control_plane]: expected key=value after the host name, got 'ip'"),
    ("group var without =", {"hosts": CP + "[etcd:vars]\njust_a_word\n"}, "hosts",
     "hosts:6: [etcd:vars]: expected key=value, got 'just_a_word'"),
    ("a port that is not one", {"hosts": "[kube_control_plane]\ncp1 ip=10.0.0.1 ansible_port=ssh\n[etcd]\ncp1\n"},
     "hosts", "hosts:2: ansible_port: cp1: 'ssh' is not a port"),
    ("become a user other than root",
     {"hosts": CP, "group_vars/all.yml": "ansible_become: true\nansible_become_user: deploy\n"}, "hosts",
     "group_vars/all.yml:2: ansible_become_user: cp1: 'deploy': kbuild runs commands as root through `sudo -n`"),
    ("become not a boolean", {"hosts": CP, "group_vars/all.yml": "ansible_become: maybe\n"}, "hosts",
     "group_vars/all.yml:1: ansible_become: cp1: 'maybe' is not a boolean"),
    ("a local connection", {"hosts": "[kube_control_plane]\ncp1 ip=10.0.0.1 ansible_connection=local\n[etcd]\ncp1\n"},
     "hosts", "hosts:2: ansible_connection: cp1: 'local': kbuild reaches every host over SSH"),
    ("a proxy mode typo", {"hosts": CP, "group_vars/all/k8s.yml": "kube_proxy_mode: nftable\n"}, "hosts",
     "group_vars/all/k8s.yml:1: kube_proxy_mode: 'nftable' is not a kube-proxy mode; did you mean 'nftables'?"),
    ("an unsupported version", {"hosts": CP, "group_vars/all.yml": "\nkube_version: v1.20.0\n"}, "hosts",
     "group_vars/all.yml:2: kube_version (cluster.versions.kubernetes): "),
    ("a bad pod subnet", {"hosts": CP + "[all:vars]\nkube_pods_subnet=10.0.0.0/33\n"}, "hosts",
     "hosts:6: kube_pods_subnet (cluster.pod_cidr): '10.0.0.0/33' is not a network"),
    ("a bad ip", {"hosts": "[kube_control_plane]\ncp1 ip=10.0.0.300\n[etcd]\ncp1\n"}, "hosts",
     "hosts:2: ip (hosts.cp1.address): '10.0.0.300' is not an IP address"),
    ("hosts that disagree on the version",
     {"hosts": CP + "[kube_node]\nw1 ip=10.0.0.2\n", "host_vars/w1.yml": "kube_version: 1.36.0\n",
      "group_vars/all.yml": "kube_version: 1.37.2\n"}, "hosts",
     "group_vars/all.yml:1: kube_version: differs between hosts"),
    ("no address at all", {"hosts": "[kube_control_plane]\ncp1.example.com\n[etcd]\ncp1.example.com\n"}, "hosts",
     "hosts:2: cp1.example.com: host cp1.example.com has no address: set `ip`"),
    ("--list JSON with a bad group", {"hosts.json": '{"_meta": {"hostvars": {}},\n "etcd": {"hosts": "cp1"}}\n'},
     "hosts.json", "hosts.json:2: etcd.hosts: must be a list of names"),
    ("an inventory plugin's configuration", {"aws_ec2.yml": "plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n"},
     "aws_ec2.yml", "aws_ec2.yml:1: plugin: this configures the inventory plugin 'amazon.aws.aws_ec2'"),
    ("an inventory script", {"inventory.py": "#!/usr/bin/env python3\nprint('{}')\n"}, "inventory.py",
     "inventory.py:1: an inventory script: kbuild does not run it"),
    ("no kubespray group", {"hosts": "[web]\nw1 ip=10.0.0.1\n"}, "hosts", "no host is in a kubespray group"),
]


@pytest.mark.parametrize("files,source,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_inventory_exits_2_naming_file_and_place(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          files: dict[str, str], source: str, expected: str):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    code = run(["inventory", "check", "-i", str(tmp_path / source)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert "internal error" not in err and "Traceback" not in err
    assert f"{tmp_path}/{expected}" in err or expected in err and str(tmp_path) in err, err


@pytest.mark.parametrize("kind", ["fifo", "huge", "not utf-8"])
def test_a_vars_file_that_cannot_be_read_whole_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  kind: str) -> None:
    # group_vars are read as the inventory is: a FIFO would block forever, a huge file be read whole.
    (tmp_path / "hosts").write_text(CP)
    (tmp_path / "group_vars").mkdir()
    vars_file = tmp_path / "group_vars" / "all.yml"
    if kind == "fifo":
        os.mkfifo(vars_file)
        expected = "not a regular file (a device or a FIFO)"
    elif kind == "huge":
        with vars_file.open("wb") as handle:
            handle.truncate(textfile.MAX_BYTES + 1)  # sparse: costs no disk
        expected = "larger than 8 MiB; not an Ansible vars file"
    else:
        vars_file.write_bytes(b"a: \xff\n")
        expected = "not UTF-8 text (byte 3: invalid start byte)"
    code = run(["inventory", "check", "-i", str(tmp_path / "hosts")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert f"{vars_file}: {expected}" in err, err
    assert "Traceback" not in err and "internal error" not in err
