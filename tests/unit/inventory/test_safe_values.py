"""The safe-value rules (kbuild.inventory.safe) as the loader applies them: each refusal names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.errors import InventoryError, UsageError
from kbuild.inventory import load_cluster

BASE = """\
cluster: {{name: t{cluster}}}
ssh: {{{ssh}}}
etcd: {{{etcd}}}
artifacts: {{{artifacts}}}
hosts:
  m1: {{address: 198.18.0.1, roles: [etcd, control-plane]}}
  w1: {{address: {address}, roles: [worker]{w1}}}
"""


def inventory(tmp_path: Path, **parts: str) -> Path:
    values = {"cluster": "", "ssh": "port: 22", "etcd": "data_dir: /var/lib/etcd", "artifacts": "checksums: {}",
              "address": "198.18.0.2", "w1": ""} | parts
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE.format(**values))
    return path


@pytest.mark.parametrize("parts, key, reason", [
    ({"ssh": "port: 22:00"}, "ssh.port", "valid integer"),
    ({"ssh": "port: true"}, "ssh.port", "valid integer"),
    ({"ssh": "port: '22'"}, "ssh.port", "valid integer"),
    ({"ssh": "retries: 0x2"}, "ssh.retries", "valid integer"),
    ({"ssh": "become: 1"}, "ssh.become", "not true or false"),
    ({"ssh": "connect_timeout: true"}, "ssh.connect_timeout", "a boolean, not a number"),
    ({"cluster": ", versions: {kubernetes: １.37.2}"}, "cluster.versions.kubernetes", "not a version"),
    ({"cluster": ", service_cidr: 'fd00::/128'"}, "cluster.service_cidr", "between /108 and /124"),
    ({"cluster": ", service_cidr: 'fd00::/64'"}, "cluster.service_cidr", "between /108 and /124"),
    ({"cluster": ", node_monitor_period: '5s\\nExecStartPre=/bin/true'"}, "cluster.node_monitor_period",
     "not a duration"),
    ({"address": "0.0.0.0"}, "hosts.w1.address", "unspecified"),
    ({"address": "255.255.255.255"}, "hosts.w1.address", "broadcast"),
    ({"address": "224.0.0.1"}, "hosts.w1.address", "multicast"),
    ({"address": "127.0.0.1"}, "hosts.w1.address", "loopback"),
    ({"address": "'::ffff:198.18.0.1'"}, "hosts.w1.address", "IPv4-mapped"),
    ({"address": "'fe80::1%a;b'"}, "hosts.w1.address", "not an interface name"),
    ({"w1": ", labels: {a: 'b,c=d'}"}, "hosts.w1.labels.a", "not a label value"),
    ({"w1": ", labels: {'-a': b}"}, "hosts.w1.labels.-a", "not a label key"),
    ({"w1": ", ssh: {host: " + "a" * 300 + "}"}, "hosts.w1.ssh.host", "at most 253"),
    ({"w1": ", ssh: {host: \"w\\u202e1\"}"}, "hosts.w1.ssh.host", "neither an IP address nor a host name"),
    ({"artifacts": "checksums: {etcd.tar.gz: " + "g" * 64 + "}"}, "artifacts.checksums.etcd.tar.gz", "not a sha256"),
    ({"etcd": "data_dir: /srv/etcd, backup: {dir: /srv/etcd/backups}"}, "etcd", "separate directories"),
])
def test_refused_naming_the_key(tmp_path: Path, parts: dict[str, str], key: str, reason: str) -> None:
    with pytest.raises(InventoryError) as refused:
        load_cluster(inventory(tmp_path, **parts))
    text = str(refused.value)
    assert (f"{key}:" in text or f"{key}." in text) and reason in text, text


@pytest.mark.parametrize("field", ["data_dir", "backup.dir"])
@pytest.mark.parametrize("path, why", [
    ("/", "root directory"), ("/etc", "system directory"), ("/var/lib", "first-level directory of /var"),
    ("/usr/local", "first-level directory of /usr"), ("/root", "system directory"), ("/home/alice", "/home"),
    ("/tmp/etcd", "inside /tmp"), ("/run/etcd", "inside /run"), ("/var/lib/kubelet/etcd", "kbuild manages"),
    ("/var/lib/etcd/../../etc", "normalised"), ("relative/etcd", "absolute"), ("/var/lib/etcd data", "no spaces"),
])
def test_dangerous_directories_are_refused_with_a_suggestion(tmp_path: Path, field: str, path: str, why: str) -> None:
    etcd = f"data_dir: '{path}'" if field == "data_dir" else f"backup: {{dir: '{path}'}}"
    with pytest.raises(InventoryError) as refused:
        load_cluster(inventory(tmp_path, etcd=etcd))
    text = str(refused.value)
    assert f"etcd.{field}:" in text and why in text, text
    if why not in ("normalised", "absolute", "no spaces"):
        assert "use a dedicated directory such as /var/lib/etcd" in text


def test_host_names_stay_strings_and_good_values_pass(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("cluster: {name: t}\nhosts:\n  007: {address: 198.18.0.1, roles: [etcd, control-plane]}\n"
                    "  0x1f: {address: 'fe80::1%eth0', roles: [worker], labels: {node.example/disk: ssd, "
                    "empty: ''}, taints: ['gpu=yes:NoSchedule'], ssh: {port: 2222, host: w1.example}}\n"
                    "etcd: {data_dir: /srv/etcd/, backup: {dir: /srv/etcd-backups}}\n")
    cluster = load_cluster(path)
    assert [h.name for h in cluster.hosts] == ["007", "0x1f"]
    assert cluster.etcd.data_dir == "/srv/etcd" and cluster.host("0x1f").ssh.port == 2222


@pytest.mark.parametrize("make, message", [
    # (A directory is an Ansible inventory directory: tests/unit/inventory/test_ansible*.py.)
    (lambda p: __import__("os").mkfifo(p), "not a regular file"),
    (lambda p: p.write_bytes("cluster: {name: t}\n".encode("utf-16")), "not UTF-8"),
    (lambda p: p.write_bytes(b"#" * (9 * 1024 * 1024)), "larger than 8 MiB"),
])
def test_only_a_regular_bounded_utf8_file_is_read(tmp_path: Path, make, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "inventory.yaml"
    make(path)
    with pytest.raises(UsageError, match=message):
        load_cluster(path)


def test_dev_zero_is_refused_at_once() -> None:
    with pytest.raises(UsageError, match="not a regular file"):
        load_cluster("/dev/zero")


@pytest.mark.parametrize("where", ["state_dir", "--state-dir", "KBUILD_STATE_DIR"])
def test_a_system_or_home_directory_is_no_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          where: str) -> None:
    path = inventory(tmp_path)
    if where == "state_dir":
        path.write_text(path.read_text() + "state_dir: /etc\n")
        with pytest.raises(InventoryError, match=r"state_dir: /etc is a system directory"):
            load_cluster(path)
    elif where == "--state-dir":
        with pytest.raises(UsageError, match=r"--state-dir: / is a system directory"):
            load_cluster(path, state_dir="/")
    else:
        monkeypatch.setenv("KBUILD_STATE_DIR", "/root")
        with pytest.raises(UsageError, match=r"KBUILD_STATE_DIR: /root is a system directory"):
            load_cluster(path)
