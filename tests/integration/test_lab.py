"""`kbuild lab` end to end. Real parts: systemd-nspawn, Debian's systemd and OpenSSH sshd in the machines,
overlayfs, a Linux bridge, paramiko on the controller; containerd and runc from the test mirror (built from
source). Traffic goes only to lab addresses in 198.18.0.0/24."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import paramiko
import pytest

from kbuild.artifacts.catalogue import containerd_release, runc_release
from kbuild.artifacts.mirror import mirror_relative_path
from kbuild.cli import run as cli
from kbuild.inventory import load_cluster
from kbuild.inventory.model import Versions
from kbuild.lab import cgroups
from kbuild.lab.machine import alive, find_nspawns, ssh_answers
from kbuild.lab.mounts import mounts_under
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own(lab_factory):
    """A lab of this module's own: the last test here takes it down (and checks nothing is left)."""
    handle = lab_factory("own", masters=1, workers=1)
    yield handle
    lab_factory.release(handle)


def ssh(address: str, key_file: Path, known_hosts: Path, user: str = "kbuild") -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())  # the lab's generated host keys must match
    client.connect(address, username=user, key_filename=str(key_file), look_for_keys=False, allow_agent=False,
                   timeout=10)
    return client


def remote(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _, out, err = client.exec_command(command, timeout=30)
    text = out.read().decode()
    return out.channel.recv_exit_status(), text + err.read().decode()


def test_machines_answer_ssh_as_kbuild_with_sudo(own):
    assert [m.name for m in own.machines] == [f"{own.name}-master-1", f"{own.name}-worker-1"]
    first = ipaddress.ip_network(str(own.subnet)).network_address
    assert [m.address for m in own.machines] == [str(first + 10), str(first + 11)]
    assert own.key_file.stat().st_mode & 0o777 == 0o600
    for machine in own.machines:
        client = ssh(machine.address, own.key_file, own.known_hosts)
        try:
            assert remote(client, "id -un") == (0, "kbuild\n")
            assert remote(client, "sudo -n id -u") == (0, "0\n")
            assert remote(client, "hostname") == (0, f"{machine.name}\n")
            # every machine resolves the others by name, from /etc/hosts
            other = next(m for m in own.machines if m != machine)
            assert remote(client, f"getent ahostsv4 {other.name} | head -1")[1].split()[0] == other.address
            assert remote(client, f"ping -c1 -W2 {other.address} >/dev/null")[0] == 0
            # A plain server: python3 (what Ansible needs) but nothing a kube component would lean on unseen.
            assert remote(client, "python3 -c 'import ssl; print(1)'") == (0, "1\n")
            assert remote(client, "python3 -c 'import yaml'")[0] != 0
        finally:
            client.close()


def test_machines_have_their_own_identity(own):
    ids = {m.name: own.exec(m.name, "cat /etc/machine-id", check=True).stdout for m in own.machines}
    keys = {m.name: own.exec(m.name, "cat /etc/ssh/ssh_host_ed25519_key.pub", check=True).stdout.split()[1]
            for m in own.machines}
    assert len(set(ids.values())) == len(own.machines)
    assert len(set(keys.values())) == len(own.machines)
    assert "ssh_host_rsa_key" not in own.exec(own.machines[0].name, "ls /etc/ssh").stdout
    # the inventory is valid and describes the lab
    cluster = load_cluster(own.inventory)
    first = ipaddress.ip_network(str(own.subnet)).network_address
    assert [(h.name, str(h.address), h.role_names, h.ssh.user, h.ssh.become) for h in cluster.hosts] == [
        (f"{own.name}-master-1", str(first + 10), ["etcd", "control-plane"], "kbuild", True),
        (f"{own.name}-worker-1", str(first + 11), ["worker"], "kbuild", True),
    ]
    assert cluster.hosts[0].ssh.key_file == str(own.key_file)


def test_up_again_is_a_noop_and_writes_the_inventory_elsewhere(own, tmp_path, capsys):
    before = {m.name: own._lab.machine(m.name)[0].pid for m in own.machines}
    out = tmp_path / "inventory.yaml"
    assert cli(["lab", "up", "--name", own.name, "--masters", "1", "--workers", "1", "--subnet", str(own.subnet),
                "--inventory-out", str(out)]) == 0
    assert {m.name: own._lab.machine(m.name)[0].pid for m in own.machines} == before
    assert out.read_text() == own.inventory.read_text()
    assert str(own.inventory) in capsys.readouterr().out
    # a different shape is refused, not silently rebuilt
    assert cli(["lab", "up", "--name", own.name, "--masters", "1", "--workers", "2", "--subnet", str(own.subnet)]) == 2


def status(own, capsys) -> dict[str, dict]:
    capsys.readouterr()
    assert cli(["lab", "status", "--name", own.name, "--json"]) == 0
    return {m["name"]: m for m in json.loads(capsys.readouterr().out)["machines"]}


def test_stop_and_start_one_machine(own, capsys):
    worker = own.machines[1]
    assert cli(["lab", "stop", "--name", own.name, "worker-1"]) == 0
    machines = status(own, capsys)
    assert (machines[worker.name]["running"], machines[worker.name]["ssh"]) == (False, False)
    assert (machines[own.machines[0].name]["running"], machines[own.machines[0].name]["ssh"]) == (True, True)
    assert not ssh_answers(worker.address)
    assert cli(["lab", "start", "--name", own.name, worker.name]) == 0
    assert ssh_answers(worker.address)
    assert status(own, capsys)[worker.name]["running"] is True
    # the disk survived the restart
    assert own.exec(worker.name, "cat /etc/hostname").stdout == f"{worker.name}\n"


def test_containerd_and_runc_run_inside_a_machine(own, built_mirror):
    """The mirror's containerd and runc (as kbuild installs them), run by hand in a plain lab machine."""
    worker = own.machines[1].name
    inbox = own.dir / "machines" / worker / "rootfs" / "usr" / "local" / "bin"
    versions = Versions()
    with tarfile.open(built_mirror.root / mirror_relative_path(containerd_release(versions.containerd, "amd64").url)) as tar:
        for name in ("containerd", "containerd-shim-runc-v2", "ctr"):
            (inbox / name).write_bytes(tar.extractfile(f"bin/{name}").read())  # type: ignore[union-attr]
    shutil.copy(built_mirror.root / mirror_relative_path(runc_release(versions.runc, "amd64").url), inbox / "runc")
    for name in ("containerd", "containerd-shim-runc-v2", "ctr", "runc"):
        (inbox / name).chmod(0o755)
    own.exec(worker, "systemd-run --unit=containerd --property=Delegate=yes /usr/local/bin/containerd", check=True)
    assert wait_until(lambda: own.exec(worker, "ctr version").returncode == 0, timeout=30)
    assert own.exec(worker, "systemctl is-active containerd").stdout.strip() == "active"
    # runc can create a container with a memory limit: the machine's cgroup controllers are writable
    bundle = r"""set -e
mkdir -p /tmp/bundle/rootfs && cd /tmp/bundle
mount --bind / rootfs && mount -o remount,bind,ro rootfs
runc spec
python3 - <<'EOF'
import json
spec = json.load(open("config.json"))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/echo", "hello from runc"]
spec["linux"]["resources"]["memory"] = {"limit": 67108864}
json.dump(spec, open("config.json", "w"))
EOF
runc run kbtest-runc; umount rootfs"""
    result = own.exec(worker, bundle)
    assert result.returncode == 0, result.stderr
    assert "hello from runc" in result.stdout
    # what Kubernetes sets on a node works in here too
    sysctl = own.exec(worker, "sysctl -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1")
    assert sysctl.returncode == 0, sysctl.stderr


def test_down_leaves_nothing(own):
    leaders = [own._lab.machine(m.name)[0].leader for m in own.machines]
    assert all(leaders)
    bridge = own._lab.state.bridge
    assert cli(["lab", "down", "--name", own.name]) == 0
    # no nspawn, no machine init (zombies waiting for init to reap them do not count)
    assert [pid for pid in find_nspawns(own.dir) if alive(pid)] == []
    assert [pid for pid in leaders if alive(pid)] == []
    assert mounts_under(own.dir) == []
    assert subprocess.run(["ip", "link", "show", "dev", bridge], capture_output=True).returncode != 0
    assert not own.dir.exists()
    assert not [h for h in cgroups.current_hierarchies() if (h.path / cgroups.lab_group(own.name)).exists()]
    assert not ssh_answers(own.machines[0].address)
    # down again is a no-op
    assert cli(["lab", "down", "--name", own.name]) == 0


def test_shared_lab_fixture(lab):
    """The `lab` fixture other integration tests use: shape, exec without SSH, stop/start."""
    assert [(m.role, m.roles) for m in lab.machines] == [
        ("master", ("etcd", "control-plane")), ("worker", ("worker",)), ("worker", ("worker",))]
    for machine in lab.machines:
        assert lab.exec(machine.name, "hostname").stdout.strip() == machine.name
        assert lab.exec(machine.name, ["ip", "-4", "-o", "addr", "show", "host0"]).stdout.split()[3].split("/")[0] \
            == machine.address
    victim = lab.machines[-1]
    lab.stop(victim.name)
    try:
        assert not lab.running(victim.name)
        assert not ssh_answers(victim.address)
    finally:
        lab.start(victim.name)
    assert ssh_answers(victim.address)
    assert lab.exec(victim.name, "systemctl is-system-running --wait", timeout=60).stdout.strip() in (
        "running", "degraded")
