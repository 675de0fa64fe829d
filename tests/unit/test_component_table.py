"""The component table (kbuild.components) is the one list of components: every row's templates exist and
render, its ports are unique on a host and follow the settings, its health checks are what both the gates and
`kbuild status` ask, and every list that names components (units, binaries, preflight, reset, upgrade steps,
extra_flags) is the table's."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kbuild import components as table
from kbuild import layout
from kbuild.artifacts.catalogue import component_binaries, component_version, host_binaries
from kbuild.errors import InventoryError
from kbuild.plays import control_plane, node, preflight, reset, cluster_status
from kbuild.plays.clusterfacts.preflight_probe import COMMAND as PREFLIGHT_PROBE
from kbuild.plays.components import health_checks, listening_ports, probe_command
from kbuild.plays.desired import artifact_role
from kbuild.plays.upgrade.plan import STEP_COMPONENTS
from kbuild.render import host_files, units_for
from kbuild.render.flags import FLAGS

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# One host with every role and every optional file turned on: it gets every row of the table.
EVERYTHING = """\
cluster: {{name: t, api_port: {port}, addons: {{coredns: {{replicas: 2}}}}}}
etcd: {{backup: {{enabled: true}}}}
hosts:
  m1: {{address: 198.18.0.10, roles: [etcd, control-plane, worker]}}
  w1: {{address: 198.18.0.11, roles: [worker]}}
"""


@pytest.fixture(params=[6443, 8443])
def everything(request: pytest.FixtureRequest, cluster_from):
    return cluster_from(EVERYTHING.format(port=request.param))


def test_every_rows_templates_exist_and_render_on_a_host_of_its_role(everything) -> None:
    rendered = {f.template: f for f in host_files(everything, everything.host("m1"))}
    for row in table.COMPONENTS:
        for spec in row.rendered:
            assert (TEMPLATES / spec.template).is_file(), f"{row.name}: {spec.template} is not in templates/"
            assert spec.template in rendered, f"{row.name}: {spec.template} was not rendered"
            got = rendered[spec.template]
            assert (got.path, got.services, got.role) == (spec.path, spec.services, row.role)
            assert got.content.strip(), spec.template


def test_a_hosts_files_are_exactly_its_roles_rows(everything) -> None:
    worker = {f.template for f in host_files(everything, everything.host("w1"))}
    node_rows = {s.template for row in table.of_role(table.NODE) for s in row.rendered}
    assert worker - {"kbuild-pod-routes.service.j2"} == node_rows


def test_ports_are_unique_on_a_host_and_follow_the_settings(everything) -> None:
    ports = listening_ports(everything)
    assert ports["kube-apiserver"] == (everything.settings.api_port,)
    held = [p for component in units_for(everything.host("m1")) for p in ports.get(component, ())]
    assert held and not [p for p, n in Counter(held).items() if n > 1], held
    # The ports the table fixes are kbuild's layout constants; the apiserver's alone is a setting.
    constants = {v for k, v in vars(layout).items() if k.endswith("_PORT")}
    for row in table.COMPONENTS:
        for port in row.ports:
            assert (port.setting is None and port.number in constants) or (port.setting and port.number is None)


def test_the_apiserver_port_setting_reaches_every_check_and_preflight(cluster_from) -> None:
    cluster = cluster_from(EVERYTHING.format(port=8443))
    host = cluster.host("m1")
    checks = [g.command for g in control_plane.gates(cluster) + node.gates(cluster)]
    probe = cluster_status.probe_script(cluster, host)
    assert any(":8443/readyz" in c for c in checks) and ":8443/readyz" in probe
    assert not [c for c in checks if "6443" in c] and "6443" not in probe
    assert preflight.required_ports(cluster, host)[8443] == "kube-apiserver"
    assert 6443 not in preflight.required_ports(cluster, host)


def test_every_health_check_is_what_both_the_gates_and_status_ask(everything) -> None:
    gates = {g.name: g.command for g in control_plane.gates(everything) + node.gates(everything)}
    probe = cluster_status.probe_script(everything, everything.host("m1"))
    with_checks = [row for row in table.COMPONENTS if row.health]
    assert {row.name for row in with_checks} == set(table.SERVICES) - {"etcd"}  # etcd's gate asks the cluster
    for row in with_checks:
        for check in health_checks(everything, row.name):
            assert gates[check.name] == check.command
            assert check.command in probe, check.name
    assert [probe_command(everything, p) for p in table.component("containerd").health] == [
        f"test -S {layout.CONTAINERD_SOCKET}"]


def test_every_service_has_a_flags_table_a_version_command_and_takes_extra_flags(cluster_from) -> None:
    for name in table.SERVICES:
        assert name in FLAGS, name
        binary, arguments = layout.binary_path(name), table.component(name).version_command
        assert cluster_status.version_command(name) == f"{binary} {arguments}"
        cluster_from(f"cluster: {{name: t, extra_flags: {{{name}: {{v: '2'}}}}}}\n"
                     "hosts: {m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}}\n")
    assert set(FLAGS) == set(table.SERVICES)
    with pytest.raises(InventoryError, match="cluster.extra_flags: unknown component kubectl; known: "
                       + ", ".join(table.SERVICES)):
        cluster_from("cluster: {name: t, extra_flags: {kubectl: {v: '2'}}}\n"
                     "hosts: {m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}}\n")


def test_every_binary_of_a_row_is_in_its_release_and_installed_by_its_rows_phase(everything) -> None:
    versions = everything.settings.versions
    for row in table.COMPONENTS:
        if row.release is None:
            assert not row.binaries and not row.service, row.name  # an addon: applied through the API
            continue
        shipped = {b.name for b in component_binaries(row.release, component_version(versions, row.release), "amd64")}
        assert set(row.binaries) <= shipped, (row.name, set(row.binaries) - shipped)
        if row.service:
            assert row.name in row.binaries  # its unit runs the binary of its name
    worker = host_binaries(versions, everything.host("w1"))
    assert {b.name for b in worker} == {n for row in table.of_role(table.NODE) for n in row.binaries}
    for binary in host_binaries(versions, everything.host("m1")):
        owner = table.binary_owner(binary.component, binary.name)
        assert artifact_role(binary) == owner.role
        assert binary.services == ((owner.name,) if owner.service and owner.name == binary.name else ())


def test_unit_order_preflight_reset_and_the_upgrade_steps_are_the_tables(everything) -> None:
    host = everything.host("m1")
    assert units_for(host, everything) == [*table.SERVICES, "kbuild-pod-routes"]
    for service in table.SERVICES:
        assert f" {service} " in f" {PREFLIGHT_PROBE.split('for u in ')[1].split(';')[0]} "
    probed_tools = PREFLIGHT_PROBE.split("for t in ")[1].split(";")[0].split()
    for row in table.COMPONENTS:
        assert set(row.host_tools) <= set(probed_tools), row.name
    assert table.host_tools(everything.host("w1")) == ("iptables",)  # kube-proxy's
    stops = reset.plan(everything, host, stamp="x").stop_units
    assert [u.removesuffix(".service") for u in stops[:len(table.SERVICES) + 1]] == [
        "kbuild-pod-routes", *reversed(table.SERVICES)]
    moved = [name for step in table.UPGRADE_STEPS for name in STEP_COMPONENTS[step]]
    assert moved == [row.name for row in table.COMPONENTS if row.upgrade_step]
    assert moved == list(table.SERVICES)  # every service kbuild runs is one an upgrade moves
