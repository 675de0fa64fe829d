"""Host selection (--limit) and the checks made before any host is contacted."""

from __future__ import annotations

import pytest

from kbuild.connect import check_key_files, select_hosts, target_for
from kbuild.errors import UsageError


@pytest.fixture
def cluster(tmp_path, cluster_from):
    (tmp_path / "id").write_text("key")  # ssh.key_file below, beside the inventory
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
