"""Shell injection: every command kbuild sends to a host keeps hostile values inert, and the inventory refuses them.

The loader refuses such values (first layer); here a cluster is given them anyway, past the loader,
to check the second layer: each command the plays generate (bootstrap plans with their facts,
actions, guards and gates, reset, restore, snapshots, probes, the rendered shell script and the
pod-routes unit) quotes them. A payload is inert when every occurrence of its marker sits inside
single quotes, where sh expands nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kbuild import layout
from kbuild.engine import facts
from kbuild.engine.resources import Command, KernelModule
from kbuild.engine.ssh import SSHTarget
from kbuild.errors import InventoryError
from kbuild.inventory import Cluster, load_cluster
from kbuild.plays import control_plane, etcd, node, reset
from kbuild.plays.bootstrap import api_labels_command
from kbuild.plays.etcd_backup import list_remote_script, save_script
from kbuild.plays.etcd_ops import probe as etcd_probe
from kbuild.plays.clusterfacts import etcd_status
from kbuild.plays.etcd_ops.commands import member_names, snapshot_status
from kbuild.plays.etcd_ops.restore_plan import build_plan
from kbuild.plays.etcd_ops.snapfile import FileCheck
from kbuild.plays.etcd_restore import (
    move_aside_command,
    restore_command,
    rollback_command,
    start_command,
    stop_command,
)
from kbuild.plays.cluster_status import probe_script as status_probe
from kbuild.plays.upgrade import etcdstate
from kbuild.plays.upgrade import nodes as upgrade_nodes
from kbuild.plays.upgrade.running import Version
from kbuild.plays.upgrade.running import probe_script as versions_probe
from kbuild.render import host_files
from kbuild.render.env import TemplateError
from tests.unit.fakes import Answer, ScriptedHost

MARK = "KBPWN"
# Each breaks out of a differently quoted context, or starts a new command line.
PAYLOADS = (
    f"$(touch {MARK})",
    f"`touch {MARK}`",
    f"'; touch {MARK}; '",
    f'"; touch {MARK}; "',
    f"x; touch {MARK} #",
    f"x\ntouch {MARK}",
    f"x && touch {MARK} || ",
)


# -- the check ------------------------------------------------------------------------------------------------


def quoting_states(script: str) -> list[str]:
    """The quoting context of every character of a POSIX sh script: S (single quotes), D (double quotes),
    N (unquoted, including inside $(...) and backquotes, where sh runs commands), E (escaped by a backslash),
    C (a comment)."""
    states: list[str] = []
    stack = ["N"]
    i = 0
    while i < len(script):
        char, top = script[i], stack[-1]
        if top == "N" and char == "#" and (i == 0 or script[i - 1] in " \t\n;"):
            end = script.find("\n", i)
            end = len(script) if end < 0 else end
            states += ["C"] * (end - i)
            i = end
            continue
        if top == "S":
            states.append("S")
            if char == "'":
                stack.pop()
        elif char == "\\" and i + 1 < len(script):
            states += [top, "E"]
            i += 2
            continue
        elif top in ("N", "P", "B") and char == "'":
            states.append(top)
            stack.append("S")
        elif char == '"' and top == "D":
            states.append("D")
            stack.pop()
        elif char == '"':
            states.append(top)
            stack.append("D")
        elif char == "$" and script[i + 1:i + 2] == "(":
            states += [top, top]
            stack.append("P")
            i += 2
            continue
        elif char == ")" and top == "P":
            states.append("P")
            stack.pop()
        elif char == "`":
            states.append(top)
            if top == "B":
                stack.pop()
            else:
                stack.append("B")
        else:
            states.append(top)
        i += 1
    return states


def assert_inert(script: str, where: str) -> None:
    states = quoting_states(script)
    for match in re.finditer(MARK, script):
        found = set(states[match.start():match.end()])
        assert found in ({"S"}, {"C"}), f"{where}: the payload is not single-quoted ({found}) in:\n{script}"


def test_the_check_catches_unquoted_and_double_quoted_payloads() -> None:
    with pytest.raises(AssertionError):
        assert_inert(f"test -d /var/lib/etcd; touch {MARK} #/member", "raw")
    with pytest.raises(AssertionError):
        assert_inert(f'echo "$(touch {MARK})"', "double quotes")
    with pytest.raises(AssertionError):
        assert_inert(f"echo 'kept in /x'; touch {MARK}; ''", "broken single quotes")
    with pytest.raises(AssertionError):
        assert_inert(f"kb_test 'ok' $(touch {MARK})", "after a quoted word")
    for payload in PAYLOADS:
        assert_inert(f"echo {shlex.quote(payload)}", "shlex.quote")


# -- a cluster carrying the payloads past the loader ------------------------------------------------------------

INVENTORY = """\
cluster: {{name: t}}
pki: {{key_algorithm: ecdsa-p256}}
artifacts: {{mirror: mirror, cache_dir: cache}}
etcd: {{backup: {{enabled: true}}}}
hosts:
  m1: {{address: 198.18.0.1, roles: [etcd, control-plane, worker]}}
  m2: {{address: 198.18.0.2, roles: [etcd, control-plane, worker], labels: {{node-role.kubernetes.io/x: ""}}}}
  m3: {{address: 198.18.0.3, roles: [etcd, worker]}}
