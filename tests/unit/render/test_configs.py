"""Rendered YAML, TOML and JSON parse and say what the components need."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml

from kbuild import layout
from kbuild.errors import UsageError
from kbuild.pki.certlist import remote_path
from kbuild.releases import CONTAINERD_MAJORS, KUBERNETES, minor_of
from kbuild.render.files import merge_overrides
from tests.unit.supported import CONTAINERD, KUBERNETES_RELEASES

from .conftest import MakeCluster, files_by_path, versions


def config(cluster, host: str, path) -> str:
    return files_by_path(cluster, host)[str(path)].content


@pytest.mark.parametrize("path, api_version, kind", [
    (layout.KUBELET_CONFIG, "kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
    (layout.KUBE_PROXY_CONFIG, "kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"),
])
@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_node_configs_parse_with_kind(make_cluster: MakeCluster, path, api_version, kind, kubernetes) -> None:
    doc = yaml.safe_load(config(make_cluster(versions=versions(kubernetes)), "w1", path))
    assert (doc["apiVersion"], doc["kind"]) == (api_version, kind)


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_control_plane_configs_parse_with_kind(make_cluster: MakeCluster, kubernetes) -> None:
    cluster = make_cluster(versions=versions(kubernetes))
    scheduler = yaml.safe_load(config(cluster, "m1", layout.SCHEDULER_CONFIG))
    assert (scheduler["apiVersion"], scheduler["kind"]) == ("kubescheduler.config.k8s.io/v1", "KubeSchedulerConfiguration")
    assert scheduler["clientConnection"]["kubeconfig"] == str(remote_path("scheduler.conf"))
    assert scheduler["leaderElection"]["leaderElect"] is True

    audit = yaml.safe_load(config(cluster, "m1", layout.AUDIT_POLICY))
    assert (audit["apiVersion"], audit["kind"]) == ("audit.k8s.io/v1", "Policy")
    levels = [rule["level"] for rule in audit["rules"]]
    assert set(levels) <= {"None", "Metadata", "Request", "RequestResponse"}
    assert audit["rules"][-1] == {"level": "Metadata"}  # a catch-all last
    secrets_rule = next(r for r in audit["rules"] if "secrets" in str(r.get("resources", "")))
    assert secrets_rule["level"] == "Metadata"  # never the bodies of secrets

    auth = yaml.safe_load(config(cluster, "m1", layout.AUTHENTICATION_CONFIG))
    assert (auth["apiVersion"], auth["kind"]) == ("apiserver.config.k8s.io/v1", "AuthenticationConfiguration")
    assert auth["anonymous"] == {"enabled": True,
                                 "conditions": [{"path": "/livez"}, {"path": "/readyz"}, {"path": "/healthz"}]}


def test_kubelet_config_secures_the_kubelet_api(cluster) -> None:
    doc = yaml.safe_load(config(cluster, "w1", layout.KUBELET_CONFIG))
    authn = doc["authentication"]
    assert authn["anonymous"] == {"enabled": False}
    assert authn["webhook"] == {"enabled": True}
    assert authn["x509"] == {"clientCAFile": str(remote_path("ca.crt"))}
    assert doc["authorization"] == {"mode": "Webhook"}
    assert doc["tlsCertFile"] == str(remote_path("kubelet-serving.crt"))
    assert doc["tlsPrivateKeyFile"] == str(remote_path("kubelet-serving.key"))
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

    # Refused when the inventory is loaded, before anything is rendered.
    with pytest.raises(KbuildError, match=r"hosts\.w1\.taints\.0: 'gpu=yes'"):
        make_cluster(hosts={"m1": {"address": "198.18.0.1", "roles": ["etcd", "control-plane"]},
                            "w1": {"address": "198.18.0.2", "roles": ["worker"], "taints": ["gpu=yes"]}})


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ipvs"])
def test_kube_proxy_mode_comes_from_the_inventory(make_cluster: MakeCluster, mode: str) -> None:
    cluster = make_cluster(proxy_mode=mode, pod_cidr="10.244.0.0/16")
    doc = yaml.safe_load(config(cluster, "w1", layout.KUBE_PROXY_CONFIG))
    assert doc["mode"] == mode
    assert doc["clusterCIDR"] == "10.244.0.0/16"
    assert doc["clientConnection"]["kubeconfig"] == str(remote_path("kube-proxy.conf"))
    assert doc["hostnameOverride"] == "w1"  # the node name, as the kubelet registered it


def test_kube_proxy_defaults_to_iptables(cluster) -> None:
    assert yaml.safe_load(config(cluster, "w1", layout.KUBE_PROXY_CONFIG))["mode"] == "iptables"


RUNC = ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc")


def _dig(doc: dict, keys: tuple[str, ...]) -> dict:
    for key in keys:
        doc = doc[key]
    return doc


@pytest.mark.parametrize("containerd", sorted({CONTAINERD, f"{CONTAINERD_MAJORS[0]}.0.0"}))
def test_containerd_config_is_version_3_for_every_containerd_2(make_cluster: MakeCluster, containerd) -> None:
    cluster = make_cluster(versions=versions(containerd=containerd))
    doc = tomllib.loads(config(cluster, "w1", layout.CONTAINERD_CONFIG))
    assert doc["version"] == 3
    assert doc["grpc"]["address"] == str(layout.CONTAINERD_SOCKET)
    assert _dig(doc, RUNC)["runtime_type"] == "io.containerd.runc.v2"
    assert _dig(doc, RUNC)["options"]["SystemdCgroup"] is True
    assert doc["plugins"]["io.containerd.cri.v1.runtime"]["cni"] == {"bin_dir": str(layout.CNI_BIN_DIR),
                                                                     "conf_dir": str(layout.CNI_CONF_DIR)}
    assert doc["plugins"]["io.containerd.cri.v1.images"]["snapshotter"] == "overlayfs"
    assert "io.containerd.grpc.v1.cri" not in doc["plugins"]  # the containerd 1.x section


@pytest.mark.parametrize("kubernetes", KUBERNETES_RELEASES)
def test_sandbox_image_follows_kubernetes(make_cluster: MakeCluster, kubernetes) -> None:
    cluster = make_cluster(versions=versions(kubernetes))
    doc = tomllib.loads(config(cluster, "w1", layout.CONTAINERD_CONFIG))
    pinned = doc["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]
    assert pinned == {"sandbox": KUBERNETES[minor_of(kubernetes)].pause_image}


def test_cni_configs_are_json(cluster) -> None:
    network = json.loads(config(cluster, "w1", layout.CNI_BRIDGE_CONF))
    assert network["cniVersion"] == "1.0.0" and layout.CNI_BRIDGE_CONF.suffix == ".conflist"
    bridge, portmap = network["plugins"]
    assert bridge["type"] == "bridge" and bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    # Chained after the bridge, with the capability that makes the kubelet pass a pod's hostPorts to it.
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
    loopback = json.loads(config(cluster, "w1", layout.CNI_LOOPBACK_CONF))
    assert loopback == {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}
    # containerd loads only the first file of the directory: the bridge must sort first.
    assert sorted([layout.CNI_BRIDGE_CONF.name, layout.CNI_LOOPBACK_CONF.name])[0] == layout.CNI_BRIDGE_CONF.name


def test_every_yaml_file_parses(cluster) -> None:
    for host in ("m3", "w1"):
        for path, f in files_by_path(cluster, host).items():
            if path.endswith(".yaml"):
                assert all(isinstance(doc, dict) for doc in yaml.safe_load_all(f.content)), path


# -- settings from the inventory merged over the rendered configs -------------------------------------

RENDERED_YAML = """\
# Managed by kbuild (template t.j2).
# A second header line.
kind: Thing
# a comment inside
spec:
  keep: 1
  change: old
  list: [a, b]
