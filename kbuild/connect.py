"""From the cluster model to the engine: SSH targets for hosts, host selection (--limit), the pool."""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path

import paramiko

from kbuild.engine.mux import open_connection
from kbuild.engine.ssh import ConnectionPool, Jump, SSHTarget
from kbuild.errors import UsageError
from kbuild.inventory import Cluster, Host
from kbuild.inventory.model import HostKeyPolicy, Role


def target_for(host: Host) -> SSHTarget:
    ssh = host.ssh
    jump = None
    if ssh.bastion is not None:
        jump = Jump(ssh.bastion.host, ssh.bastion.port, ssh.bastion.user, ssh.bastion.key_file)
    return SSHTarget(
        name=host.name, host=ssh.host, port=ssh.port, user=ssh.user, key_file=ssh.key_file, become=ssh.become,
        bastion=jump, connect_timeout=ssh.connect_timeout, retries=ssh.retries, persist=ssh.persist,
    )


def open_pool(cluster: Cluster, hosts: list[Host] | None = None, *, strict: bool | None = None) -> ConnectionPool:
    chosen = hosts if hosts is not None else list(cluster.hosts)
    check_key_files(cluster, chosen)
    if strict is None:
        strict = cluster.host_key_policy is HostKeyPolicy.STRICT
    known_hosts = cluster.known_hosts
    return ConnectionPool({h.name: target_for(h) for h in chosen}, known_hosts, strict=strict,
                          connector=lambda target, stats: open_connection(target, known_hosts, strict=strict,
                                                                          stats=stats))


def select_hosts(cluster: Cluster, limit: str | None) -> list[Host]:
    """Hosts matching `--limit`: comma-separated names, shell globs (worker-*) or roles (role:etcd)."""
    if not limit:
        return list(cluster.hosts)
    chosen: list[Host] = []
    for pattern in (p.strip() for p in limit.split(",")):
        if not pattern:
            continue
        if pattern.startswith("role:"):
            role_name = pattern.removeprefix("role:")
            try:
                role = Role(role_name)
            except ValueError:
                raise UsageError(f"--limit: unknown role {role_name!r}; roles are "
                                 f"{', '.join(r.value for r in Role)}") from None
            matched = [h for h in cluster.hosts if role in h.roles]
        else:
            matched = [h for h in cluster.hosts if fnmatch.fnmatchcase(h.name, pattern)]
        if not matched:
            raise UsageError(f"--limit: {pattern!r} matches no host in {cluster.inventory_path}",
                             hint=f"hosts are: {', '.join(h.name for h in cluster.hosts)}")
        chosen += [h for h in matched if h not in chosen]
    return [h for h in cluster.hosts if h in chosen]  # inventory order


def check_key_files(cluster: Cluster, hosts: list[Host]) -> None:
    """A key file that is missing or unreadable is bad input, found before any host is contacted."""
    problems = []
    for host in hosts:
        for what, key in (("key_file", host.ssh.key_file),
                          ("bastion.key_file", host.ssh.bastion.key_file if host.ssh.bastion else None)):
            if not key:
                continue
            path = Path(key)  # resolved by the inventory loader (~ and relative to the inventory)
            if not path.is_file():
                problems.append(f"hosts.{host.name}: ssh.{what} {path} does not exist")
            elif not os.access(path, os.R_OK):
                problems.append(f"hosts.{host.name}: ssh.{what} {path} is not readable by this user")
            else:
                problem = key_file_problem(path)
                if problem:
                    problems.append(f"hosts.{host.name}: ssh.{what} {problem}")
    if problems:
        raise UsageError(f"{cluster.inventory_path}: " + "; ".join(dict.fromkeys(problems)),
                         hint="fix ssh.key_file in the inventory (or the host's ssh override), or the file's permissions")


def key_file_problem(path: Path) -> str | None:
    """Why `path` cannot be used as an SSH private key, or None. Found here, at once, rather than as an
    "unreachable" host after every retry."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # As OpenSSH: a private key others can read is compromised, and ssh itself would refuse it.
        return f"{path} is readable by others (mode {mode:04o}); run `chmod 600 {path}`"
    try:
        head = path.read_bytes()[:64]
        paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        return None  # a private key with a passphrase: ssh-agent may hold it
    except (paramiko.SSHException, ValueError, TypeError, OSError) as exc:
        if not head.strip():
            return f"{path} is empty, not a private key"
        if head.startswith((b"ssh-", b"ecdsa-", b"sk-")):
            return f"{path} is a public key; point key_file at the private key (the file without .pub)"
        return f"{path} is not a private key paramiko can read ({str(exc).split('.')[0]})"
    return None
