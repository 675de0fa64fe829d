"""`kbuild lab vagrant-inventory`: recorded `vagrant ssh-config` output in, a valid kbuild inventory out."""

from __future__ import annotations

import io
import ipaddress

import pytest
import yaml

from kbuild.cli import run
from kbuild.errors import UsageError
from kbuild.inventory import load_cluster
from kbuild.lab import vagrant

# As Vagrant 2.3 prints them (templates/commands/ssh_config/config.erb), blank lines included.
VIRTUALBOX = """\
Host master-1
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no

  IdentityFile /home/ann/kbuild/.vagrant/machines/master-1/virtualbox/private_key

  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

Host worker-1
  HostName 127.0.0.1
  User vagrant
  Port 2200
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /home/ann/kbuild/.vagrant/machines/worker-1/virtualbox/private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host worker-2
  HostName 127.0.0.1
  User vagrant
  Port 2201
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /home/ann/kbuild/.vagrant/machines/worker-2/virtualbox/private_key
  IdentitiesOnly yes
  LogLevel FATAL
"""

# libvirt: the management network's address on port 22; three masters, listed out of order, a path with a space.
LIBVIRT = """\
Host worker-1
  HostName 192.168.121.77
  User vagrant
  Port 22
  IdentityFile "/home/ann/my labs/.vagrant/machines/worker-1/libvirt/private_key"
  IdentitiesOnly yes
Host master-3
  HostName 192.168.121.45
  User vagrant
  Port 22
  IdentityFile "/home/ann/my labs/.vagrant/machines/master-3/libvirt/private_key"
Host master-1
  HostName 192.168.121.43
  User vagrant
  Port 22
  IdentityFile "/home/ann/my labs/.vagrant/machines/master-1/libvirt/private_key"
Host master-2
  HostName=192.168.121.44
  user vagrant
  port 22
  IdentityFile "/home/ann/my labs/.vagrant/machines/master-2/libvirt/private_key"
"""

SUBNET = ipaddress.ip_network(vagrant.DEFAULT_SUBNET)


def test_parse_blocks_keeps_every_value_in_order():
    entries = vagrant.parse_ssh_config(VIRTUALBOX)
    assert [e.name for e in entries] == ["master-1", "worker-1", "worker-2"]
    first = entries[0]
    assert (first.first("hostname"), first.first("PORT"), first.first("User")) == ("127.0.0.1", "2222", "vagrant")
    assert first.options["identityfile"] == ["/home/ann/kbuild/.vagrant/machines/master-1/virtualbox/private_key"]
    assert first.first("ProxyCommand") is None


def test_quoted_paths_and_key_equals_value():
    entries = {e.name: e for e in vagrant.parse_ssh_config(LIBVIRT)}
    assert entries["master-2"].first("HostName") == "192.168.121.44"
    assert entries["worker-1"].first("IdentityFile") == \
        "/home/ann/my labs/.vagrant/machines/worker-1/libvirt/private_key"


def test_virtualbox_inventory_maps_names_roles_addresses_and_ssh():
    inventory = vagrant.vagrant_inventory(vagrant.parse_ssh_config(VIRTUALBOX), SUBNET)
    assert inventory["cluster"] == {"name": "vagrant"}
    assert inventory["ssh"] == {"user": "vagrant", "become": True}
    assert inventory["hosts"] == {
        "master-1": {"address": "192.168.56.11", "roles": ["etcd", "control-plane"],
                     "ssh": {"host": "127.0.0.1", "port": 2222,
                             "key_file": "/home/ann/kbuild/.vagrant/machines/master-1/virtualbox/private_key"}},
        "worker-1": {"address": "192.168.56.21", "roles": ["worker"],
                     "ssh": {"host": "127.0.0.1", "port": 2200,
                             "key_file": "/home/ann/kbuild/.vagrant/machines/worker-1/virtualbox/private_key"}},
        "worker-2": {"address": "192.168.56.22", "roles": ["worker"],
                     "ssh": {"host": "127.0.0.1", "port": 2201,
                             "key_file": "/home/ann/kbuild/.vagrant/machines/worker-2/virtualbox/private_key"}},
    }


def test_libvirt_three_masters_sorted_on_another_subnet_and_valid(tmp_path):
    subnet = ipaddress.ip_network("10.42.0.0/24")
    inventory = vagrant.vagrant_inventory(vagrant.parse_ssh_config(LIBVIRT), subnet, "ha-lab")
    assert list(inventory["hosts"]) == ["master-1", "master-2", "master-3", "worker-1"]
    assert [h["address"] for h in inventory["hosts"].values()] == ["10.42.0.11", "10.42.0.12", "10.42.0.13",
                                                                   "10.42.0.21"]
    path = tmp_path / "inv.yaml"
    path.write_text(vagrant.render_vagrant_inventory(inventory, subnet, "test"))
    cluster = load_cluster(path)  # kbuild's own validation, as `kbuild bootstrap` would load it
    assert cluster.name == "ha-lab"
    assert len(cluster.etcd_hosts) == 3 and not cluster.warnings
    master = cluster.host("master-1")
    assert (master.ssh.host, master.ssh.port, master.ssh.user, master.ssh.become) == \
        ("192.168.121.43", 22, "vagrant", True)
    assert master.ssh.key_file == "/home/ann/my labs/.vagrant/machines/master-1/libvirt/private_key"
    assert str(master.address) == "10.42.0.11"


