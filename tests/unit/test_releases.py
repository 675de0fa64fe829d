"""kbuild.releases: what kbuild supports, and refusals that name what it would take instead."""

from __future__ import annotations

import pytest

from kbuild.imageref import ImageRef
from kbuild.releases import ETCD, KUBERNETES, UnsupportedRelease, check_supported, minor_of, show
from tests.unit.supported import (
    CONTAINERD_UNSUPPORTED,
    DEFAULTS,
    ETCD_RELEASES,
    KUBERNETES_RELEASES,
    RUNC_FIXED,
    RUNC_VULNERABLE,
    before,
    beyond,
)

KUBERNETES_LIST = ", ".join(show(m) for m in KUBERNETES)


def inventory_with(**versions: str) -> str:
    """A one-host inventory pinning these cluster.versions."""
    pins = ", ".join(f"{name}: '{value}'" for name, value in versions.items())
    return ("cluster: {name: t, versions: {" + pins + "}}\n"
            "hosts:\n  m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}\n")


def test_kbuild_s_defaults_are_supported_releases():
    for field in ("kubernetes", "etcd", "containerd", "runc"):
        check_supported(field, getattr(DEFAULTS, field))  # raises if not
    assert minor_of(DEFAULTS.kubernetes) == max(KUBERNETES) and minor_of(DEFAULTS.etcd) == max(ETCD)
    assert minor_of(DEFAULTS.crictl) == minor_of(DEFAULTS.kubernetes)  # crictl follows the Kubernetes minor


def test_every_supported_kubernetes_minor_names_a_sandbox_image():
    for minor, profile in KUBERNETES.items():
        assert ImageRef.parse(profile.pause_image).repository == "pause", show(minor)


@pytest.mark.parametrize("version", [*KUBERNETES_RELEASES, f"v{DEFAULTS.kubernetes}"])
def test_every_supported_kubernetes_release_passes(version, cluster_from):
    # Through the inventory, where the check runs: the release is accepted and kept as written.
    cluster = cluster_from(inventory_with(kubernetes=version))
    assert minor_of(str(cluster.settings.versions.kubernetes)) == minor_of(version)


@pytest.mark.parametrize("version", ETCD_RELEASES)
def test_every_supported_etcd_release_passes(version, cluster_from):
    cluster = cluster_from(inventory_with(etcd=version))
    assert minor_of(str(cluster.settings.versions.etcd)) == minor_of(version)


@pytest.mark.parametrize("component, version, message", [
    ("kubernetes", before(tuple(KUBERNETES)),
     f"Kubernetes {show(minor_of(before(tuple(KUBERNETES))))} is not supported (upstream supports "
     f"{KUBERNETES_LIST}); use one of those"),
    ("kubernetes", beyond(tuple(KUBERNETES)),
     f"Kubernetes {show(minor_of(beyond(tuple(KUBERNETES))))} is not supported (upstream supports "
     f"{KUBERNETES_LIST}); use one of those"),
    ("etcd", before(ETCD), f"etcd {show(minor_of(before(ETCD)))} is not supported; use etcd "
                           f"{' or '.join(show(m) for m in ETCD)}"),
    ("etcd", beyond(ETCD), f"etcd {show(minor_of(beyond(ETCD)))} is not supported; use etcd "
                           f"{' or '.join(show(m) for m in ETCD)}"),
    ("containerd", CONTAINERD_UNSUPPORTED,
     f"containerd {CONTAINERD_UNSUPPORTED} is not supported: Kubernetes 1.36 and later need containerd 2.x"),
    ("runc", RUNC_VULNERABLE, f"runc {RUNC_VULNERABLE} has CVE-2024-21626 (fixed in {RUNC_FIXED}); use a current runc"),
])
def test_an_unsupported_release_is_refused_naming_what_to_use(component, version, message):
    with pytest.raises(UnsupportedRelease) as caught:
        check_supported(component, version)
    assert str(caught.value).startswith(message)


def test_the_oldest_runc_without_the_escape_is_accepted_and_components_without_rules_pass(cluster_from):
    cluster = cluster_from(inventory_with(runc=RUNC_FIXED, cni_plugins="0.1.0"))  # CNI: no support window
    assert (str(cluster.settings.versions.runc), str(cluster.settings.versions.cni_plugins)) == (RUNC_FIXED, "0.1.0")
