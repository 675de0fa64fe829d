"""Lab shape: machine names, roles, addresses, bridge names, and the errors for impossible shapes."""

from __future__ import annotations

import ipaddress

import pytest

from kbuild.errors import ExitCode, UsageError
from kbuild.lab.errors import LabNotFound
from kbuild.lab.topology import IFNAMSIZ, allocate, bridge_name, make_plan


def test_default_lab_shape():
    plan = make_plan("lab", 1, 2)
    assert [(m.name, m.role, str(m.address), m.inventory_roles) for m in plan.machines] == [
        ("lab-master-1", "master", "198.18.0.10", ["etcd", "control-plane"]),
        ("lab-worker-1", "worker", "198.18.0.11", ["worker"]),
        ("lab-worker-2", "worker", "198.18.0.12", ["worker"]),
    ]
    assert str(plan.gateway) == "198.18.0.1"
    assert plan.gateway_cidr == "198.18.0.1/24"
    assert plan.bridge == "kb-lab"


def test_masters_come_first_and_addresses_follow_the_subnet():
    plan = make_plan("kbtest", 3, 1, "198.18.0.192/26")
    assert [m.name for m in plan.machines] == ["kbtest-master-1", "kbtest-master-2", "kbtest-master-3",
                                               "kbtest-worker-1"]
    assert [str(m.address) for m in plan.machines] == ["198.18.0.202", "198.18.0.203", "198.18.0.204",
                                                       "198.18.0.205"]
    assert plan.gateway_cidr == "198.18.0.193/26"


def test_allocation_stops_before_the_broadcast_address():
    subnet = ipaddress.IPv4Network("198.18.0.0/28")  # .10 .. .14 usable, .15 is broadcast
    assert [str(a) for a in allocate(subnet, 5)][-1] == "198.18.0.14"
    with pytest.raises(UsageError, match="room for 5 machines"):
        allocate(subnet, 6)
    assert allocate(subnet, 0) == []


@pytest.mark.parametrize(("args", "message"), [
    (("Lab", 1, 0), "lowercase letters"),
    (("a" * 33, 1, 0), "at most 32"),
    (("lab", 0, 2), "--masters must be at least 1"),
    (("lab", 1, -1), "cannot be negative"),
    (("lab", 121, 120), "at most 240 machines"),
    (("lab", 1, 1, "198.18.0.0/30"), "too small"),
    (("lab", 1, 1, "198.18.0.1/24"), "not a network in CIDR form"),
    (("lab", 1, 1, "fd00::/64"), "needs an IPv4 network"),
    (("lab", 1, 1, "banana"), "not a network"),
    (("lab", 5, 5, "198.18.0.0/28"), "room for 5 machines"),
])
def test_impossible_shapes_are_usage_errors(args, message):
    with pytest.raises(UsageError, match=message) as caught:
        make_plan(*args)
    assert caught.value.exit_code is ExitCode.BAD_INPUT


def test_bridge_names_fit_and_stay_distinct():
    assert bridge_name("lab") == "kb-lab"
    assert bridge_name("a" * 12) == "kb-" + "a" * 12  # exactly 15
    long_a, long_b = bridge_name("integration-one"), bridge_name("integration-two")
    assert len(long_a) <= IFNAMSIZ and len(long_b) <= IFNAMSIZ
    assert long_a != long_b
    assert long_a == bridge_name("integration-one")  # stable: `down` finds the bridge `up` made


def test_machines_are_found_by_full_or_short_name():
    plan = make_plan("lab", 1, 2)
    assert plan.machine("lab-worker-2").name == "lab-worker-2"
    assert plan.machine("worker-2").name == "lab-worker-2"
    with pytest.raises(LabNotFound, match="no machine 'worker-3'; its machines are lab-master-1, lab-worker-1"):
        plan.machine("worker-3")


def test_a_200_machine_lab_fits_one_24_as_the_200_host_benchmark_needs():
    plan = make_plan("kb200", 1, 199, "198.18.0.0/24")
    assert len(plan.machines) == 200 and str(plan.machines[-1].address) == "198.18.0.209"
