"""Inventory validation: a table of bad inventories, each with the message it must produce."""

from __future__ import annotations

import pytest

from kbuild.errors import InventoryError
from kbuild.inventory import load_cluster
from kbuild.inventory.model import OWNED_CONFIG_KEYS
from kbuild.releases import ETCD, KUBERNETES, show
from tests.unit.supported import CONTAINERD_UNSUPPORTED, RUNC_VULNERABLE, before, short

GOOD = """\
cluster:
  name: lab
hosts:
  master-1: {address: 198.18.0.10, roles: [etcd, control-plane]}
  worker-1: {address: 198.18.0.11, roles: [worker]}
"""

OLD_KUBE, OLD_ETCD = before(tuple(KUBERNETES)), before(ETCD)  # the newest minors kbuild no longer supports

BAD = [
    ("unknown key with suggestion", GOOD.replace("  name: lab", "  name: lab\n  pod_cdir: 10.0.0.0/16"),
     ":3: cluster.pod_cdir: unknown key 'pod_cdir'; did you mean 'pod_cidr'?"),
    ("unknown top-level key", GOOD + "sshh: {}\n", "sshh: unknown key 'sshh'; did you mean 'ssh'?"),
    ("wrong type", GOOD + "ssh: {port: twenty-two}\n", "ssh.port: Input should be a valid integer"),
    ("bad IP", GOOD.replace("198.18.0.11", "198.18.0.311"), "hosts.worker-1.address: '198.18.0.311' is not an IP address"),
    ("duplicate address", GOOD.replace("198.18.0.11", "198.18.0.10"),
     "hosts.worker-1.address: address 198.18.0.10 is already used by host 'master-1'"),
    ("duplicate name", GOOD + "  worker-1: {address: 198.18.0.12, roles: [worker]}\n",
     ":6: hosts.worker-1: duplicate key (first defined on line 5)"),
    ("no control plane", GOOD.replace("[etcd, control-plane]", "[etcd]"), "no host has the role control-plane"),
    ("no etcd", GOOD.replace("[etcd, control-plane]", "[control-plane]"), "no host has the role etcd"),
    ("unknown role", GOOD.replace("roles: [worker]", "roles: [minion]"),
     "hosts.worker-1.roles.0: Input should be 'etcd', 'control-plane' or 'worker' (got 'minion')"),
    ("no roles", GOOD.replace("roles: [worker]", "roles: []"), "hosts.worker-1.roles"),
    ("overlapping CIDRs", GOOD.replace("  name: lab", "  name: lab\n  pod_cidr: 10.0.0.0/8\n  service_cidr: 10.32.0.0/24"),
     "cluster.service_cidr: 10.32.0.0/24 overlaps cluster.pod_cidr 10.0.0.0/8"),
    ("host inside pod CIDR", GOOD.replace("  name: lab", "  name: lab\n  pod_cidr: 198.18.0.0/16"),
     "hosts.master-1.address: 198.18.0.10 is inside cluster.pod_cidr"),
    ("CIDR with host bits", GOOD.replace("  name: lab", "  name: lab\n  pod_cidr: 10.200.0.1/16"),
     "cluster.pod_cidr: '10.200.0.1/16' is not a network in CIDR form"),
    ("service CIDR too small", GOOD.replace("  name: lab", "  name: lab\n  service_cidr: 10.32.0.0/30"),
     "cluster.service_cidr: 10.32.0.0/30 must be between /12 and /28"),
    ("pod CIDR smaller than a node range", GOOD.replace("  name: lab", "  name: lab\n  pod_cidr: 10.200.0.0/25"),
     "cluster.pod_cidr: 10.200.0.0/25 is smaller than one node's range"),
    ("bad cluster name", GOOD.replace("name: lab", "name: Lab_1"), "cluster.name: 'Lab_1' is not a DNS label"),
    ("bad host name", GOOD.replace("worker-1:", "Worker_1:"),
     "hosts.Worker_1: host name 'Worker_1' is not a valid node name"),
    ("bad api endpoint", GOOD.replace("  name: lab", "  name: lab\n  api_endpoint: 'lb:99999'"),
     "cluster.api_endpoint: 'lb:99999' has a bad port"),
    ("bad SAN", GOOD.replace("  name: lab", "  name: lab\n  extra_sans: ['ok.example', 'not a name']"),
     "cluster.extra_sans.1: 'not a name' is neither a DNS name nor an IP address"),
    ("bad version", GOOD.replace("  name: lab", "  name: lab\n  versions: {kubernetes: latest}"),
     "cluster.versions.kubernetes: 'latest' is not a version like "),  # kbuild's example follows
    ("missing cluster", "hosts:\n  a: {address: 198.18.0.10, roles: [etcd, control-plane]}\n",
     "cluster: required section is missing"),
    ("missing address", GOOD.replace("address: 198.18.0.11, ", ""), "hosts.worker-1.address: required key is missing"),
    ("not a mapping", "- just\n- a list\n", "the inventory must be a mapping"),
    ("YAML syntax", "cluster: {name: lab\nhosts: [", "not valid YAML"),
    ("unknown extra_flags component", GOOD.replace("  name: lab", "  name: lab\n  extra_flags: {kube-apiservr: {v: '2'}}"),
     "cluster.extra_flags: unknown component kube-apiservr"),
    ("Kubernetes too old", GOOD.replace("  name: lab", f"  name: lab\n  versions: {{kubernetes: {OLD_KUBE}}}"),
     f"cluster.versions.kubernetes: Kubernetes {short(OLD_KUBE)} is not supported (upstream supports "
     f"{', '.join(show(m) for m in KUBERNETES)}); use one of those"),
    ("etcd too old", GOOD.replace("  name: lab", f"  name: lab\n  versions: {{etcd: {OLD_ETCD}}}"),
     f"cluster.versions.etcd: etcd {short(OLD_ETCD)} is not supported; use etcd {' or '.join(show(m) for m in ETCD)}"),
    ("containerd 1.x",
     GOOD.replace("  name: lab", f"  name: lab\n  versions: {{containerd: {CONTAINERD_UNSUPPORTED}}}"),
     f"cluster.versions.containerd: containerd {CONTAINERD_UNSUPPORTED} is not supported"),
    ("runc with CVE-2024-21626", GOOD.replace("  name: lab", f"  name: lab\n  versions: {{runc: {RUNC_VULNERABLE}}}"),
     f"cluster.versions.runc: runc {RUNC_VULNERABLE} has CVE-2024-21626"),
    ("preload without archives", GOOD + "artifacts: {images: {preload: [kbuild.test/app:1]}}\n",
     "artifacts: images.preload and images.files are archives kbuild imports, but images come from registries "
     "here: set artifacts.mirror, or images.source: archives (a bundle)"),
    ("files from registries",
     GOOD + "artifacts: {mirror: m, images: {source: registry, files: {kbuild.test/app:1: a.tar}}}\n",
     "artifacts: images.preload and images.files are archives kbuild imports"),
    ("preload reference without registry", GOOD + "artifacts: {mirror: m, images: {preload: ['app:1']}}\n",
     "artifacts.images.preload: 'app:1' is not an image reference like registry.k8s.io/pause:3.10.2"),
    ("preload by digest",
     GOOD + f"artifacts: {{mirror: m, images: {{preload: ['kbuild.test/app@sha256:{'a' * 64}']}}}}\n",
     "artifacts.images.preload: 'kbuild.test/app@sha256:"),
    ("preload twice", GOOD + "artifacts: {mirror: m, images: {preload: [kbuild.test/app:1, kbuild.test/app:1]}}\n",
     "artifacts.images.preload: an image is listed twice"),
    ("files reference", GOOD + "artifacts: {mirror: m, images: {files: {app: a.tar}}}\n",
     "artifacts.images.files: 'app' is not an image reference"),
    ("image source", GOOD + "artifacts: {images: {source: pull}}\n",
     "artifacts.images.source: Input should be 'auto', 'registry' or 'archives' (got 'pull')"),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in BAD], ids=[n for n, _, _ in BAD])
