"""known_hosts: a connection gets its own host's keys, found by name (plain, with a port, hashed), and parses no
other."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from kbuild.engine.hostkeys import load_into
from kbuild.errors import HostKeyError

HOSTS = 2000



@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, paramiko.PKey]]:
    """A known_hosts of 2000 hosts, and three keys to find in it: by a name of two, with a port, hashed."""
    keys = {"plain": paramiko.ECDSAKey.generate(), "ported": paramiko.ECDSAKey.generate(),
            "hashed": paramiko.ECDSAKey.generate(), "other": paramiko.ECDSAKey.generate()}
    other = keys["other"]
    lines = ["# a comment", ""]
    for i in range(HOSTS):
        lines.append(f"10.0.{i // 250}.{i % 250 + 1} {other.get_name()} {other.get_base64()}")
    plain, ported, hashed = keys["plain"], keys["ported"], keys["hashed"]
    lines.insert(900, f"10.9.9.9,node-9 {plain.get_name()} {plain.get_base64()}")
    lines.append(f"[10.9.9.9]:2222 {ported.get_name()} {ported.get_base64()}")
    lines.append(f"{paramiko.HostKeys.hash_host('10.8.8.8')} {hashed.get_name()} {hashed.get_base64()}")
    path = tmp_path_factory.mktemp("kh") / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    return path, keys


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The known_hosts lines whose key was parsed: what loading the file costs (paramiko's load parses every one)."""
    seen: list[str] = []
    original = paramiko.hostkeys.HostKeyEntry.from_line  # bound to the class

    def counting(cls, line, lineno=None):  # noqa: ANN001
        seen.append(line)
        return original(line, lineno)

    monkeypatch.setattr(paramiko.hostkeys.HostKeyEntry, "from_line", classmethod(counting))
    return seen


@pytest.mark.parametrize("name,which", [("10.9.9.9", "plain"), ("node-9", "plain"), ("[10.9.9.9]:2222", "ported"),
                                        ("10.8.8.8", "hashed")])
def test_a_connection_gets_its_hosts_key_and_parses_no_other(fleet, parsed, name, which):
    path, keys = fleet
    client = paramiko.SSHClient()
    load_into(client, path, name)
    recorded = client.get_host_keys().lookup(name)
    assert recorded is not None and recorded[keys[which].get_name()] == keys[which]
    assert len(parsed) == 1  # 2000 other lines matched by name only


def test_an_unknown_host_gets_no_key_and_a_missing_file_is_empty(fleet, parsed, tmp_path):
    path, _ = fleet
    client = paramiko.SSHClient()
    load_into(client, path, "10.7.7.7")
    load_into(client, tmp_path / "absent", "10.0.0.1")
    assert client.get_host_keys().lookup("10.7.7.7") is None and parsed == []


def test_a_broken_line_for_the_host_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("10.0.0.1 ssh-ed25519 AAAA!!not-base64\n10.0.0.2 ssh-ed25519 AAAA!!not-base64\n")
    with pytest.raises(HostKeyError, match="cannot read known hosts"):
        load_into(paramiko.SSHClient(), path, "10.0.0.1")
    load_into(paramiko.SSHClient(), path, "10.0.0.3")  # another host's broken line is no concern of this one
