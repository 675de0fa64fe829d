"""ExecStart flags per component and version: what must be there, what must not, and extra flags.

The flags each supported minor really has are kbuild's own data (kbuild.render.flagdata, from the
real binaries' --help); every flag kbuild renders is checked against them, for every minor.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from kbuild import layout
from kbuild.artifacts.catalogue import etcd_release
from kbuild.artifacts.mirror import mirror_relative_path
from kbuild.errors import ExitCode, KbuildError
from kbuild.pki.certlist import remote_path
from kbuild.releases import ETCD, KUBERNETES, Minor, minor_of, show
from kbuild.render import FlagError, host_files
from kbuild.render.flagdata import BOOL, known_flags
from kbuild.render.flags import FLAGS, LIFETIMES
from tests.unit.supported import (
    CONTAINERD,
    CONTAINERD_UNSUPPORTED,
    ETCD_PREVIOUS,
    ETCD_RELEASES,
    ETCD_VERSION,
    KUBE,
    KUBE_PREVIOUS,
    KUBERNETES_RELEASES,
    before,
    beyond,
    short,
)

from .conftest import HOSTS, MakeCluster, files_by_path, versions
from .unitfile import exec_start, flag_map

KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
COMPONENT_HOST = {"kube-apiserver": "m1", "kube-controller-manager": "m1", "kube-scheduler": "m1",
                  "kubelet": "w1", "kube-proxy": "w1", "etcd": "m1", "containerd": "w1"}


def unit_flags(cluster, component: str, host: str | None = None) -> dict[str, str]:
    unit = files_by_path(cluster, host or COMPONENT_HOST[component])[str(layout.unit_path(component))]
    argv = exec_start(unit.content)
    assert argv[0] == str(layout.binary_path(component))
    return flag_map(argv)


# -- what must be there ---------------------------------------------------------------------------


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_apiserver_flags(make_cluster: MakeCluster, kubernetes: str) -> None:
    cluster = make_cluster(versions=versions(kubernetes))
    flags = unit_flags(cluster, "kube-apiserver")
    assert flags["advertise-address"] == "198.18.0.11"
    assert flags["secure-port"] == "6443"
    assert flags["service-cluster-ip-range"] == "10.32.0.0/24"
    assert flags["etcd-servers"] == "https://198.18.0.11:2379,https://198.18.0.12:2379,https://198.18.0.13:2379"
    assert flags["etcd-cafile"] == str(remote_path("etcd-ca.crt"))
    assert flags["etcd-certfile"] == str(remote_path("apiserver-etcd-client.crt"))
    assert flags["etcd-keyfile"] == str(remote_path("apiserver-etcd-client.key"))
    assert flags["encryption-provider-config"] == str(remote_path("encryption-config"))
    assert flags["audit-policy-file"] == str(layout.AUDIT_POLICY)
    assert flags["audit-log-path"] == str(layout.AUDIT_LOG)
    assert flags["authorization-mode"] == "Node,RBAC"
    assert "NodeRestriction" in flags["enable-admission-plugins"].split(",")
    assert flags["service-account-issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert flags["service-account-key-file"] == str(remote_path("sa.pub"))
    assert flags["service-account-signing-key-file"] == str(remote_path("sa.key"))
    assert flags["client-ca-file"] == str(remote_path("ca.crt"))
    assert flags["tls-cert-file"] == str(remote_path("apiserver.crt"))
    assert flags["tls-private-key-file"] == str(remote_path("apiserver.key"))
    assert flags["kubelet-client-certificate"] == str(remote_path("apiserver-kubelet-client.crt"))
    assert flags["kubelet-client-key"] == str(remote_path("apiserver-kubelet-client.key"))
    assert flags["kubelet-certificate-authority"] == str(remote_path("ca.crt"))
    assert flags["proxy-client-cert-file"] == str(remote_path("front-proxy-client.crt"))
    assert flags["proxy-client-key-file"] == str(remote_path("front-proxy-client.key"))
    assert flags["requestheader-client-ca-file"] == str(remote_path("front-proxy-ca.crt"))
    assert flags["requestheader-allowed-names"] == "front-proxy-client"
    for header in ("username-headers", "group-headers", "extra-headers-prefix"):
        assert flags[f"requestheader-{header}"].startswith("X-Remote-")
    # Anonymous requests only on the health endpoints, set in the authentication configuration;
    # kube-apiserver refuses --anonymous-auth together with it.
    assert flags["authentication-config"] == str(layout.AUTHENTICATION_CONFIG)
    assert "anonymous-auth" not in flags
    # m1 runs no kube-proxy, so aggregated APIs are reached by endpoint; m3 runs one.
    assert flags["enable-aggregator-routing"] == "true"
    assert "enable-aggregator-routing" not in unit_flags(cluster, "kube-apiserver", "m3")
    # A restart closes watches within 10 s instead of holding the API away until the 60 s shutdown deadline
    # (longer than the node grace period: every Node reaching the API through this host went NotReady).
    assert flags["shutdown-watch-termination-grace-period"] == "10s"


def test_apiserver_without_encryption_at_rest(make_cluster: MakeCluster) -> None:
    assert "encryption-provider-config" not in unit_flags(make_cluster(encryption_at_rest=False), "kube-apiserver")


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_controller_manager_flags(make_cluster: MakeCluster, kubernetes: str) -> None:
    cluster = make_cluster(versions=versions(kubernetes), node_monitor_period="7s",
                           node_monitor_grace_period="1m", pod_cidr="10.244.0.0/16", node_cidr_mask_size=25)
    flags = unit_flags(cluster, "kube-controller-manager")
    assert flags["kubeconfig"] == str(remote_path("controller-manager.conf"))
    assert flags["cluster-signing-cert-file"] == str(remote_path("ca.crt"))
    assert flags["cluster-signing-key-file"] == str(remote_path("ca.key"))
    assert flags["root-ca-file"] == str(remote_path("ca.crt"))
    assert flags["service-account-private-key-file"] == str(remote_path("sa.key"))
    assert flags["cluster-cidr"] == "10.244.0.0/16"
    assert flags["node-cidr-mask-size"] == "25"
    assert flags["service-cluster-ip-range"] == "10.32.0.0/24"
    assert flags["use-service-account-credentials"] == "true"
    assert flags["leader-elect"] == "true"
    assert flags["node-monitor-period"] == "7s"
    assert flags["node-monitor-grace-period"] == "1m"
    # kbuild assigns node pod CIDRs itself (kbuild.render.host_values); the allocator must not compete.
    assert flags["allocate-node-cidrs"] == "false"


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_node_and_scheduler_flags_point_at_their_config_files(make_cluster: MakeCluster, kubernetes: str) -> None:
    cluster = make_cluster(versions=versions(kubernetes))
    assert unit_flags(cluster, "kube-scheduler")["config"] == str(layout.SCHEDULER_CONFIG)
    assert unit_flags(cluster, "kube-proxy") == {"config": str(layout.KUBE_PROXY_CONFIG)}
    assert unit_flags(cluster, "containerd") == {"config": str(layout.CONTAINERD_CONFIG)}
    kubelet = unit_flags(cluster, "kubelet")
    assert kubelet["config"] == str(layout.KUBELET_CONFIG)
    assert kubelet["kubeconfig"] == str(remote_path("kubelet.conf"))
    assert kubelet["hostname-override"] == "w1"
    assert kubelet["node-ip"] == "198.18.0.21"


def test_kubelet_registers_only_the_labels_noderestriction_allows(cluster) -> None:
    from kbuild.render import api_labels

    assert unit_flags(cluster, "kubelet")["node-labels"] == "zone=a"
    assert api_labels(cluster.host("w1").labels) == {"node-role.kubernetes.io/worker": ""}
    assert "node-labels" not in unit_flags(cluster, "kubelet", "w2")


# -- what must not be there -------------------------------------------------------------------------

# Flags the kubelet reads from KubeletConfiguration (deprecated on the command line) or no longer has.
KUBELET_NOT_ON_THE_COMMAND_LINE = {
    "anonymous-auth", "authentication-token-webhook", "authorization-mode", "client-ca-file",
    "tls-cert-file", "tls-private-key-file", "cluster-dns", "cluster-domain", "cgroup-driver",
    "container-runtime-endpoint", "fail-swap-on", "pod-cidr", "resolv-conf", "register-with-taints",
    "runtime-request-timeout", "read-only-port", "rotate-certificates", "pod-infra-container-image",
    "network-plugin", "cni-bin-dir", "cni-conf-dir", "container-runtime", "docker-endpoint",
}
REMOVED = {
    "kube-apiserver": {"insecure-port", "insecure-bind-address", "port", "address", "kubelet-https",
                       "basic-auth-file", "service-account-api-audiences"},
    "kube-controller-manager": {"port", "address", "pod-eviction-timeout", "enable-taint-manager",
                                "experimental-cluster-signing-duration"},
    "kube-scheduler": {"port", "address", "policy-config-file", "algorithm-provider"},
    "kubelet": KUBELET_NOT_ON_THE_COMMAND_LINE,
    "kube-proxy": {"resource-container"},
}


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
@pytest.mark.parametrize("component", sorted(REMOVED))
def test_no_removed_or_config_file_flags(make_cluster: MakeCluster, kubernetes: str, component: str) -> None:
    flags = unit_flags(make_cluster(versions=versions(kubernetes)), component)
    assert not set(flags) & REMOVED[component]


def _value_fits(flag_type: str, value: str) -> bool:
    checks = {
        BOOL: lambda v: v in ("true", "false"),
        "int": lambda v: re.fullmatch(r"-?\d+", v) is not None,
        "int32": lambda v: re.fullmatch(r"-?\d+", v) is not None,
        "duration": lambda v: re.fullmatch(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+|0", v) is not None,
        "ip": lambda v: bool(ipaddress.ip_address(v)),
    }
    return checks.get(flag_type, lambda v: v != "")(value)


def _minor_of(component: str, release: str) -> Minor:
    return minor_of(CONTAINERD if component == "containerd" else release)


# Extra flags every component's flag list has, so the check below covers user flags too.
EXTRA = {"kube-apiserver": {"audit-log-maxage": "7"}, "kubelet": {"v": "2"}, "kube-proxy": {"v": "2"},
         "kube-controller-manager": {"terminated-pod-gc-threshold": "100"}, "kube-scheduler": {"v": "2"},
         "etcd": {"quota-backend-bytes": "8589934592"}, "containerd": {"log-level": "info"}}


def test_every_supported_minor_has_its_flag_list() -> None:
    for component in KUBE_COMPONENTS:
        for minor in KUBERNETES:
            assert known_flags(component, minor), f"no flag list for {component} {show(minor)}"
    for minor in ETCD:
        assert known_flags("etcd", minor), f"no flag list for etcd {show(minor)}"
    assert known_flags("containerd", minor_of(CONTAINERD)), f"no flag list for containerd {CONTAINERD}"


# Every supported Kubernetes minor with the default etcd, every other etcd minor with the default Kubernetes.
RELEASES = [(k, ETCD_VERSION) for k in KUBERNETES_RELEASES] + [(KUBE, e) for e in ETCD_RELEASES if e != ETCD_VERSION]


@pytest.mark.parametrize("kubernetes, etcd", RELEASES)
def test_every_rendered_flag_is_one_that_release_has(make_cluster: MakeCluster, kubernetes: str, etcd: str) -> None:
    """Names and value types, on every host of every role combination, against the release's own --help."""
    cluster = make_cluster(versions=versions(kubernetes, etcd), extra_flags=EXTRA)
    releases = {**{c: kubernetes for c in KUBE_COMPONENTS}, "etcd": etcd, "containerd": CONTAINERD}
    checked = set()
    for host in HOSTS:
        for component, release in releases.items():
            unit = files_by_path(cluster, host).get(str(layout.unit_path(component)))
            if unit is None:
                continue
            known = known_flags(component, _minor_of(component, release))
            assert known is not None
            for name, value in flag_map(exec_start(unit.content)).items():
                assert name in known, f"{component} {release} has no --{name}"
                assert _value_fits(known[name], value), f"--{name}={value} is not a {known[name]}"
                checked.add(component)
    assert checked == set(releases)