"""


def hostile(cluster: Cluster, payload: str) -> Cluster:
    """The cluster with the payload in every value that is a string on the way to a host: the etcd data and
    backup directories, the other hosts' names and (as an IPv6 scope) their addresses."""
    etcd_settings = cluster.etcd.model_copy(update={
        "data_dir": f"/var/lib/etcd{payload}",
        "backup": cluster.etcd.backup.model_copy(update={"dir": f"/var/backups/etcd{payload}"}),
    })
    scope = payload.replace("/", "_").replace("%", "_")
    hosts = [cluster.hosts[0]]
    for i, host in enumerate(cluster.hosts[1:], start=2):
        hosts.append(dataclasses.replace(host, name=f"m{i}{payload}",
                                         address=ipaddress.IPv6Address(f"fe80::{i}%{scope}")))
    return dataclasses.replace(cluster, etcd=etcd_settings, hosts=tuple(hosts))


def nothing_there(query: facts.FactQuery) -> object:
    """The fact of a host that has none of it yet: what the first run's actions start from."""
    if isinstance(query, facts.PathQuery):
        absent = facts.PathFact("absent")
        return facts.ArtifactFact(absent, None, None) if query.artifact else absent
    if isinstance(query, facts.ShellQuery):
        return query.parse("")
    return {facts.ServiceQuery: facts.ServiceFact("", "", ""), facts.SysctlQuery: facts.SysctlFact(None, None),
            facts.ModuleQuery: facts.ModuleFact(False, False), facts.GuardQuery: facts.GuardFact(False),
            facts.ExistsQuery: facts.GuardFact(False), facts.RouteQuery: facts.RouteFact()}[type(query)]


def resource_scripts(plan, where: str) -> Iterator[tuple[str, str]]:  # noqa: ANN001 - engine Plan
    for resource in plan.resources:
        name = f"{where}: {resource.key}"
        for with_content in (False, True):
            query = resource.fact_query(with_content=with_content)
            yield facts.fact_script([query], "@@kb-marker"), f"{name} fact{' with content' if with_content else ''}"
        yield resource.action(nothing_there(query)).script, f"{name} action"
        # Guards run through `sh -c` on the host: they are scripts of their own.
        if isinstance(resource, Command) and resource.unless:
            yield resource.unless, f"{name} guard"
        if isinstance(resource, KernelModule) and resource.probe:
            yield resource.probe, f"{name} probe"
    for gate in plan.gates:
        yield gate.command, f"{where}: gate {gate.name}"