def test_bad_inventory(tmp_path, text, expected):
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_cluster(path)
    message = str(caught.value)
    assert expected in message
    assert str(path) in message  # every line names the file


def test_all_problems_reported_at_once(cluster_from):
    text = GOOD.replace("198.18.0.11", "300.1.1.1").replace("  name: lab", "  name: lab\n  pod_cdir: x")
    text += "ssh: {port: 0}\n"
    with pytest.raises(InventoryError) as caught:
        cluster_from(text)
    errors = [p for p in caught.value.problems if p.severity == "error"]
    assert {p.path for p in errors} >= {"cluster.pod_cdir", "hosts.worker-1.address", "ssh.port"}


def test_even_etcd_count_is_a_warning(cluster_from):
    cluster = cluster_from(GOOD.replace("roles: [worker]", "roles: [etcd, worker]"))
    assert any("2 etcd members" in w for w in cluster.warnings)


def test_defaults_and_overrides_resolve(tmp_path, cluster_from):
    text = GOOD + "ssh: {user: kbuild, become: true, key_file: keys/id, port: 2222}\n"
    text = text.replace("  worker-1: {address: 198.18.0.11, roles: [worker]}",
                        "  worker-1: {address: 198.18.0.11, roles: [worker], ssh: {port: 22, host: nat.example}}")
    cluster = cluster_from(text)
    master, worker = cluster.hosts
    assert master.ssh.port == 2222 and master.ssh.user == "kbuild" and master.ssh.become
    assert master.ssh.key_file == str(tmp_path / "keys/id")
    assert worker.ssh.port == 22 and worker.ssh.host == "nat.example"
    assert cluster.state_dir == tmp_path / ".kbuild" / "lab"
    assert cluster.known_hosts == tmp_path / ".kbuild" / "lab" / "known_hosts"
    assert cluster.api_server_url == "https://198.18.0.10:6443"
    assert str(cluster.kubernetes_service_ip) == "10.32.0.1" and str(cluster.cluster_dns_ip) == "10.32.0.10"
    assert [h.name for h in cluster.worker_hosts] == ["worker-1"]


