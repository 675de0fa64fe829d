"""Per-machine identity written before first boot: name, address, hosts, machine-id, keys."""

from __future__ import annotations

import os
import stat

from kbuild.lab.firstboot import hosts_file, known_hosts_lines, machine_files, network_unit, write_files
from kbuild.lab.keys import ed25519_pair, host_keys
from kbuild.lab.topology import make_plan

PLAN = make_plan("lab", 1, 2)


def test_network_unit_gives_the_static_address():
    unit = network_unit(PLAN, PLAN.machines[1])
    assert "[Match]\nName=host0\n" in unit
    assert "Address=198.18.0.11/24\nGateway=198.18.0.1\n" in unit


def test_hosts_lists_every_machine():
    hosts = hosts_file(PLAN)
    assert "127.0.0.1\tlocalhost\n" in hosts
    for machine in PLAN.machines:
        assert f"{machine.address}\t{machine.name}\n" in hosts


def test_machine_files():
    login = ed25519_pair("kbuild-lab-lab").public
    files = {f.path: f for f in machine_files(PLAN, PLAN.machines[0], login, host_keys("lab-master-1"),
                                              machine_id="0" * 32)}
    assert files["etc/hostname"].content == b"lab-master-1\n"
    assert files["etc/machine-id"].content == b"0" * 32 + b"\n"
    assert files["etc/systemd/network/10-kbuild-lab.network"].content.startswith(b"# kbuild lab")
    auth = files["home/kbuild/.ssh/authorized_keys"]
    assert (auth.content, auth.mode, auth.owner) == (f"{login}\n".encode(), 0o600, "kbuild")
    assert files["etc/ssh/ssh_host_ed25519_key"].mode == 0o600
    assert files["etc/ssh/ssh_host_ed25519_key.pub"].content.startswith(b"ssh-ed25519 ")
    assert files["etc/ssh/ssh_host_ecdsa_key.pub"].content.startswith(b"ecdsa-sha2-nistp256 ")
    # fresh identities for every machine
    other = {f.path: f for f in machine_files(PLAN, PLAN.machines[1], login, host_keys("lab-worker-1"))}
    assert other["etc/machine-id"].content != files["etc/machine-id"].content
    assert other["etc/ssh/ssh_host_ed25519_key"].content != files["etc/ssh/ssh_host_ed25519_key"].content


def test_write_files_sets_modes_and_owners(tmp_path):
    me = os.getuid(), os.getgid()
    (tmp_path / "etc").mkdir()
    (tmp_path / "home/kbuild").mkdir(parents=True)
    (tmp_path / "etc/passwd").write_text(f"root:x:{me[0]}:{me[1]}::/root:/bin/sh\n"
                                         f"kbuild:x:{me[0]}:{me[1]}::/home/kbuild:/bin/bash\n")
    files = machine_files(PLAN, PLAN.machines[0], ed25519_pair().public, host_keys("lab-master-1"))
    write_files(tmp_path, files)
    ssh_dir = tmp_path / "home/kbuild/.ssh"
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((ssh_dir / "authorized_keys").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "etc/ssh/ssh_host_ecdsa_key").stat().st_mode) == 0o600
    assert (tmp_path / "etc/hostname").read_text() == "lab-master-1\n"
    assert not list(tmp_path.rglob("*.kbuild-tmp"))


def test_known_hosts_lines_drop_comments():
    assert known_hosts_lines("198.18.0.10", ["ssh-ed25519 AAAA root@lab-master-1\n", "", "ecdsa-sha2 BBBB\n"]) == [
        "198.18.0.10 ssh-ed25519 AAAA", "198.18.0.10 ecdsa-sha2 BBBB"]
