"""Routes: the table `ip` prints (recorded, and read from a real network namespace), and the Route resource's diff.

The namespace test uses the real `ip` of this machine in a network namespace of its own (root and Linux, as
every unit test of the facts script): it sets up the cases a node meets (the route right, via another
gateway, a blackhole in the way, missing), asks the fact script, applies what differs, and asks again.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from kbuild.engine.facts import RouteFact, RouteQuery, fact_script, parse_facts, parse_routes
from kbuild.engine.resources import Route, RoutesPruned

M = "@@kb-test"

# `ip -4 route show table main` and `ip -6 ...` as iproute2 printed them for routes set up by hand.
RECORDED_4 = """\
default via 192.0.2.1 dev eth0 
10.200.1.0/24 via 198.18.0.130 dev v0 
blackhole 10.200.2.0/24 
10.200.3.5 via 198.18.0.131 dev v0 
10.200.4.0/24 
\tnexthop via 198.18.0.130 dev v0 weight 1 
\tnexthop via 198.18.0.131 dev v0 weight 1 
198.18.0.128/26 dev v0 proto kernel scope link src 198.18.0.129 
"""
RECORDED_6 = """\
2001:db8::/64 dev v0 proto kernel metric 256 pref medium
2001:db8:1::/64 via 2001:db8::2 dev v0 metric 1024 pref medium
fe80::/64 dev v0 proto kernel metric 256 pref medium
"""


def _facts(destinations: list[str]) -> list[RouteFact]:
    queries = [RouteQuery(d) for d in destinations]
    out = f"{M} route.4\n{RECORDED_4}{M} route.6\n{RECORDED_6}{M} end\n"
    return parse_facts(out, M, queries)


def test_recorded_table_each_destination_with_its_routes():
    right, other, blackhole, host, multipath, absent, v6, default = _facts(
        ["10.200.1.0/24", "10.200.1.0/24", "10.200.2.0/24", "10.200.3.5/32", "10.200.4.0/24", "10.200.9.0/24",
         "2001:db8:1::/64", "0.0.0.0/0"])
    assert Route("10.200.1.0/24", "198.18.0.130").changes(right) == []
    # A route that goes another way is replaced: that is how a renumbered node's pods stay reachable.
    assert Route("10.200.1.0/24", "198.18.0.140").changes(other) == ["via 198.18.0.130 -> via 198.18.0.140"]
    assert Route("10.200.2.0/24", "198.18.0.130").changes(blackhole) == ["blackhole -> via 198.18.0.130"]
    assert Route("10.200.3.5/32", "198.18.0.131").changes(host) == []  # ip prints a /32 without its length
    assert multipath.gateways == {"198.18.0.130", "198.18.0.131"}
    assert Route("10.200.4.0/24", "198.18.0.131").changes(multipath) == []
    assert absent == RouteFact() and Route("10.200.9.0/24", "198.18.0.130").changes(absent) == ["add via 198.18.0.130"]
    # The inventory may spell an IPv6 gateway otherwise than ip prints it.
    assert Route("2001:db8:1::/64", "2001:DB8:0::2").changes(v6) == []
    assert default.gateways == {"192.0.2.1"}


def test_the_table_is_read_once_per_family_however_many_routes():
    queries = [RouteQuery(f"10.200.{i}.0/24") for i in range(50)] + [RouteQuery("2001:db8:1::/64")]
    script = RouteQuery.batch_script(queries)
    assert script.count("ip -4 route show table main") == 1 and script.count("ip -6 route show table main") == 1
    assert "ip -6" not in RouteQuery.batch_script(queries[:3])


def test_unreadable_lines_are_left_out_with_their_nexthops():
    table = parse_routes(["weird thing", "\tnexthop via 10.0.0.9 dev x", "10.1.0.0/16 via 10.0.0.1 dev x"], 4)
    assert list(table) == [RouteQuery("10.1.0.0/16").network]
    assert RouteFact(tuple(table[RouteQuery("10.1.0.0/16").network])).gateways == {"10.0.0.1"}


def test_routes_inside_a_network_that_no_node_explains_are_stale():
    (inside,) = _facts_within(["10.200.0.0/16"])
    assert {words[0] for words in inside.routes} == {"10.200.1.0/24", "blackhole", "10.200.3.5", "10.200.4.0/24"}
    prune = RoutesPruned("stale", "10.200.0.0/16", (("10.200.1.0/24", "198.18.0.130"),))
    # The node's own route stays; a blackhole and a multipath route name no single gateway and stay too.
    assert prune.changes(inside) == ["remove 10.200.3.5 via 198.18.0.131"]
    assert prune.action(inside).script.startswith("ip -4 route del 10.200.3.5 via 198.18.0.131 2>/dev/null || ")
    assert RoutesPruned("stale", "10.200.0.0/16", (("10.200.3.5/32", "198.18.0.131"),
                                                   ("10.200.1.0/24", "198.18.0.130"))).changes(inside) == []
    assert RoutesPruned("stale", "10.200.0.0/16").action(RouteFact()).script == ":"


def _facts_within(destinations: list[str]) -> list[RouteFact]:
    queries = [RouteQuery(d, within=True) for d in destinations]
    return parse_facts(f"{M} route.4\n{RECORDED_4}{M} end\n", M, queries)


def test_a_route_refuses_what_is_no_network_or_address():
    with pytest.raises(ValueError):
        Route("10.200.0.0/24; reboot", "198.18.0.130")
    with pytest.raises(ValueError):
        Route("10.200.0.0/24", "node-a")


# -- a real table, in a network namespace of this test's own -------------------------------------------------

SETUP = """\
ip link set lo up
ip link add kbv0 type veth peer name kbv1
ip link set kbv0 up; ip link set kbv1 up
ip addr add 198.18.0.129/26 dev kbv0
ip route add 10.200.1.0/24 via 198.18.0.130
ip route add 10.200.2.0/24 via 198.18.0.140
ip route add blackhole 10.200.3.0/24
"""


@pytest.fixture
def netns():
    """Runs shell scripts in one fresh network namespace, kept by a child process until the test ends."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "nsenter", "ip")):
        pytest.skip("needs root, unshare, nsenter and ip (util-linux, iproute2), as tests/run.sh has")
    # The holder says when it is in its namespace: entering it before would run the script on this host's own.
    holder = subprocess.Popen(["unshare", "--net", "sh", "-c", "echo ready; exec cat"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        assert os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        def run(script: str) -> str:
            proc = subprocess.run(["nsenter", f"--net=/proc/{holder.pid}/ns/net", "sh", "-s"], input=script.encode(),
                                  capture_output=True, check=True)
            return proc.stdout.decode()

        yield run
    finally:
        holder.stdin.close()  # cat ends, and the namespace with it
        holder.wait(timeout=10)


def test_routes_read_from_a_real_table_and_set_where_they_differ(netns):
    netns(SETUP + "ip route add 10.200.5.0/24 via 198.18.0.150\nip route add 172.16.0.0/16 via 198.18.0.130\n")
    routes = [Route("10.200.1.0/24", "198.18.0.130"), Route("10.200.2.0/24", "198.18.0.131"),
              Route("10.200.3.0/24", "198.18.0.132"), Route("10.200.4.0/24", "198.18.0.133")]
    resources = [*routes, RoutesPruned("stale", "10.200.0.0/16", tuple((r.destination, r.via) for r in routes))]
    queries = [r.fact_query() for r in resources]

    def ask() -> list:
        return parse_facts(netns(fact_script(queries, M)), M, queries)

    facts = ask()
    assert [r.changes(f) for r, f in zip(resources, facts)] == [
        [], ["via 198.18.0.140 -> via 198.18.0.131"], ["blackhole -> via 198.18.0.132"], ["add via 198.18.0.133"],
        # 10.200.2.0/24 via .140 is listed too: the Route above replaces it first, and its removal finds it gone.
        ["remove 10.200.2.0/24 via 198.18.0.140", "remove 10.200.5.0/24 via 198.18.0.150"]]
    # One script, in plan order, with set -e: as the runner applies what differs.
    netns("set -e\n" + "\n".join(r.action(f).script for r, f in zip(resources, facts) if r.changes(f)))
    assert [r.changes(f) for r, f in zip(resources, ask())] == [[], [], [], [], []]
    listed = netns("ip route show table main")
    assert "10.200.2.0/24 via 198.18.0.131 " in listed and "198.18.0.140" not in listed  # replaced, not added beside
    assert "10.200.5.0/24" not in listed and "172.16.0.0/16 via 198.18.0.130 " in listed  # outside the pod network