def test_first_identity_file_wins_and_other_user_is_kept():
    text = ("Host worker-3\n  HostName 10.0.0.5\n  User debian\n  Port 2022\n"
            "  IdentityFile /p/machine_key\n  IdentityFile /home/ann/.vagrant.d/insecure_private_key\n"
            "Host master-1\n  HostName 10.0.0.4\n  User vagrant\n  Port 22\n  IdentityFile /p/m1\n")
    hosts = vagrant.vagrant_inventory(vagrant.parse_ssh_config(text), SUBNET)["hosts"]
    assert hosts["worker-3"]["ssh"] == {"host": "10.0.0.5", "port": 2022, "user": "debian",
                                        "key_file": "/p/machine_key"}
    assert hosts["worker-3"]["address"] == "192.168.56.23"


@pytest.mark.parametrize(("text", "message"), [
    ("", "lists no machines"),
    ("Host web-1\n  HostName 1.2.3.4\n", "'web-1' is neither master-N nor worker-N"),
    ("Host master-0\n  HostName 1.2.3.4\n", "'master-0' is neither master-N nor worker-N"),
    ("Host worker-1\n  HostName 1.2.3.4\n", "no master-N machine"),
    ("  HostName 1.2.3.4\nHost master-1\n", "line 1: 'HostName 1.2.3.4' comes before any `Host` line"),
    ("Host master-1 worker-1\n", "names 2 hosts"),
    ("Host master-1\n  Port\n", "line 2: 'Port' is not `Keyword value`"),
    ("Host master-1\n  Port 99999\n", "Port '99999' is not a TCP port"),
    ("Host master-1\n  IdentityFile \"/a b\n", "unbalanced quotes"),
    ("Host master-1\nHost master-1\n", "appears twice"),
    ("Host master-10\n", "numbers masters 1 to 9"),
    ("Host master-1\n  ProxyCommand ssh -W %h:%p jump\n", "ProxyCommand ssh -W %h:%p jump"),
    ("Match host x\n", "`Match` blocks"),
])
def test_bad_ssh_config_is_a_clear_usage_error(text, message):
    with pytest.raises(UsageError) as exc:
        vagrant.vagrant_inventory(vagrant.parse_ssh_config(text), SUBNET)
    assert message in str(exc.value)


def test_address_scheme_limits():
    small = ipaddress.ip_network("192.168.56.0/28")  # .0-.15: room for masters, none for workers
    assert str(vagrant.machine_address(small, "master", 4)) == "192.168.56.14"
    with pytest.raises(UsageError, match="no address at offset .21"):
        vagrant.machine_address(small, "worker", 1)
    with pytest.raises(UsageError, match="not a network in CIDR form"):
        vagrant.parse_subnet("192.168.56.1/24")
    with pytest.raises(UsageError, match="IPv4"):
        vagrant.parse_subnet("fd00::/64")
    with pytest.raises(UsageError, match="DNS label"):
        vagrant.vagrant_inventory(vagrant.parse_ssh_config(VIRTUALBOX), SUBNET, "Bad_Name")


def test_cli_from_file_writes_a_loadable_inventory(tmp_path, capsys):
    source = tmp_path / "ssh-config"
    source.write_text(VIRTUALBOX)
    out = tmp_path / "vagrant.yaml"
    assert run(["lab", "vagrant-inventory", "--from", str(source), "--subnet", "192.168.57.0/24",
                "--cluster-name", "dev", "-o", str(out)]) == 0
    assert f"wrote {out} (3 hosts)" in capsys.readouterr().err
    text = out.read_text()
    assert text.startswith("# kbuild inventory for the Vagrant lab")
    cluster = load_cluster(out)
    assert cluster.name == "dev"
    assert [(h.name, str(h.address), h.ssh.port) for h in cluster.hosts] == [
        ("master-1", "192.168.57.11", 2222), ("worker-1", "192.168.57.21", 2200), ("worker-2", "192.168.57.22", 2201)]


def test_cli_reads_stdin_and_subnet_from_the_vagrantfile_variable(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(VIRTUALBOX))
    monkeypatch.setenv(vagrant.SUBNET_ENV, "10.9.8.0/24")
    assert run(["lab", "vagrant-inventory", "--from", "-"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["hosts"]["worker-2"]["address"] == "10.9.8.22"


def test_cli_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys):
    assert run(["lab", "vagrant-inventory", "--from", str(tmp_path / "missing")]) == 2
    assert "cannot read it" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.write_text("Host db-1\n")
    assert run(["lab", "vagrant-inventory", "--from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "'db-1' is neither master-N nor worker-N" in err and "Traceback" not in err
    monkeypatch.setenv("PATH", str(tmp_path))  # no vagrant anywhere
    assert run(["lab", "vagrant-inventory"]) == 2
    assert "vagrant is not installed" in capsys.readouterr().err


def test_cli_runs_vagrant_ssh_config_in_the_vagrant_dir(tmp_path, monkeypatch, capsys):
    # A stand-in for the vagrant program: it prints recorded output when run as `vagrant ssh-config`
    # from the Vagrantfile's directory, and fails like Vagrant does otherwise.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "recorded").write_text(VIRTUALBOX)
    fake = bin_dir / "vagrant"
    fake.write_text(f"#!/bin/sh\n[ \"$*\" = ssh-config ] && [ -f Vagrantfile ] && exec cat {tmp_path}/recorded\n"
                    "echo 'A Vagrant environment or target machine is required to run this command.' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    (project / "Vagrantfile").write_text("# empty\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert run(["lab", "vagrant-inventory", "--vagrant-dir", str(project)]) == 0
    assert "master-1:" in capsys.readouterr().out
    assert run(["lab", "vagrant-inventory", "--vagrant-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "`vagrant ssh-config` failed (exit 1): A Vagrant environment" in err
    assert "vagrant up" in err