name: x
"""


def test_without_overrides_the_text_is_kept_as_rendered_comments_and_all() -> None:
    assert merge_overrides(RENDERED_YAML, {}, "cluster.kubelet_config") == RENDERED_YAML
    toml = "# header\nversion = 3\n# inside\n[grpc]\n  address = 'x'\n"
    assert merge_overrides(toml, {}, "cluster.containerd_config", toml=True) == toml


def test_overrides_merge_mappings_key_by_key_and_replace_everything_else() -> None:
    text = merge_overrides(RENDERED_YAML, {"spec": {"change": "new", "list": ["c"], "added": {"deep": True}},
                                           "name": {"now": "a mapping"}}, "cluster.kubelet_config")
    assert text.startswith("# Managed by kbuild (template t.j2).\n# A second header line.\n"
                           "# With cluster.kubelet_config from the inventory merged in.\n")
    assert yaml.safe_load(text) == {"kind": "Thing", "spec": {"keep": 1, "change": "new", "list": ["c"],
                                                              "added": {"deep": True}},
                                    "name": {"now": "a mapping"}}
    assert list(yaml.safe_load(text)["spec"]) == ["keep", "change", "list", "added"]  # the template's order kept


RENDERED_TOML = '# Managed by kbuild.\nversion = 3\n\n[plugins."io.containerd.cri.v1.runtime"]\n  keep = 1\n'


@pytest.mark.parametrize("toml", [False, True], ids=["yaml", "toml"])
def test_the_merged_file_does_not_depend_on_the_order_of_the_inventory(toml: bool) -> None:
    rendered, load = (RENDERED_TOML, tomllib.loads) if toml else (RENDERED_YAML, yaml.safe_load)
    inside = ("plugins", "io.containerd.cri.v1.runtime") if toml else ("spec",)  # a mapping the template has

    def nested(value: dict) -> dict:
        for key in reversed(inside):
            value = {key: value}
        return value

    one = merge_overrides(rendered, {"b": 1, "a": {"y": 1, "x": 2}, **nested({"z": 1, "m": 2})}, "s", toml=toml)
    other = merge_overrides(rendered, {**nested({"m": 2, "z": 1}), "a": {"x": 2, "y": 1}, "b": 1}, "s", toml=toml)
    assert one == other
    merged, template = load(one), load(rendered)
    assert list(merged["a"]) == ["x", "y"]  # keys the template lacks: sorted
    assert list(_dig(merged, inside)) == [*_dig(template, inside), "m", "z"]  # after the template's own
    if not toml:  # (TOML writes a table's plain values before its tables, whatever the order)
        assert list(merged) == ["kind", "spec", "name", "a", "b"]


def test_toml_overrides_merge_into_nested_tables() -> None:
    overrides = {"plugins": {"io.containerd.cri.v1.runtime": {"restrict_oom_score_adj": True}}}
    text = merge_overrides(RENDERED_TOML, overrides, "cluster.containerd_config", toml=True)
    assert text.startswith("# Managed by kbuild.\n# With cluster.containerd_config from the inventory merged in.\n")
    assert tomllib.loads(text) == {"version": 3, "plugins": {"io.containerd.cri.v1.runtime": {
        "keep": 1, "restrict_oom_score_adj": True}}}


def test_what_cannot_be_merged_or_written_names_the_setting() -> None:
    with pytest.raises(UsageError, match="cluster.kubelet_config: the template renders no mapping to merge into"):
        merge_overrides("- a list\n", {"a": 1}, "cluster.kubelet_config")
    with pytest.raises(UsageError, match=r"cluster\.containerd_config: cannot be written into the TOML file"):
        merge_overrides("version = 3\n", {"nothing": None}, "cluster.containerd_config", toml=True)


def test_the_inventory_settings_reach_the_node_configs(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(
        kubelet_config={"evictionHard": {"memory.available": "5%"}, "imageGCHighThresholdPercent": 100},
        kube_proxy_config={"conntrack": {"maxPerCore": 0}},
        containerd_config={"plugins": {"io.containerd.cri.v1.runtime": {"restrict_oom_score_adj": True}}})
    kubelet = yaml.safe_load(config(cluster, "w1", layout.KUBELET_CONFIG))
    assert kubelet["evictionHard"] == {"memory.available": "5%"} and kubelet["imageGCHighThresholdPercent"] == 100
    assert kubelet["authentication"]["anonymous"] == {"enabled": False}  # kbuild's own settings stay
    proxy = yaml.safe_load(config(cluster, "w1", layout.KUBE_PROXY_CONFIG))
    assert proxy["conntrack"]["maxPerCore"] == 0 and proxy["mode"] == "iptables"
    containerd = tomllib.loads(config(cluster, "w1", layout.CONTAINERD_CONFIG))
    runtime = containerd["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True and _dig(containerd, RUNC)["options"]["SystemdCgroup"] is True
    assert config(cluster, "w1", layout.CONTAINERD_CONFIG).startswith("# Managed by kbuild")
    untouched = make_cluster()
    assert "merged in" not in config(untouched, "w1", layout.KUBELET_CONFIG)