def test_every_flag_of_the_table_exists_in_each_minor_it_applies_to() -> None:
    """Also the flags only some settings render (IPv6 pod CIDRs, encryption at rest off, ...)."""
    for component, flags in FLAGS.items():
        minors = {"etcd": ETCD, "containerd": (minor_of(CONTAINERD),)}.get(component, tuple(KUBERNETES))
        for minor in minors:
            known = known_flags(component, minor)
            assert known is not None
            for flag in flags:
                if (flag.since is None or minor >= flag.since) and (flag.until is None or minor < flag.until):
                    assert flag.name in known, f"FLAGS renders --{flag.name} for {component} {show(minor)}"


def test_lifetimes_agree_with_the_flag_lists() -> None:
    for component, flags in LIFETIMES.items():
        for minor in ETCD if component == "etcd" else tuple(KUBERNETES):
            known = known_flags(component, minor)
            assert known is not None
            for name, life in flags.items():
                gone = (life.until is not None and minor >= life.until) or (life.since is not None and
                                                                            minor < life.since)
                assert not (gone and name in known), \
                    f"LIFETIMES says {component} {show(minor)} has no --{name}, its --help lists it"
                if not gone and life.since is not None:
                    assert name in known, f"LIFETIMES says {component} {show(minor)} has --{name}, --help does not"


