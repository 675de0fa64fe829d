"""Every kubeconfig, loaded by the real kubectl (the test mirror's, kbuild's default release): server, context,
embedded CA and client."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from kbuild.inventory import Cluster, load_cluster
from kbuild.pki import ensure
from kbuild.pki.keys import load_private_pem, same_public_key
from kbuild.pki.store import StateFiles

from .conftest import NOW, write_inventory


def run_kubectl(kubectl: Path, config: Path, *args: str) -> str:
    done = subprocess.run([str(kubectl), "--kubeconfig", str(config), *args], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(config.parent)})
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed on {config}: {done.stderr}"
    return done.stdout


# file under the state dir -> (server, user CN, O)
EXPECTED = {
    "admin.conf": ("https://198.18.0.11:6443", "admin", ["system:masters"]),
    "kubeconfigs/controller-manager.conf": ("https://127.0.0.1:6443", "system:kube-controller-manager", []),
    "kubeconfigs/scheduler.conf": ("https://127.0.0.1:6443", "system:kube-scheduler", []),
    "kubeconfigs/kube-proxy.conf": ("https://198.18.0.11:6443", "system:kube-proxy", ["system:node-proxier"]),
    "kubeconfigs/kubelet-m2.conf": ("https://198.18.0.11:6443", "system:node:m2", ["system:nodes"]),
    "kubeconfigs/kubelet-w1.conf": ("https://198.18.0.11:6443", "system:node:w1", ["system:nodes"]),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cluster, StateFiles]:
    cluster = load_cluster(write_inventory(tmp_path_factory.mktemp("kc")))
    ensure(cluster, now=NOW)
    return cluster, StateFiles(cluster.state_dir)


def test_exactly_the_expected_kubeconfigs(generated: tuple[Cluster, StateFiles]) -> None:
    _, files = generated
    found = {str(p.relative_to(files.root)) for p in files.root.rglob("*.conf")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_kubectl_reads_it(generated: tuple[Cluster, StateFiles], kubectl: Path, file: str) -> None:
    cluster, files = generated
    server, cn, orgs = EXPECTED[file]
    path = files.root / file
    assert path.stat().st_mode & 0o777 == 0o600

    view: dict[str, Any] = json.loads(run_kubectl(kubectl, path, "config", "view", "--raw", "-o", "json"))
    context_name = view["current-context"]
    assert run_kubectl(kubectl, path, "config", "current-context").strip() == context_name
    assert run_kubectl(kubectl, path, "config", "get-contexts", "-o", "name").split() == [context_name]
    context = next(c["context"] for c in view["contexts"] if c["name"] == context_name)
    cluster_entry = next(c["cluster"] for c in view["clusters"] if c["name"] == context["cluster"])
    user_entry = next(u["user"] for u in view["users"] if u["name"] == context["user"])

    assert context["cluster"] == cluster.name
    assert cluster_entry["server"] == server
    assert base64.b64decode(cluster_entry["certificate-authority-data"]) == files.cert("ca").read_bytes()

    client = x509.load_pem_x509_certificate(base64.b64decode(user_entry["client-certificate-data"]))
    assert [a.value for a in client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [cn]
    assert [a.value for a in client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == orgs
    client.verify_directly_issued_by(x509.load_pem_x509_certificate(files.cert("ca").read_bytes()))
    key = load_private_pem(base64.b64decode(user_entry["client-key-data"]))
    assert same_public_key(key, client.public_key())
    assert context["user"] == cn
