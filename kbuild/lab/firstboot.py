"""The files that make a machine itself before its first boot: host name, address, hosts, machine-id, keys."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from kbuild.lab.image import LAB_USER
from kbuild.lab.keys import KeyPair
from kbuild.lab.topology import LabPlan, MachineSpec

NETWORK_FILE = "etc/systemd/network/10-kbuild-lab.network"  # sorts before 80-container-host0.network


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative to the machine's root
    content: bytes
    mode: int
    owner: str = "root"  # a user name in the machine's /etc/passwd


def network_unit(plan: LabPlan, spec: MachineSpec) -> str:
    return (
        "# kbuild lab: static address on the lab bridge\n"
        "[Match]\nName=host0\n\n"
        "[Network]\n"
        f"Address={spec.address}/{plan.subnet.prefixlen}\n"
        f"Gateway={plan.gateway}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )


def hosts_file(plan: LabPlan) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "",
             f"# kbuild lab {plan.name}"]
    lines += [f"{m.address}\t{m.name}" for m in plan.machines]
    return "\n".join(lines) + "\n"


def machine_files(plan: LabPlan, spec: MachineSpec, login_key: str, host_keys: dict[str, KeyPair],
                  machine_id: str | None = None) -> list[FileSpec]:
    authorized = f"{login_key.strip()}\n".encode()
    files = [
        FileSpec("etc/hostname", f"{spec.name}\n".encode(), 0o644),
        FileSpec("etc/hosts", hosts_file(plan).encode(), 0o644),
        # Unique per machine: journald, D-Bus and anything keyed on machine-id must not collide.
        FileSpec("etc/machine-id", f"{machine_id or uuid.uuid4().hex}\n".encode(), 0o444),
        FileSpec(NETWORK_FILE, network_unit(plan, spec).encode(), 0o644),
        FileSpec(f"home/{LAB_USER}/.ssh/authorized_keys", authorized, 0o600, owner=LAB_USER),
        FileSpec("root/.ssh/authorized_keys", authorized, 0o600),
    ]
    for name, pair in host_keys.items():
        files.append(FileSpec(f"etc/ssh/{name}", pair.private, 0o600))
        files.append(FileSpec(f"etc/ssh/{name}.pub", f"{pair.public}\n".encode(), 0o644))
    return files


def user_ids(rootfs: Path, user: str) -> tuple[int, int]:
    """uid and gid of `user` in the machine's /etc/passwd (the host's may differ or lack it)."""
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise KeyError(user)


def write_files(rootfs: Path, files: list[FileSpec]) -> None:
    """Write into the machine's root; directories created on the way belong to the file's owner."""
    for spec in files:
        uid, gid = user_ids(rootfs, spec.owner)
        path = rootfs / spec.path
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700 if path.parent.name == ".ssh" else 0o755)
            os.chown(path.parent, uid, gid)
        tmp = path.with_name(f".{path.name}.kbuild-tmp")
        tmp.write_bytes(spec.content)
        os.chown(tmp, uid, gid)
        os.chmod(tmp, spec.mode)
        os.replace(tmp, path)


def known_hosts_lines(address: str, public_keys: list[str]) -> list[str]:
    """known_hosts entries for one machine: its address and each host key (comment dropped)."""
    return [f"{address} {' '.join(key.split()[:2])}" for key in public_keys if key.strip()]