# -- etcd, per supported minor -------------------------------------------------------------------------

ETCD_EXPECTED = {
    (3, 5): {"experimental-initial-corrupt-check": "true", "experimental-watch-progress-notify-interval": "5s"},
    (3, 6): {"feature-gates": "InitialCorruptCheck=true", "watch-progress-notify-interval": "5s"},
}
ETCD_ABSENT = {
    (3, 5): {"feature-gates", "watch-progress-notify-interval", "logger", "log-outputs", "ca-file"},
    (3, 6): {"experimental-initial-corrupt-check", "experimental-watch-progress-notify-interval", "enable-v2",
             "experimental-enable-v2v3", "logger", "proxy"},
}


def test_the_etcd_tables_cover_every_supported_minor() -> None:
    assert set(ETCD_EXPECTED) == set(ETCD_ABSENT) == set(ETCD)


@pytest.mark.parametrize("etcd", ETCD_RELEASES)
def test_etcd_flags_follow_the_minor(make_cluster: MakeCluster, etcd: str) -> None:
    cluster = make_cluster(versions=versions(etcd=etcd))
    flags = unit_flags(cluster, "etcd", "m2")
    for name, value in ETCD_EXPECTED[minor_of(etcd)].items():
        assert flags[name] == value
    assert not set(flags) & ETCD_ABSENT[minor_of(etcd)]
    assert flags["name"] == "m2"
    assert flags["initial-cluster"] == ("m1=https://198.18.0.11:2380,m2=https://198.18.0.12:2380,"
                                        "m3=https://198.18.0.13:2380")
    assert flags["listen-client-urls"] == "https://198.18.0.12:2379,https://127.0.0.1:2379"
    assert flags["advertise-client-urls"] == "https://198.18.0.12:2379"
    assert flags["listen-peer-urls"] == flags["initial-advertise-peer-urls"] == "https://198.18.0.12:2380"
    assert flags["client-cert-auth"] == flags["peer-client-cert-auth"] == "true"
    assert flags["cert-file"] == str(remote_path("etcd-server.crt"))
    assert flags["peer-cert-file"] == str(remote_path("etcd-peer.crt"))
    assert flags["trusted-ca-file"] == flags["peer-trusted-ca-file"] == str(remote_path("etcd-ca.crt"))
    assert flags["data-dir"] == "/var/lib/etcd"