def every_script(cluster: Cluster, inputs) -> Iterator[tuple[str, str]]:  # noqa: ANN001 - HostInputs
    first = cluster.hosts[0]
    for phase, make in (("etcd", etcd.plan), ("control-plane", control_plane.plan), ("node", node.plan)):
        yield from resource_scripts(make(cluster, inputs), phase)
    yield etcd.member_probe(cluster), "etcd member probe"
    yield control_plane.kubectl("delete", "node", *(h.name for h in cluster.hosts)), "reset: forget nodes"
    for host in cluster.hosts:
        for purge in (False, True):
            yield reset.script(reset.plan(cluster, host, purge_data=purge, stamp="20260101T000000")), \
                f"reset {host.name} purge={purge}"
        yield etcd_probe.probe_script(cluster, host), f"etcd probe {host.name}"
        yield status_probe(cluster, host), f"status probe {host.name}"
        yield versions_probe(host), f"versions probe {host.name}"
    yield from upgrade_commands(cluster)
    labels = api_labels_command(cluster.hosts)
    if labels is not None:
        yield labels.command, "node labels"
        yield str(labels.unless), "node labels guard"
    yield save_script(cluster, status_tool="etcdutl"), "snapshot save"
    yield list_remote_script(cluster), "scheduled snapshots listing"
    probes = {h.name: etcd_probe.HostProbe(h.name, h.is_etcd, tools=frozenset({"etcdctl", "etcdutl"}))
              for h in cluster.hosts}
    check = FileCheck(size=20512, sha256="0" * 64, page_size=4096, txid=1)
    restore = build_plan(cluster, Path("/snapshots/t.db"), check, None, probes, "20260101T000000Z")
    for member in restore.members:
        yield move_aside_command(member), f"restore move aside {member.host}"
        yield restore_command(member), f"restore {member.host}"
        yield rollback_command(member, restored=True, moved=True), f"restore rollback {member.host}"
        yield snapshot_status(restore.tool, shlex.quote(member.upload)), f"restore status {member.host}"
    yield stop_command(("etcd", "kube-apiserver")) + start_command(("etcd",)), "restore stop/start"
    try:
        files = {str(f.path): f.content for f in host_files(cluster, first)}
    except TemplateError as exc:
        # Templates take no value with a line break (it would add a directive or a command): refused whole.
        assert "line break" in str(exc)
        yield "rendering refused", "rendered etcd backup script"
        yield "rendering refused", "pod-routes unit"
        return
    yield files[str(layout.ETCD_BACKUP_SCRIPT)], "rendered etcd backup script"
    unit = files[str(layout.unit_path("kbuild-pod-routes"))]
    for line in unit.splitlines():
        if line.startswith("ExecStart=/bin/sh -c "):
            # systemd unquotes the argument first ("..." with \\, \" and \xHH escapes), then sh runs it.
            argument = shlex.split(line.removeprefix("ExecStart=/bin/sh -c "))[0].replace("$$", "$")
            yield re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), argument), "pod-routes unit"


def node_list(node: str) -> Answer:
    """A host whose every command answers with a Node list naming `node` (what cordon reads first)."""
    listing = json.dumps({"items": [{"metadata": {"name": node}, "spec": {}, "status": {}}]})
    return lambda host, command: listing


