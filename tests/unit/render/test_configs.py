"""Rendered YAML, TOML and JSON parse and say what the components need."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml

from kbuild import layout

from .conftest import MakeCluster, files_by_path, versions


def config(cluster, host: str, path) -> str:
    return files_by_path(cluster, host)[str(path)].content


@pytest.mark.parametrize("path, api_version, kind", [
    (layout.KUBELET_CONFIG, "kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
    (layout.KUBE_PROXY_CONFIG, "kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"),
])
@pytest.mark.parametrize("kubernetes", ["1.33.5", "1.34.1"])
def test_node_configs_parse_with_kind(make_cluster: MakeCluster, path, api_version, kind, kubernetes) -> None:
    doc = yaml.safe_load(config(make_cluster(versions=versions(kubernetes)), "w1", path))
    assert (doc["apiVersion"], doc["kind"]) == (api_version, kind)


@pytest.mark.parametrize("kubernetes, auth_api", [
    ("1.32.9", "apiserver.config.k8s.io/v1beta1"),
    ("1.33.5", "apiserver.config.k8s.io/v1beta1"),
    ("1.34.1", "apiserver.config.k8s.io/v1"),
])
def test_control_plane_configs_parse_with_kind(make_cluster: MakeCluster, kubernetes, auth_api) -> None:
    cluster = make_cluster(versions=versions(kubernetes))
    scheduler = yaml.safe_load(config(cluster, "m1", layout.SCHEDULER_CONFIG))
    assert (scheduler["apiVersion"], scheduler["kind"]) == ("kubescheduler.config.k8s.io/v1", "KubeSchedulerConfiguration")
    assert scheduler["clientConnection"]["kubeconfig"] == str(layout.SCHEDULER_KUBECONFIG)
    assert scheduler["leaderElection"]["leaderElect"] is True

    audit = yaml.safe_load(config(cluster, "m1", layout.AUDIT_POLICY))
    assert (audit["apiVersion"], audit["kind"]) == ("audit.k8s.io/v1", "Policy")
    levels = [rule["level"] for rule in audit["rules"]]
    assert set(levels) <= {"None", "Metadata", "Request", "RequestResponse"}
    assert audit["rules"][-1] == {"level": "Metadata"}  # a catch-all last
    secrets_rule = next(r for r in audit["rules"] if "secrets" in str(r.get("resources", "")))
    assert secrets_rule["level"] == "Metadata"  # never the bodies of secrets

    auth = yaml.safe_load(config(cluster, "m1", layout.AUTHENTICATION_CONFIG))
    assert (auth["apiVersion"], auth["kind"]) == (auth_api, "AuthenticationConfiguration")
    assert auth["anonymous"] == {"enabled": True,
                                 "conditions": [{"path": "/livez"}, {"path": "/readyz"}, {"path": "/healthz"}]}


def test_kubelet_config_secures_the_kubelet_api(cluster) -> None:
    doc = yaml.safe_load(config(cluster, "w1", layout.KUBELET_CONFIG))
    authn = doc["authentication"]
    assert authn["anonymous"] == {"enabled": False}
    assert authn["webhook"] == {"enabled": True}
    assert authn["x509"] == {"clientCAFile": str(layout.CA_CERT)}
    assert doc["authorization"] == {"mode": "Webhook"}
    assert doc["tlsCertFile"] == str(layout.KUBELET_SERVING_CERT)
    assert doc["tlsPrivateKeyFile"] == str(layout.KUBELET_SERVING_KEY)
    assert doc["clusterDNS"] == [str(cluster.cluster_dns_ip)] == ["10.32.0.10"]
    assert doc["clusterDomain"] == "cluster.local"
    assert doc["cgroupDriver"] == "systemd"
    assert doc["containerRuntimeEndpoint"] == f"unix://{layout.CONTAINERD_SOCKET}"
    assert doc["failSwapOn"] is True
    assert doc["registerWithTaints"] == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    assert "registerWithTaints" not in yaml.safe_load(config(cluster, "w2", layout.KUBELET_CONFIG))


def test_kubelet_config_follows_the_inventory(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(fail_swap_on=False, cluster_domain="k8s.example", service_cidr="10.96.0.0/16",
                           cluster_dns="10.96.0.53")
    doc = yaml.safe_load(config(cluster, "w2", layout.KUBELET_CONFIG))
    assert doc["failSwapOn"] is False
    assert doc["clusterDomain"] == "k8s.example"
    assert doc["clusterDNS"] == ["10.96.0.53"]


def test_a_malformed_taint_names_the_inventory_key(make_cluster: MakeCluster) -> None:
    from kbuild.errors import KbuildError
    from kbuild.render import host_files

    cluster = make_cluster(hosts={"m1": {"address": "198.18.0.1", "roles": ["etcd", "control-plane"]},
                                  "w1": {"address": "198.18.0.2", "roles": ["worker"], "taints": ["gpu=yes"]}})
    with pytest.raises(KbuildError, match=r"hosts\.w1\.taints\.0: 'gpu=yes'"):
        host_files(cluster, cluster.host("w1"))


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ipvs"])
def test_kube_proxy_mode_comes_from_the_inventory(make_cluster: MakeCluster, mode: str) -> None:
    cluster = make_cluster(proxy_mode=mode, pod_cidr="10.244.0.0/16")
    doc = yaml.safe_load(config(cluster, "w1", layout.KUBE_PROXY_CONFIG))
    assert doc["mode"] == mode
    assert doc["clusterCIDR"] == "10.244.0.0/16"
    assert doc["clientConnection"]["kubeconfig"] == str(layout.KUBE_PROXY_KUBECONFIG)
    assert doc["hostnameOverride"] == "w1"  # the node name, as the kubelet registered it


def test_kube_proxy_defaults_to_iptables(cluster) -> None:
    assert yaml.safe_load(config(cluster, "w1", layout.KUBE_PROXY_CONFIG))["mode"] == "iptables"


RUNC_V2 = ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "runc")
RUNC_V3 = ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc")


def _dig(doc: dict, keys: tuple[str, ...]) -> dict:
    for key in keys:
        doc = doc[key]
    return doc


@pytest.mark.parametrize("containerd, config_version, runc, cni, sandbox", [
    ("1.6.20", 2, RUNC_V2, ("plugins", "io.containerd.grpc.v1.cri", "cni"),
     ("plugins", "io.containerd.grpc.v1.cri", "sandbox_image")),
    ("1.7.27", 2, RUNC_V2, ("plugins", "io.containerd.grpc.v1.cri", "cni"),
     ("plugins", "io.containerd.grpc.v1.cri", "sandbox_image")),
    ("2.0.5", 3, RUNC_V3, ("plugins", "io.containerd.cri.v1.runtime", "cni"),
     ("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox")),
    ("2.1.4", 3, RUNC_V3, ("plugins", "io.containerd.cri.v1.runtime", "cni"),
     ("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox")),
])
def test_containerd_config_matches_its_version(make_cluster: MakeCluster, containerd, config_version, runc, cni,
                                               sandbox) -> None:
    cluster = make_cluster(versions=versions(containerd=containerd))
    doc = tomllib.loads(config(cluster, "w1", layout.CONTAINERD_CONFIG))
    assert doc["version"] == config_version
    assert doc["grpc"]["address"] == str(layout.CONTAINERD_SOCKET)
    assert _dig(doc, runc)["runtime_type"] == "io.containerd.runc.v2"
    assert _dig(doc, runc)["options"]["SystemdCgroup"] is True
    assert _dig(doc, cni) == {"bin_dir": str(layout.CNI_BIN_DIR), "conf_dir": str(layout.CNI_CONF_DIR)}
    assert _dig(doc, sandbox[:-1])[sandbox[-1]] == "registry.k8s.io/pause:3.10"


def test_sandbox_image_follows_kubernetes(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(versions=versions(kubernetes="1.34.1"))
    doc = tomllib.loads(config(cluster, "w1", layout.CONTAINERD_CONFIG))
    assert doc["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "registry.k8s.io/pause:3.10.1"


def test_cni_configs_are_json(cluster) -> None:
    bridge = json.loads(config(cluster, "w1", layout.CNI_BRIDGE_CONF))
    assert bridge["type"] == "bridge" and bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert bridge["cniVersion"] == "1.0.0"
    loopback = json.loads(config(cluster, "w1", layout.CNI_LOOPBACK_CONF))
    assert loopback == {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}
    # containerd loads only the first file of the directory: the bridge must sort first.
    assert sorted([layout.CNI_BRIDGE_CONF.name, layout.CNI_LOOPBACK_CONF.name])[0] == layout.CNI_BRIDGE_CONF.name


def test_every_yaml_file_parses(cluster) -> None:
    for host in ("m3", "w1"):
        for path, f in files_by_path(cluster, host).items():
            if path.endswith(".yaml"):
                assert all(isinstance(doc, dict) for doc in yaml.safe_load_all(f.content)), path