def test_etcd_data_dir_comes_from_the_inventory(cluster_from) -> None:
    cluster = cluster_from(yaml.safe_dump({"cluster": {"name": "demo"}, "etcd": {"data_dir": "/data/etcd"},
                                           "hosts": HOSTS}))
    assert unit_flags(cluster, "etcd")["data-dir"] == "/data/etcd"


@pytest.mark.parametrize("etcd", ETCD_RELEASES)
def test_no_supported_etcd_needs_to_be_told_arm64_is_unsupported(make_cluster: MakeCluster, etcd: str) -> None:
    hosts = {"m1": {"address": "198.18.0.1", "roles": ["etcd", "control-plane"], "arch": "arm64"},
             "w1": {"address": "198.18.0.2", "roles": ["worker"]}}
    unit = files_by_path(make_cluster(hosts=hosts, versions=versions(etcd=etcd)), "m1")[str(layout.unit_path("etcd"))]
    assert "ETCD_UNSUPPORTED_ARCH" not in unit.content  # only etcd before 3.5 needed it


@pytest.fixture(scope="module")
def real_etcd(built_mirror, tmp_path_factory) -> dict[str, Path]:
    """The test mirror's etcd of every version it holds, unpacked from its release tarball."""
    found = {}
    for version in built_mirror.etcd_versions:
        release = etcd_release(version, "amd64")
        target = tmp_path_factory.mktemp(f"etcd-{version}")
        with tarfile.open(built_mirror.root / mirror_relative_path(release.url)) as tar:
            member = tar.getmember(f"etcd-v{version}-linux-amd64/etcd")
            (target / "etcd").write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
        (target / "etcd").chmod(0o755)
        found[version] = target / "etcd"
    return found


