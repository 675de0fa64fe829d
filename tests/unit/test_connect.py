"""Host selection (--limit) and the checks made before any host is contacted."""

from __future__ import annotations

import pytest

from kbuild.connect import check_key_files, select_hosts, target_for
from kbuild.errors import UsageError


def private_key(path, mode=0o600):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(mode)
    return key


@pytest.fixture
def cluster(tmp_path, cluster_from):
    private_key(tmp_path / "id")  # ssh.key_file below, beside the inventory
    return cluster_from("""\
        cluster: {name: t}
        ssh: {user: ops, key_file: id, become: true, bastion: {host: jump.example, user: j}}
        hosts:
          m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
          w1: {address: 198.18.0.11, roles: [worker]}
          w2: {address: 198.18.0.12, roles: [worker], ssh: {key_file: missing}}
        """)


def test_limit_by_name_glob_and_role(cluster):
    assert [h.name for h in select_hosts(cluster, None)] == ["m1", "w1", "w2"]
    assert [h.name for h in select_hosts(cluster, "w*")] == ["w1", "w2"]
    assert [h.name for h in select_hosts(cluster, "w2,role:etcd")] == ["m1", "w2"]  # inventory order


@pytest.mark.parametrize("limit,message", [
    ("nope", "'nope' matches no host"),
    ("role:minion", "unknown role 'minion'"),
])
def test_limit_errors(cluster, limit, message):
    with pytest.raises(UsageError, match=message):
        select_hosts(cluster, limit)


def test_missing_key_file_is_caught_before_connecting(cluster, tmp_path):
    check_key_files(cluster, [cluster.host("m1"), cluster.host("w1")])
    with pytest.raises(UsageError, match=r"hosts.w2: ssh.key_file .*missing does not exist"):
        check_key_files(cluster, list(cluster.hosts))


def test_target_carries_become_and_bastion(cluster):
    target = target_for(cluster.host("m1"))
    assert (target.user, target.become, target.host, target.port) == ("ops", True, "198.18.0.10", 22)
    assert target.bastion is not None and (target.bastion.host, target.bastion.user) == ("jump.example", "j")
    assert target.persist == 0  # a connection is closed with its run unless ssh.persist says otherwise


def test_ssh_persist_reaches_the_target_and_a_host_may_override_it(cluster_from):
    cluster = cluster_from("""\
        cluster: {name: t}
        ssh: {persist: 60}
        hosts:
          m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
          w1: {address: 198.18.0.11, roles: [worker], ssh: {persist: 0}}
        """)
    assert [target_for(h).persist for h in cluster.hosts] == [60, 0]


@pytest.mark.parametrize("value", ["-1", "3601", "soon"])
def test_a_persist_out_of_range_names_the_field(cluster_from, value):
    from kbuild.errors import InventoryError

    with pytest.raises(InventoryError) as refused:
        cluster_from(f"""\
            cluster: {{name: t}}
            ssh: {{persist: {value}}}
            hosts:
              m1: {{address: 198.18.0.10, roles: [etcd, control-plane]}}
            """)
    assert "ssh.persist" in str(refused.value)


def _only_key_problem(cluster):
    with pytest.raises(UsageError) as refused:
        check_key_files(cluster, [cluster.host("m1")])
    return str(refused.value)


def test_a_private_key_others_can_read_is_refused_as_openssh_does(cluster, tmp_path):
    (tmp_path / "id").chmod(0o644)
    message = _only_key_problem(cluster)
    assert f"ssh.key_file {tmp_path / 'id'} is readable by others (mode 0644)" in message
    assert f"chmod 600 {tmp_path / 'id'}" in message


@pytest.mark.parametrize("content, reason", [
    (b"", "is empty, not a private key"),
    (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz3 me@laptop\n", "is a public key"),
    (b"\x00garbage\xff" * 10, "is not a private key"),
])
def test_a_key_file_that_is_no_private_key_is_bad_input_at_once(cluster, tmp_path, content, reason):
    from kbuild.errors import ExitCode

    (tmp_path / "id").write_bytes(content)
    with pytest.raises(UsageError) as refused:
        check_key_files(cluster, [cluster.host("m1")])
    assert refused.value.exit_code is ExitCode.BAD_INPUT
    assert f"hosts.m1: ssh.key_file {tmp_path / 'id'} {reason}" in str(refused.value)


def test_known_hosts_on_dev_null_is_refused(tmp_path, cluster_from):
    from kbuild.errors import InventoryError

    with pytest.raises(InventoryError, match=r"ssh.known_hosts: '/dev/null' is a device"):
        cluster_from("""\
            cluster: {name: t}
            ssh: {known_hosts: /dev/null}
            hosts:
              m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
            """)
