"""The PKI table's placements: remote paths, secrecy, roles and readers, and that deploy and the rest derive from it."""

from __future__ import annotations

import stat
from pathlib import PurePosixPath

import pytest

from kbuild.inventory import Cluster
from kbuild.pki import ensure, host_files
from kbuild.pki.certlist import (
    CERTS,
    HOST_FILES,
    HOST_ROLES,
    KUBECONFIGS,
    PKI_TABLE,
    SERVICE_ACCOUNT,
    CertSpec,
    remote_path,
)
from kbuild.plays.components import listening_ports
from kbuild.render import units_for
from kbuild.render.host_values import paths

from .conftest import NOW


def test_every_remote_path_id_and_state_file_is_unique() -> None:
    for what in ("remote", "id", "local"):
        values = [getattr(f, what) for f in HOST_FILES]
        assert len(set(values)) == len(values), f"a {what} is listed twice: {values}"
    assert all(isinstance(f.remote, PurePosixPath) and f.remote.is_absolute() for f in HOST_FILES)


def test_keys_and_files_holding_keys_are_0600_certificates_and_public_keys_0644() -> None:
    for f in HOST_FILES:
        holds_key = f.id.endswith(".key") or f.id.endswith(".conf") or f.id == "encryption-config"
        assert f.secret is holds_key, f.id
        assert f.mode == (0o600 if holds_key else 0o644), f.id


def test_the_state_directory_holds_each_file_with_the_tables_mode(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    for host in cluster.hosts:
        for f in HOST_FILES:
            if f.wanted(cluster, host):
                local = cluster.state_dir / f.local.format(host=host.name)
                # The controller keeps public files readable, secrets for its owner only, as on the hosts.
                assert bool(stat.S_IMODE(local.stat().st_mode) & 0o077) is not f.secret, local


def test_every_service_named_is_a_component_of_the_component_table(cluster: Cluster) -> None:
    components = set(listening_ports(cluster))
    for f in HOST_FILES:
        for role, services in f.readers:
            assert role in HOST_ROLES, f"{f.id}: unknown role {role}"
            for service in services:
                assert service in components, f"{f.id}: {service} is not in kbuild.plays.components"
    for host in cluster.hosts:  # and a host that gets the file runs the services restarted for it
        units = set(units_for(host, cluster))
        for f in HOST_FILES:
            if f.wanted(cluster, host):
                assert set(f.services_on(host)) <= units, f"{host.name}: {f.id}"


def test_per_host_rows_go_only_to_the_hosts_they_are_issued_for(cluster: Cluster) -> None:
    for row in PKI_TABLE:
        if getattr(row, "hosts", None) is None:
            continue
        issued_for = {h.name for h in row.hosts(cluster)}
        for f in row.host_files():
            receiving = {h.name for h in cluster.hosts if f.wanted(cluster, h)}
            assert receiving <= issued_for, f"{f.id} goes to {receiving - issued_for} without being issued there"


def test_deploys_file_list_for_each_host_is_what_the_table_derives(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    for host in cluster.hosts:
        deployed = {f.path: (f.mode, f.secret, f.services) for f in host_files(cluster, host)}
        derived = {f.remote: (f.mode, f.secret, f.services_on(host)) for f in HOST_FILES if f.wanted(cluster, host)}
        assert deployed == derived, host.name


def test_rows_that_stay_on_the_controller_are_placed_nowhere() -> None:
    placed = {f.id for f in HOST_FILES}
    # Client identities travel inside their kubeconfigs; the etcd and front-proxy CA keys never leave the controller.
    for name in ("admin", "controller-manager", "scheduler", "kube-proxy", "kubelet-client"):
        assert not {f"{name}.crt", f"{name}.key"} & placed, name
    assert not {"etcd-ca.key", "front-proxy-ca.key"} & placed
    assert {k.name for k in KUBECONFIGS} <= placed


def test_service_account_keys_and_the_encryption_config_are_rows() -> None:
    assert SERVICE_ACCOUNT in PKI_TABLE
    assert remote_path("sa.key") == PurePosixPath("/etc/kubernetes/pki/sa.key")
    assert remote_path("sa.pub") == PurePosixPath("/etc/kubernetes/pki/sa.pub")
    assert remote_path("encryption-config") == PurePosixPath("/etc/kubernetes/encryption-config.yaml")
    assert [r for r in PKI_TABLE if isinstance(r, CertSpec)] == list(CERTS)


def test_templates_name_every_placed_file() -> None:
    known = paths()
    for f in HOST_FILES:
        assert known[f.template_name] == str(f.remote), f.id
    assert known["ca_cert"] == "/etc/kubernetes/pki/ca.crt"
    assert known["kubelet_serving_cert"] == "/var/lib/kubelet/pki/kubelet.crt"
    assert known["kube_proxy_kubeconfig"] == "/etc/kubernetes/kube-proxy.conf"


def test_an_unknown_file_id_is_named_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"no PKI file 'ca\.pem' is placed on hosts; known: ca\.crt, ca\.key"):
        remote_path("ca.pem")
