"""Host key verification against a known_hosts file: accept-new (record first contact) or strict.

A key that differs from the recorded one is always refused: that is either a reinstalled host or
somebody in the middle, and only a person can tell which. Never blind auto-add.
"""

from __future__ import annotations

import hmac
import os
import re
import threading
from pathlib import Path

import paramiko

from kbuild.errors import HostKeyError

_append_lock = threading.Lock()


def known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." like OpenSSH prints


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """First contact: record the key in known_hosts (like OpenSSH's StrictHostKeyChecking=accept-new)."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _append_lock:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


class StrictPolicy(paramiko.MissingHostKeyPolicy):
    """Only keys already in known_hosts are accepted."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"{hostname}: host key {fingerprint(key)} is not in {self.known_hosts} and the host key policy is "
            "strict",
            hint="verify the fingerprint out of band, then add the host's key to that file "
                 "(or run once with ssh.host_key_policy: accept-new)",
        )


def changed_key_error(hostname: str, port: int, known_hosts: Path, exc: paramiko.BadHostKeyException) -> HostKeyError:
    name = known_host_name(hostname, port)
    return HostKeyError(
        f"{name}: HOST KEY CHANGED: the host offered {exc.key.get_name()} {fingerprint(exc.key)}, but "
        f"{known_hosts} records {exc.expected_key.get_name()} {fingerprint(exc.expected_key)}. "
        "Someone may be intercepting the connection, or the host was reinstalled. Nothing was run on it.",
        hint=f"if the host was rebuilt, confirm its new key, then remove the old one: "
             f"ssh-keygen -f {known_hosts} -R '{name}'",
    )


def load_into(client: paramiko.SSHClient, known_hosts: Path, name: str) -> None:
    """Give `client` the keys known_hosts records for `name` (as known_host_name spells it), and only those.

    paramiko's own load parses every key of the file, and each connection loaded the whole file: at 200
    hosts that was 22 ms of CPU per connection, a run's host-key work growing with the square of its
    hosts. The names of each line are matched as paramiko matches them (a plain name, or a hashed one),
    and only the matching lines' keys are parsed.
    """
    try:
        text = known_hosts.read_text()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _unreadable(known_hosts, exc) from None
    keys = client.get_host_keys()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or not any(_names_match(name, h) for h in _line_names(line)):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except paramiko.SSHException:
            continue  # a key type paramiko cannot use: skipped, as paramiko's load skips it
        except paramiko.hostkeys.InvalidHostKey as exc:
            raise _unreadable(known_hosts, exc) from None
        if entry is not None:
            keys.add(name, entry.key.get_name(), entry.key)


def _line_names(line: str) -> list[str]:
    return re.split(" |\t", line, maxsplit=1)[0].split(",")


def _names_match(name: str, recorded: str) -> bool:
    if recorded == name:
        return True
    if recorded.startswith("|1|") and not name.startswith("|1|"):
        return hmac.compare_digest(paramiko.HostKeys.hash_host(name, recorded), recorded)
    return False


def _unreadable(known_hosts: Path, exc: Exception) -> HostKeyError:
    return HostKeyError(f"{known_hosts}: cannot read known hosts: {exc}",
                        hint="fix or remove the file (it is rebuilt on first contact with accept-new)")
