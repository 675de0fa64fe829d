"""Restore onto etcd 3.4 (Debian's 3.4.23 binaries; snapshot restore with etcdctl, as 3.4 has no etcdutl) on
3 members. Real parts: systemd-nspawn machines with systemd and sshd, etcd 3.4.23, the kube-apiserver stand-in."""

from __future__ import annotations

import pytest

from tests.integration.etcd_support import (
    EtcdLab,
    assert_no_op_bootstrap_and_members_rejoin,
    round_trip,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def three34(lab_factory, built_mirror, tmp_path_factory):
    handle = lab_factory("etcd34", masters=3, workers=0)
    lab = EtcdLab.bootstrapped(handle, built_mirror.root, tmp_path_factory.mktemp("etcd34"),
                               cluster={"name": handle.name, "versions": {"etcd": "3.4.23"}})
    yield lab
    lab_factory.release(handle)


def test_round_trip_on_etcd_34(three34: EtcdLab):
    result = round_trip(three34)
    assert result["metadata"]["etcd_version"] == "3.4.23"
    assert result["metadata"]["verified_with"] == "etcdctl"
    assert "etcdutl" not in three34.sh(three34.masters[0], "ls /usr/local/bin")


def test_bootstrap_after_restore_changes_nothing_and_members_rejoin_on_34(three34: EtcdLab):
    assert_no_op_bootstrap_and_members_rejoin(three34)