def test_real_etcd_accepts_the_rendered_flags(make_cluster: MakeCluster, real_etcd: dict[str, Path]) -> None:
    """Real etcd parses every flag (names and values) before --version makes it exit 0."""
    assert {minor_of(v) for v in real_etcd} == set(ETCD)  # the mirror holds every supported minor
    for version, binary in real_etcd.items():
        cluster = make_cluster(versions=versions(etcd=version), extra_flags={"etcd": EXTRA["etcd"]})
        argv = exec_start(files_by_path(cluster, "m1")[str(layout.unit_path("etcd"))].content)
        proc = subprocess.run([str(binary), *argv[1:], "--version"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"etcd {version} refused its flags: {proc.stderr[:500]}"
        assert f"etcd Version: {version}" in proc.stdout


# -- extra flags from the inventory --------------------------------------------------------------------


def test_extra_flags_add_and_override_and_the_host_wins(make_cluster: MakeCluster) -> None:
    hosts = {
        "m1": {"address": "198.18.0.1", "roles": ["etcd", "control-plane"],
               "extra_flags": {"kube-apiserver": {"audit-log-maxage": "3", "--v": "4"}}},
        "m2": {"address": "198.18.0.2", "roles": ["etcd", "control-plane"]},
        "m3": {"address": "198.18.0.3", "roles": ["etcd", "control-plane"]},
        "w1": {"address": "198.18.0.4", "roles": ["worker"]},
    }
    cluster = make_cluster(hosts=hosts, extra_flags={
        "kube-apiserver": {"audit-log-maxage": "7", "--event-ttl": "2h", "authorization-mode": "Node,RBAC,AlwaysDeny"},
        "etcd": {"quota-backend-bytes": "8589934592"},
    })
    m1, m2 = unit_flags(cluster, "kube-apiserver", "m1"), unit_flags(cluster, "kube-apiserver", "m2")
    assert (m1["audit-log-maxage"], m2["audit-log-maxage"]) == ("3", "7")  # host over cluster over kbuild
    assert m1["v"] == "4" and "v" not in m2
    assert m1["event-ttl"] == m2["event-ttl"] == "2h"
    assert m2["authorization-mode"] == "Node,RBAC,AlwaysDeny"
    assert unit_flags(cluster, "etcd", "m3")["quota-backend-bytes"] == "8589934592"


def test_extra_flag_values_survive_systemd_quoting(make_cluster: MakeCluster) -> None:
    odd = 'a b "c" $HOME 100% \\x'
    cluster = make_cluster(extra_flags={"kubelet": {"node-status-update-frequency": odd}})
    assert unit_flags(cluster, "kubelet")["node-status-update-frequency"] == odd


def _refusal(make_cluster: MakeCluster, where: str, component: str, flag: str, value: str,
             version: dict[str, str]) -> tuple[FlagError, str]:
    """The error rendering gives for `flag: value` among the cluster's or the component's host's extra flags."""
    host = COMPONENT_HOST[component]
    if where == "cluster":
        cluster = make_cluster(versions=version, extra_flags={component: {flag: value}})
        key = f"cluster.extra_flags.{component}.{flag}"
    else:
        hosts = {**HOSTS, host: {**HOSTS[host], "extra_flags": {component: {flag: value}}}}
        cluster = make_cluster(hosts=hosts, versions=version)
        key = f"hosts.{host}.extra_flags.{component}.{flag}"
    with pytest.raises(FlagError) as info:
        host_files(cluster, cluster.host(host))
    assert info.value.key == key
    assert info.value.exit_code == ExitCode.BAD_INPUT
    return info.value, key


K, E = short(KUBE), short(ETCD_VERSION)


@pytest.mark.parametrize("where, component, flag, version, message, hint", [
    ("cluster", "kube-apiserver", "insecure-port", versions(),
     f"kube-apiserver {K} has no flag --insecure-port (removed in 1.24)", "only the secure port is served"),
    ("cluster", "kubelet", "--network-plugin", versions(KUBE_PREVIOUS),
     f"kubelet {short(KUBE_PREVIOUS)} has no flag --network-plugin (removed in 1.24)", "removed with dockershim"),
    ("host", "kubelet", "container-runtime", versions(),
     f"kubelet {K} has no flag --container-runtime (removed in 1.27)", "only remote (CRI) runtimes remain"),
    ("cluster", "kube-controller-manager", "pod-eviction-timeout", versions(),
     f"kube-controller-manager {K} has no flag --pod-eviction-timeout (removed in 1.27)", "tolerationSeconds"),
    ("cluster", "etcd", "enable-v2", versions(etcd=ETCD_VERSION),
     f"etcd {E} has no flag --enable-v2 (removed in 3.6)", "the v2 API is gone"),
    ("host", "etcd", "feature-gates", versions(etcd=ETCD_PREVIOUS),
     f"etcd {short(ETCD_PREVIOUS)} has no flag --feature-gates (added in 3.6)",
     f"etcd {short(ETCD_PREVIOUS)} uses --experimental-* flags instead"),
    ("cluster", "etcd", "watch-progress-notify-interval", versions(etcd=ETCD_PREVIOUS),
     f"etcd {short(ETCD_PREVIOUS)} has no flag --watch-progress-notify-interval (added in 3.6)",
     f"etcd {short(ETCD_PREVIOUS)} spells it --experimental-watch-progress-notify-interval"),
])
def test_a_flag_the_version_lacks_names_the_inventory_key_and_the_lifetime_hint(
        make_cluster: MakeCluster, where, component, flag, version, message, hint) -> None:
    error, key = _refusal(make_cluster, where, component, flag, "x", version)
    assert str(error).startswith(f"{key}: {message}")
    assert hint in (error.hint or "")


@pytest.mark.parametrize("where, component, flag", [
    ("cluster", "kube-apiserver", "no-such-flag"),
    ("host", "kube-scheduler", "leader-elect-lease"),
    ("cluster", "etcd", "ca-file"),  # etcd 3.4 dropped it; any supported etcd says only that it has none
    ("host", "containerd", "no-such-flag"),
])
def test_an_unknown_extra_flag_is_refused_with_the_inventory_key(make_cluster: MakeCluster, where, component,
                                                                 flag) -> None:
    release = {"etcd": ETCD_VERSION, "containerd": CONTAINERD}.get(component, KUBE)
    error, key = _refusal(make_cluster, where, component, flag, "x", versions())
    assert str(error).startswith(f"{key}: {component} {short(release)} has no flag --{flag}")
    assert error.hint == f"the flags are those of `{component} --help` of that release"


def _dropped_by_the_newest_minor() -> tuple[str, str]:
    """A flag of the previous Kubernetes minor that the newest one no longer has, from the flag data."""
    previous, newest = sorted(KUBERNETES)[-2:]
    for component in KUBE_COMPONENTS:
        gone = sorted(set(known_flags(component, previous) or {}) - set(known_flags(component, newest) or {}))
        gone = [g for g in gone if known_flags(component, previous)[g] != BOOL]  # type: ignore[index]
        if gone:
            return component, gone[0]
    raise AssertionError(f"no flag of Kubernetes {show(previous)} is gone in {show(newest)}")


def test_a_flag_the_newest_minor_dropped_is_accepted_before_and_refused_after(make_cluster: MakeCluster) -> None:
    component, flag = _dropped_by_the_newest_minor()
    assert flag not in LIFETIMES.get(component, {})  # the data alone decides
    older = make_cluster(versions=versions(KUBE_PREVIOUS), extra_flags={component: {flag: "1"}})
    assert unit_flags(older, component)[flag] == "1"
    error, key = _refusal(make_cluster, "cluster", component, flag, "1", versions())
    assert str(error).startswith(f"{key}: {component} {short(KUBE)} has no flag --{flag}")


@pytest.mark.parametrize("component, flag, value", [
    ("kube-apiserver", "allow-privileged", "yes"),  # kbuild sets it: a user's value replaces it, checked too
    ("kubelet", "register-node", "on"),
    ("etcd", "enable-pprof", "enabled"),
])
def test_a_boolean_flag_takes_only_what_the_binary_parses(make_cluster: MakeCluster, component, flag, value) -> None:
    release = ETCD_VERSION if component == "etcd" else KUBE
    assert known_flags(component, minor_of(release))[flag] == BOOL  # type: ignore[index]
    error, key = _refusal(make_cluster, "host", component, flag, value, versions())
    assert str(error) == f"{key}: --{flag} is a boolean flag; {value!r} is not true or false"
    for accepted in ("true", "False", "1", "f"):
        cluster = make_cluster(extra_flags={component: {flag: accepted}})
        assert unit_flags(cluster, component)[flag] == accepted


def test_a_flag_a_version_still_has_is_accepted(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(versions=versions(etcd=ETCD_PREVIOUS), extra_flags={"etcd": {"enable-v2": "false"}})
    assert unit_flags(cluster, "etcd")["enable-v2"] == "false"


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_anonymous_auth_conflicts_with_the_authentication_config(make_cluster: MakeCluster, kubernetes) -> None:
    cluster = make_cluster(versions=versions(kubernetes), extra_flags={"kube-apiserver": {"anonymous-auth": "false"}})
    with pytest.raises(FlagError, match=r"cluster\.extra_flags\.kube-apiserver\.anonymous-auth: kube-apiserver "
                                        r"refuses --anonymous-auth together with --authentication-config"):
        host_files(cluster, cluster.host("m1"))


def test_a_malformed_flag_name_is_an_error(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(extra_flags={"kube-proxy": {"v=2": "3"}})
    with pytest.raises(FlagError, match=r"cluster\.extra_flags\.kube-proxy\.v=2: 'v=2' is not a flag name"):
        host_files(cluster, cluster.host("w1"))


@pytest.mark.parametrize("setting, value, message", [
    ("kubernetes", before(tuple(KUBERNETES)), f"Kubernetes {short(before(tuple(KUBERNETES)))} is not supported"),
    ("kubernetes", beyond(tuple(KUBERNETES)), f"Kubernetes {short(beyond(tuple(KUBERNETES)))} is not supported"),
    ("etcd", before(ETCD), f"etcd {short(before(ETCD))} is not supported"),
    ("containerd", CONTAINERD_UNSUPPORTED, f"containerd {CONTAINERD_UNSUPPORTED} is not supported"),
])
def test_a_cluster_made_in_code_with_an_unsupported_version_does_not_render(cluster, setting, value,
                                                                            message) -> None:
    """The inventory refuses these when it loads; a Cluster built in code meets the same refusal."""
    changed = cluster.settings.versions.model_copy(update={setting: value})
    odd = dataclasses.replace(cluster, settings=cluster.settings.model_copy(update={"versions": changed}))
    with pytest.raises(KbuildError, match=re.escape(f"cluster.versions.{setting}: {message}")):
        host_files(odd, odd.host("m3"))


def test_host_extra_flags_for_a_component_the_host_does_not_run(make_cluster: MakeCluster) -> None:
    hosts = {**HOSTS, "w2": {**HOSTS["w2"], "extra_flags": {"etcd": {"quota-backend-bytes": "1"}}}}
    cluster = make_cluster(hosts=hosts)
    with pytest.raises(FlagError, match=r"hosts\.w2\.extra_flags\.etcd: host w2 runs no etcd"):
        host_files(cluster, cluster.host("w2"))
