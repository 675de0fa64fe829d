"""Restore onto etcd's previous minor (the mirror's older etcd release, still supported) on 3 members.
Real parts: systemd-nspawn machines with systemd and sshd, that etcd release with its etcdctl and etcdutl,
the real control plane on it."""

from __future__ import annotations

import pytest

from tests.integration.etcd_support import (
    EtcdLab,
    assert_no_op_bootstrap_and_members_rejoin,
    round_trip,
)
from tests.mirror.releases import PREVIOUS_ETCD

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def three_previous(lab_factory, built_mirror, tmp_path_factory):
    handle = lab_factory("etcdprev", masters=3, workers=0)
    lab = EtcdLab.bootstrapped(handle, built_mirror.root, tmp_path_factory.mktemp("etcdprev"),
                               cluster={"name": handle.name, "versions": {"etcd": PREVIOUS_ETCD}})
    yield lab
    lab_factory.release(handle)


def test_round_trip_on_the_previous_etcd_minor(three_previous: EtcdLab):
    result = round_trip(three_previous)
    assert result["metadata"]["etcd_version"] == PREVIOUS_ETCD
    assert result["metadata"]["verified_with"] == "etcdutl"


def test_bootstrap_after_restore_changes_nothing_and_members_rejoin_on_the_previous_minor(three_previous: EtcdLab):
    assert_no_op_bootstrap_and_members_rejoin(three_previous)
