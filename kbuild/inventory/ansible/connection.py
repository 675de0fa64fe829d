"""How Ansible would log in to a host, from its merged variables: address, user, port, key, become."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kbuild.inventory.ansible.data import Origin, Var

# Ansible's connection options read several names; where two are set, the ansible_ssh_* one wins.
ALIASES = {
    "host": ("ansible_ssh_host", "ansible_host"),
    "user": ("ansible_ssh_user", "ansible_user"),
    "port": ("ansible_ssh_port", "ansible_port"),
    "key_file": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
}
SSH_CONNECTIONS = {"ssh", "paramiko", "paramiko_ssh", "smart", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh"}
PASSWORDS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password", "ansible_become_password",
             "ansible_become_pass", "ansible_sudo_pass")
# Variables this module consumes (so kubespray.py neither maps nor warns about them again).
CONNECTION_VARS = frozenset({name for names in ALIASES.values() for name in names} | {
    "ansible_become", "ansible_become_user", "ansible_become_method", "ansible_connection",
    "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_python_interpreter",
    "ansible_ssh_executable", "ansible_sudo", "ansible_sudo_user", *PASSWORDS})
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "on", "1", "y", "t"}, {"false", "no", "off", "0", "n", "f", ""}


@dataclass
class Login:
    host: str
    user: str
    port: int = 22
    key_file: str | None = None
    become: bool = False
    origins: dict[str, tuple[str, Origin]] = field(default_factory=dict)  # field -> (variable, where)
    errors: list[tuple[str, Origin, str]] = field(default_factory=list)  # (variable, where, message)
    warnings: list[tuple[str, Origin, str]] = field(default_factory=list)


def ansible_bool(value: Any) -> bool | None:
    """Ansible's boolean(): true/yes/on/1 and their opposites, any case; None if it is neither."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in TRUE_WORDS else False if text in FALSE_WORDS else None


def login(host: str, variables: Mapping[str, Var], resolved: Mapping[str, Any]) -> Login:
    """`resolved` holds the variables' values with `{{ }}` references already resolved."""

    def pick(field_name: str) -> tuple[str, Any] | None:
        for name in ALIASES[field_name]:
            if name in resolved:
                return name, resolved[name]
        return None

    result = Login(host=host, user=getpass.getuser())
    for field_name in ("host", "user", "key_file"):
        found = pick(field_name)
        if found is not None and found[1] is not None:
            setattr(result, field_name, str(found[1]))
            result.origins[field_name] = (found[0], variables[found[0]].origin)
    port = pick("port")
    if port is not None and port[1] is not None:
        name, value = port
        text = str(value).strip()
        if text.isdigit() and 1 <= int(text) <= 65535:
            result.port = int(text)
            result.origins["port"] = (name, variables[name].origin)
        else:
            result.errors.append((name, variables[name].origin, f"{value!r} is not a port (1-65535)"))

    connection = resolved.get("ansible_connection")
    if connection is not None and str(connection) not in SSH_CONNECTIONS:
        result.errors.append(("ansible_connection", variables["ansible_connection"].origin,
                              f"{connection!r}: kbuild reaches every host over SSH"))
    become_name = "ansible_become" if "ansible_become" in resolved else "ansible_sudo"
    if become_name in resolved:
        become = ansible_bool(resolved[become_name])
        if become is None:
            result.errors.append((become_name, variables[become_name].origin,
                                  f"{resolved[become_name]!r} is not a boolean (true or false)"))
        else:
            result.become = become
            result.origins["become"] = (become_name, variables[become_name].origin)
    if result.become:
        for name, allowed in (("ansible_become_user", "root"), ("ansible_become_method", "sudo")):
            value = resolved.get(name)
            if value is not None and str(value) != allowed:
                result.errors.append((name, variables[name].origin,
                                      f"{value!r}: kbuild runs commands as root through `sudo -n`, so it needs "
                                      f"{name} {allowed} (or unset)"))
    for name in PASSWORDS:
        if name in resolved:
            result.warnings.append((name, variables[name].origin,
                                    "not used: kbuild logs in with keys (ansible_ssh_private_key_file or "
                                    "ssh-agent) and needs sudo without a password"))
    for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if resolved.get(name):
            result.warnings.append((name, variables[name].origin,
                                    "not used: kbuild passes no ssh options; a jump host is the `bastion` group "
                                    "(or ssh.bastion in a kbuild inventory)"))
    return result
