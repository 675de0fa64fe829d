"""The repository's inventories and Vagrantfile: every inventory validates, and each agrees with what it describes.

Real parts: kbuild's inventory validation; Ruby evaluating the real Vagrantfile (only Vagrant.configure
is stubbed, to read the host list it computes); Debian's vagrant and vagrant-libvirt running
`vagrant validate`. tests/run.sh installs vagrant and sets KBUILD_REQUIRE_VAGRANT=1, so in CI those
checks fail rather than skip when the tools are missing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kbuild.cli import run
from kbuild.inventory import load_cluster
from kbuild.lab import vagrant
from kbuild.lab.inventory import lab_inventory
from kbuild.lab.paths import LABS_DIR, LabPaths
from kbuild.lab.topology import DEFAULT_NAME, DEFAULT_SUBNET, make_plan
from kbuild.plays.preflight import MIN_CPUS_CONTROL_PLANE, MIN_MEMORY_MB

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = REPO / "inventories"
VAGRANTFILE = REPO / "Vagrantfile"


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("KBUILD_REQUIRE_VAGRANT", "") not in ("", "0"):
            pytest.fail(f"KBUILD_REQUIRE_VAGRANT is set but {tool} is not installed", pytrace=False)
        pytest.skip(f"{tool} is not installed (tests/run.sh installs vagrant, which brings ruby)")
    return path


# -- every inventory ---------------------------------------------------------------------------------------------

def test_the_repository_has_the_three_inventories():
    assert sorted(p.name for p in INVENTORIES.glob("*.yaml")) == ["ha.yaml", "lab.yaml", "vagrant.yaml"]


@pytest.mark.parametrize("path", sorted(INVENTORIES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_inventory_validates_without_warnings(path):
    cluster = load_cluster(path)
    assert cluster.warnings == ()
    assert cluster.control_plane_hosts and cluster.etcd_hosts and cluster.worker_hosts


def test_ha_example_is_three_stacked_masters_behind_an_endpoint_and_three_workers():
    cluster = load_cluster(INVENTORIES / "ha.yaml")
    masters = [h for h in cluster.hosts if h.is_control_plane]
    assert len(masters) == 3 and all(h.is_etcd for h in masters)  # stacked etcd, an odd member count
    assert cluster.etcd_hosts == masters
    assert len(cluster.worker_hosts) == 3 and not any(h.is_control_plane for h in cluster.worker_hosts)
    assert cluster.settings.api_endpoint
    assert cluster.api_endpoint_host not in {str(h.address) for h in masters}  # a load balancer, not a master
    assert cluster.api_server_url == "https://kube-api.example.com:6443"


def test_lab_inventory_is_what_the_default_lab_writes():
    written = lab_inventory(make_plan(DEFAULT_NAME, 1, 2, DEFAULT_SUBNET), LabPaths.for_lab(DEFAULT_NAME, LABS_DIR).key)
    assert yaml.safe_load((INVENTORIES / "lab.yaml").read_text()) == written
    assert written["ssh"]["key_file"] == "/var/lib/kbuild/lab/lab/id_ed25519"


def test_lab_inventory_with_an_artifacts_mirror(tmp_path, cluster_from):
    plan = make_plan("kb", 1, 1, "198.18.0.80/28")
    data = lab_inventory(plan, tmp_path / "id_ed25519", "/srv/mirror")
    assert data["artifacts"] == {"mirror": "/srv/mirror"}
    assert cluster_from(yaml.safe_dump(data, sort_keys=False)).artifacts.mirror == "/srv/mirror"
    assert "artifacts" not in lab_inventory(plan, tmp_path / "id_ed25519")


def test_lab_up_refuses_a_missing_artifacts_mirror_before_anything(tmp_path, capsys):
    assert run(["lab", "up", "--name", "kb8never", "--artifacts-mirror", str(tmp_path / "nope")]) == 2
    assert "--artifacts-mirror" in capsys.readouterr().err
    assert not (LABS_DIR / "kb8never").exists()


# -- the Vagrantfile and inventories/vagrant.yaml ------------------------------------------------------------------

def vagrantfile_defaults() -> dict[str, str]:
    """The DEFAULTS hash of the Vagrantfile, read as text (no Ruby needed)."""
    text = VAGRANTFILE.read_text()
    block = re.search(r"^DEFAULTS = \{\n(.*?)^\}", text, re.S | re.M)
    assert block, "the Vagrantfile must keep its settings in a `DEFAULTS = { ... }` hash"
    pairs = re.findall(r'^\s*"(KBUILD_VAGRANT_[A-Z]+)"\s*=>\s*"([^"]*)",', block.group(1), re.M)
    return dict(pairs)


def vagrantfile_constant(name: str) -> int:
    match = re.search(rf"^{name} = (\d+)\b", VAGRANTFILE.read_text(), re.M)
    assert match, f"the Vagrantfile must define {name}"
    return int(match.group(1))


def expected_hosts(masters: int, workers: int, subnet: str) -> list[dict[str, str]]:
    network = vagrant.parse_subnet(subnet)
    hosts = [("master", i) for i in range(1, masters + 1)] + [("worker", i) for i in range(1, workers + 1)]
    return [{"name": f"{role}-{i}", "role": role, "ip": str(vagrant.machine_address(network, role, i))}
            for role, i in hosts]


def test_vagrantfile_settings_and_scheme_match_kbuild():
    defaults = vagrantfile_defaults()
    assert set(defaults) == {f"KBUILD_VAGRANT_{k}" for k in ("MASTERS", "WORKERS", "SUBNET", "BOX", "MEMORY", "CPUS")}
    assert (defaults["KBUILD_VAGRANT_MASTERS"], defaults["KBUILD_VAGRANT_WORKERS"]) == ("1", "2")
    assert defaults["KBUILD_VAGRANT_SUBNET"] == vagrant.DEFAULT_SUBNET == "192.168.56.0/24"
    assert vagrant.SUBNET_ENV in defaults
    assert vagrantfile_constant("MASTER_OFFSET") == vagrant.MASTER_OFFSET
    assert vagrantfile_constant("WORKER_OFFSET") == vagrant.WORKER_OFFSET
    # Machines made with the defaults pass kbuild's preflight as control planes.
    assert int(defaults["KBUILD_VAGRANT_MEMORY"]) > MIN_MEMORY_MB["control-plane"] + 200  # the kernel keeps some
    assert int(defaults["KBUILD_VAGRANT_CPUS"]) >= MIN_CPUS_CONTROL_PLANE


def test_vagrant_inventory_matches_the_vagrantfile_defaults():
    defaults = vagrantfile_defaults()
    masters, workers = int(defaults["KBUILD_VAGRANT_MASTERS"]), int(defaults["KBUILD_VAGRANT_WORKERS"])
    cluster = load_cluster(INVENTORIES / "vagrant.yaml")
    got = [{"name": h.name, "role": "master" if h.is_control_plane else "worker", "ip": str(h.address)}
           for h in cluster.hosts]
    assert got == expected_hosts(masters, workers, defaults["KBUILD_VAGRANT_SUBNET"])
    subnet = ipaddress.ip_network(defaults["KBUILD_VAGRANT_SUBNET"])
    for host in cluster.hosts:
        assert host.address in subnet
        assert host.role_names == (["etcd", "control-plane"] if host.name.startswith("master-") else ["worker"])
        # Vagrant's per-machine key (VirtualBox, the default provider), reached on the private address.
        assert host.ssh.key_file == str(INVENTORIES / ".." / ".vagrant/machines" / host.name / "virtualbox/private_key")
        ssh = (host.ssh.user, host.ssh.become, host.ssh.host, host.ssh.port)
        assert ssh == ("vagrant", True, str(host.address), 22)


def test_vagrant_inventory_command_agrees_with_the_static_inventory():
    """For the default machines, `kbuild lab vagrant-inventory` gives the same hosts, roles, addresses and keys;
    only the way in differs (Vagrant's forwarded ports instead of the private address)."""
    config = "".join(
        f"Host {name}\n  HostName 127.0.0.1\n  User vagrant\n  Port {port}\n"
        f"  IdentityFile {INVENTORIES / '..' / '.vagrant/machines' / name / 'virtualbox/private_key'}\n"
        for name, port in (("master-1", 2222), ("worker-1", 2200), ("worker-2", 2201)))
    subnet = vagrant.parse_subnet(vagrant.DEFAULT_SUBNET)
    generated = vagrant.vagrant_inventory(vagrant.parse_ssh_config(config), subnet)
    static = yaml.safe_load((INVENTORIES / "vagrant.yaml").read_text())
    assert generated["cluster"] == static["cluster"] and generated["ssh"] == static["ssh"]
    assert list(generated["hosts"]) == list(static["hosts"])
    for name, host in static["hosts"].items():
        other = generated["hosts"][name]
        assert (other["address"], other["roles"]) == (host["address"], host["roles"])
        assert Path(other["ssh"]["key_file"]).resolve() == (INVENTORIES / host["ssh"]["key_file"]).resolve()


# -- Ruby and Vagrant on the real Vagrantfile ---------------------------------------------------------------------

# Stub only Vagrant.configure: the Vagrantfile's own Ruby computes KBUILD_HOSTS before it.
RUBY_HOSTS = ('module Vagrant; def self.configure(*) end; end; load ARGV[0]; require "json"; '
              'puts JSON.dump(KBUILD_HOSTS)')


def vagrantfile_hosts(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    ruby = _require("ruby")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KBUILD_VAGRANT_")}
    return subprocess.run([ruby, "-e", RUBY_HOSTS, str(VAGRANTFILE)], env={**clean, **env}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("env", "masters", "workers", "subnet"), [
    ({}, 1, 2, "192.168.56.0/24"),
    ({"KBUILD_VAGRANT_MASTERS": "3", "KBUILD_VAGRANT_WORKERS": "3"}, 3, 3, "192.168.56.0/24"),
    ({"KBUILD_VAGRANT_MASTERS": "9", "KBUILD_VAGRANT_WORKERS": "0", "KBUILD_VAGRANT_SUBNET": "10.20.0.0/16"},
     9, 0, "10.20.0.0/16"),
    ({"KBUILD_VAGRANT_WORKERS": "5", "KBUILD_VAGRANT_SUBNET": "172.16.8.0/26"}, 1, 5, "172.16.8.0/26"),
])
def test_vagrantfile_computes_the_hosts_kbuild_expects(env, masters, workers, subnet):
    result = vagrantfile_hosts(env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected_hosts(masters, workers, subnet)


def test_vagrantfile_defaults_evaluated_by_ruby_are_the_static_inventory():
    result = vagrantfile_hosts({})
    assert result.returncode == 0, result.stderr
    static = load_cluster(INVENTORIES / "vagrant.yaml")
    assert [(h["name"], h["ip"]) for h in json.loads(result.stdout)] == [(h.name, str(h.address)) for h in static.hosts]


@pytest.mark.parametrize(("env", "message"), [
    ({"KBUILD_VAGRANT_MASTERS": "10"}, "at most 9 masters"),
    ({"KBUILD_VAGRANT_MASTERS": "0"}, "KBUILD_VAGRANT_MASTERS must be at least 1"),
    ({"KBUILD_VAGRANT_WORKERS": "two"}, 'KBUILD_VAGRANT_WORKERS="two" is not a whole number'),
    ({"KBUILD_VAGRANT_SUBNET": "192.168.56.0/28", "KBUILD_VAGRANT_WORKERS": "1"}, "no room for 1 workers"),
    ({"KBUILD_VAGRANT_SUBNET": "nonsense"}, "is not a network like"),
])
def test_vagrantfile_refuses_bad_settings_in_one_line(env, message):
    result = vagrantfile_hosts(env)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def vagrant_validate(directory: Path, provider: str,
                     path_prefix: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = _require("vagrant")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KBUILD_VAGRANT_")}
    env.update(VAGRANT_DEFAULT_PROVIDER=provider, VAGRANT_CWD=str(directory), VAGRANT_CHECKPOINT_DISABLE="1")
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env.get('PATH', '/usr/bin:/bin')}"
    return subprocess.run([binary, "validate"], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def vbox_version_stub(tmp_path: Path) -> Path:
    """VirtualBox is not packaged for Debian: a VBoxManage that only answers Vagrant's version probe, so
    `vagrant validate` runs Vagrant's own VirtualBox settings validator (it refuses an unusable provider)."""
    bin_dir = tmp_path / "vbox-bin"
    bin_dir.mkdir()
    stub = bin_dir / "VBoxManage"
    stub.write_text('#!/bin/sh\necho "7.0.14r161095"\n')
    stub.chmod(0o755)
    return bin_dir


@pytest.fixture
def vagrant_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(VAGRANTFILE, project / "Vagrantfile")  # vagrant validate writes .vagrant/ beside it
    return project


@pytest.mark.parametrize("provider", ["libvirt", "virtualbox"])
def test_vagrant_validate(provider, vagrant_project, vbox_version_stub):
    result = vagrant_validate(vagrant_project, provider, vbox_version_stub if provider == "virtualbox" else None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


@pytest.mark.parametrize(("provider", "setting", "section"), [
    ("libvirt", "lv.cpus", "Libvirt Provider"),
    ("virtualbox", "vb.cpus", "VirtualBox Provider"),
])
def test_vagrant_validate_catches_a_bad_provider_setting(provider, setting, section, vagrant_project,
                                                         vbox_version_stub):
    """The check has teeth: a misspelt provider setting fails `vagrant validate`."""
    path = vagrant_project / "Vagrantfile"
    text = path.read_text()
    assert f"{setting} = cpus" in text
    path.write_text(text.replace(f"{setting} = cpus", f"{setting}x = cpus"))
    result = vagrant_validate(vagrant_project, provider, vbox_version_stub if provider == "virtualbox" else None)
    assert result.returncode != 0
    assert section in result.stderr and "cpusx" in result.stderr
