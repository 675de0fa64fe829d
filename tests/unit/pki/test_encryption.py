"""The encryption-at-rest configuration: its shape, a fresh 32-byte key, and that the key is kept forever."""

from __future__ import annotations

import base64

import pytest
import yaml

from kbuild.inventory import Cluster
from kbuild.pki import Action, PKIError, ensure
from kbuild.pki.encryption import new_config, validate
from kbuild.pki.store import StateFiles

from .conftest import NOW


def test_shape_and_key() -> None:
    doc = yaml.safe_load(new_config())
    assert doc["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert doc["kind"] == "EncryptionConfiguration"
    (entry,) = doc["resources"]
    assert entry["resources"] == ["secrets"]
    first, fallback = entry["providers"]
    (key,) = first["secretbox"]["keys"]
    assert key["name"] == "key1"
    assert len(base64.b64decode(key["secret"], validate=True)) == 32
    assert fallback == {"identity": {}}


def test_keys_are_random() -> None:
    assert new_config() != new_config()


def test_generated_once_and_kept(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    path = StateFiles(cluster.state_dir).encryption_config
    original = path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600
    report = ensure(cluster, renew=["apiserver"], now=NOW)
    assert report.get("encryption-config").action is Action.REUSED
    assert path.read_bytes() == original


def test_hand_edits_that_keep_the_shape_are_respected(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    path = StateFiles(cluster.state_dir).encryption_config
    doc = yaml.safe_load(path.read_bytes())
    # A rotation in progress: a new aescbc key first, the old secretbox key still readable.
    doc["resources"][0]["providers"].insert(0, {"aescbc": {"keys": [
        {"name": "key2", "secret": base64.b64encode(b"k" * 32).decode()}]}})
    edited = yaml.safe_dump(doc).encode()
    path.write_bytes(edited)
    assert ensure(cluster, now=NOW).get("encryption-config").action is Action.REUSED
    assert path.read_bytes() == edited


@pytest.mark.parametrize("text,why", [
    ("kind: Something\n", "not an EncryptionConfiguration"),
    ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n", "has no resources"),
    ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n"
     "  providers:\n  - secretbox:\n      keys:\n      - {name: k, secret: c2hvcnQ=}\n", "must be 32 bytes"),
])
def test_invalid_configs(tmp_path, text: str, why: str) -> None:  # noqa: ANN001
    with pytest.raises(PKIError, match=why):
        validate(tmp_path / "encryption-config.yaml", text.encode())