def test_key_files_are_resolved_for_hosts_and_the_bastion(cluster_from, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cluster = cluster_from(GOOD + "ssh: {key_file: keys/id, bastion: {host: jump.example, key_file: '~/.ssh/jump'}}\n")
    ssh = cluster.hosts[0].ssh
    assert ssh.key_file == str(tmp_path / "keys/id")
    assert ssh.bastion is not None and ssh.bastion.key_file == str(tmp_path / "home/.ssh/jump")


def test_api_endpoint_from_inventory(cluster_from):
    cluster = cluster_from(GOOD.replace("  name: lab", "  name: lab\n  api_endpoint: k8s.example:443"))
    assert cluster.api_server_url == "https://k8s.example:443"


def test_renewal_window_must_fit_the_validity(cluster_from):
    text = GOOD + "pki: {cert_validity_days: 20, renew_before_days: 30}\n"
    with pytest.raises(InventoryError, match=r"pki: renew_before_days \(30\) must be shorter than cert_validity_days"):
        cluster_from(text)


@pytest.mark.parametrize("setting, key", sorted((s, k) for s, keys in OWNED_CONFIG_KEYS.items() for k in keys))
def test_config_keys_kbuild_owns_are_refused(cluster_from, setting, key):
    text = GOOD.replace("  name: lab", f"  name: lab\n  {setting}: {{{key}: x, harmless: 1}}")
    with pytest.raises(InventoryError) as caught:
        cluster_from(text)
    assert f"cluster.{setting}: {key}: set by kbuild (credentials and who may connect)" in str(caught.value)


@pytest.mark.parametrize("artifacts", [
    "{mirror: m, images: {preload: [kbuild.test/app:1]}}",  # a mirror: images come from archives
    "{images: {source: archives, preload: [kbuild.test/app:1], files: {kbuild.test/app:1: app.tar}}}",  # a bundle
])
def test_preloaded_images_from_archives_load(cluster_from, artifacts):
    cluster = cluster_from(GOOD + f"artifacts: {artifacts}\n")
    assert cluster.artifacts.images.preload == ["kbuild.test/app:1"]


def test_escape_sequences_in_keys_never_reach_the_terminal(tmp_path) -> None:
    from kbuild.errors import InventoryError
    from kbuild.inventory import load_cluster

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text('cluster: {name: t}\nhosts:\n  "m\\e[2J\\u202e1": {address: 198.18.0.1, roles: [etcd]}\n')
    try:
        load_cluster(inventory)
    except InventoryError as exc:
        text = str(exc)
    else:
        raise AssertionError("accepted")
    assert "\x1b" not in text and "\u202e" not in text
    assert "hosts.m\\x1b[2J\\u202e1: host name 'm\\x1b[2J\\u202e1' is not a valid node name" in text