def upgrade_commands(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """The rolling upgrade's commands: cordon, drain, uncordon and the gates, per node and etcd member."""
    version = Version.parse("3.6.16")
    for host in cluster.hosts:
        log: list[tuple[str, str]] = []
        conn = ScriptedHost(SSHTarget("m1", "198.18.0.10"), node_list(host.name), log, {})
        upgrade_nodes.cordon(conn, host.name, Version.parse("1.37.2"), status_command=cluster.command("status"))
        upgrade_nodes.drain(conn, host.name, attempts=1)
        upgrade_nodes.uncordon(conn, host.name)
        for _, command in log:
            yield command, f"upgrade {host.name}"
        yield upgrade_nodes.ready_gate(host.name, 0).command, f"upgrade {host.name} ready gate"
        if host.is_etcd:
            yield etcdstate.member_version_gate(cluster, host, version).command, f"upgrade {host.name} etcd version"
            gate = etcdstate.others_healthy_gate(cluster, host.name)
            if gate is not None:
                yield gate.command, f"upgrade {host.name} others healthy"
    yield etcd_status.command(cluster, endpoints=etcdstate_urls(cluster)), "upgrade etcd status"


def etcdstate_urls(cluster: Cluster) -> str:
    return ",".join(member_names(cluster))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_generated_command_keeps_hostile_values_inert(prepared_cluster, payload: str) -> None:
    cluster, inputs = prepared_cluster
    bad = hostile(cluster, payload)
    scripts = list(every_script(bad, inputs))
    assert len(scripts) > 100
    carrying = [where for script, where in scripts if MARK in script or script == "rendering refused"]
    # The payload reached the commands that use those values (else this test would prove nothing).
    for expected in ("etcd member probe", "reset m1 purge=False", "restore move aside", "node: route:",
                     "scheduled snapshots listing", "rendered etcd backup script", "pod-routes unit",
                     "etcd: directory", "reset: forget nodes", "etcd probe m1", "upgrade m2",
                     "ready gate", "others healthy", "node labels"):
        assert any(expected in where for where in carrying), (expected, carrying)
    for script, where in scripts:
        assert_inert(script, where)


@pytest.fixture
def prepared_cluster(cluster_from: Callable[[str], Cluster], tmp_path: Path):  # noqa: ANN201
    from kbuild import pki
    from kbuild.plays.desired import prepare_inputs
    from tests.unit.artifacts.helpers import write_cluster_mirror

    cluster = cluster_from(INVENTORY.format())
    pki.ensure(cluster)
    write_cluster_mirror(tmp_path / "mirror", cluster)
    host = cluster.hosts[0]
    return cluster, prepare_inputs(cluster, [host])[host.name]


# -- the first layer: the loader refuses them -------------------------------------------------------------------

FIELDS = {
    "etcd.data_dir": lambda p: {"etcd": {"data_dir": f"/var/lib/etcd{p}"}},
    "etcd.backup.dir": lambda p: {"etcd": {"backup": {"dir": f"/var/backups/etcd{p}"}}},
    "etcd.backup.schedule": lambda p: {"etcd": {"backup": {"schedule": f"daily{p}"}}},
    "hosts.w1.address": lambda p: {"hosts": {"w1": {"address": f"fe80::1%{p}"}}},
    "hosts.w1.labels.a": lambda p: {"hosts": {"w1": {"labels": {"a": f"b{p}"}}}},
    "hosts.w1.taints.0": lambda p: {"hosts": {"w1": {"taints": [f"a=b{p}:NoSchedule"]}}},
    "hosts.w1.extra_flags.kubelet.v": lambda p: {"hosts": {"w1": {"extra_flags": {"kubelet": {"v": f"2{p}"}}}}},
    "hosts.w1.ssh.host": lambda p: {"hosts": {"w1": {"ssh": {"host": f"w1{p}"}}}},
    "hosts.w1.ssh.user": lambda p: {"hosts": {"w1": {"ssh": {"user": f"root{p}"}}}},
    "cluster.node_monitor_period": lambda p: {"cluster": {"node_monitor_period": f"5s{p}"}},
    "cluster.api_endpoint": lambda p: {"cluster": {"api_endpoint": f"lb.example{p}"}},
    "cluster.addons.coredns.forward.0": lambda p: {"cluster": {"addons": {"coredns": {"forward": [f"/etc/r{p}"]}}}},
}


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


# Flag values are free text in Kubernetes (--cors-allowed-origins takes a regular expression with $ and |):
# they reach no shell, only an ExecStart argument, so only what would break the unit's line is refused.
FREE_TEXT = {"hosts.w1.extra_flags.kubelet.v"}
CONTROL = ["x\ny", "x\u202ey", "x\x1b[2Jy"]
BASE = {"cluster": {"name": "t"},
        "hosts": {"m1": {"address": "198.18.0.1", "roles": ["etcd", "control-plane"]},
                  "w1": {"address": "198.18.0.2", "roles": ["worker"]}}}


def write_inventory(tmp_path: Path, extra: dict) -> Path:
    import yaml

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(_merge(BASE, extra)))
    return inventory


# Free text meets only what would break its line; test_a_flag_value_with_shell_characters_stays_one_argument
# shows shell characters in it stay inert.
REFUSED = [(field, payload) for field in sorted(FIELDS)
           for payload in [p for p in PAYLOADS if "\n" not in p] + CONTROL
           if field not in FREE_TEXT or payload in CONTROL]


@pytest.mark.parametrize("field,payload", REFUSED)
def test_the_loader_refuses_hostile_values_naming_the_key(tmp_path: Path, field: str, payload: str) -> None:
    inventory = write_inventory(tmp_path, FIELDS[field](payload))
    with pytest.raises(InventoryError) as refused:
        load_cluster(inventory)
    assert f"{field}:" in str(refused.value)


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if "\n" not in p])
def test_a_flag_value_with_shell_characters_stays_one_argument(tmp_path: Path, payload: str) -> None:
    cluster = load_cluster(write_inventory(tmp_path, FIELDS["hosts.w1.extra_flags.kubelet.v"](payload)))
    unit = {str(f.path): f.content for f in host_files(cluster, cluster.host("w1"))}[str(layout.unit_path("kubelet"))]
    lines = [line.strip().removesuffix("\\").strip() for line in unit.splitlines() if MARK in line]
    assert len(lines) == 1
    # systemd splits ExecStart like a POSIX shell without expansions: one word, the whole value.
    assert shlex.split(lines[0].replace("%%", "%").replace("$$", "$")) == [f"--v=2{payload}"]
