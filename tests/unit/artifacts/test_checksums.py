"""Reading upstream checksum files in their three shapes, and the inventory's pins."""

from __future__ import annotations

import pytest

from kbuild.artifacts.catalogue import etcd_release, kubernetes_release
from kbuild.artifacts.checksums import Pins, normalise, parse_checksum_file
from kbuild.artifacts.errors import ArtifactConfigError
from kbuild.artifacts.mirror import mirror_relative_path
from tests.unit.supported import DEFAULTS

A = "a" * 64
B = "b" * 64


def test_bare_hash_as_dl_k8s_io_publishes_it():
    assert parse_checksum_file(A, "kube-apiserver") == A
    assert parse_checksum_file(f"{A.upper()}\n", "kubelet") == A


def test_sha256sum_lists_pick_the_named_file():
    tarball = etcd_release(DEFAULTS.etcd, "amd64").filename
    text = f"{B}  etcd-v{DEFAULTS.etcd}-darwin-amd64.zip\n{A}  {tarball}\n"
    assert parse_checksum_file(text, tarball) == A
    assert parse_checksum_file(f"{A} *runc.amd64\n{B} *runc.arm64\n", "runc.arm64") == B
    assert parse_checksum_file(f"{A}  ./bin/containerd.tar.gz\n", "containerd.tar.gz") == A


def test_bsd_form():
    assert parse_checksum_file(f"SHA256 (crictl.tar.gz) = {A}\n", "crictl.tar.gz") == A


def test_a_list_for_other_files_never_vouches():
    assert parse_checksum_file(f"{A}  other.tar.gz\n", "mine.tar.gz") is None
    assert parse_checksum_file(f"{A}\n{B}  other.tar.gz\n", "mine.tar.gz") is None  # a stray bare line
    assert parse_checksum_file(f"{A}\n{B}\n", "mine") is None  # two bare hashes: which one?
    assert parse_checksum_file("<html>404</html>", "mine") is None
    assert parse_checksum_file("", "mine") is None


def test_normalise():
    assert normalise(f"sha256:{A.upper()} ") == A
    assert normalise("abc") is None


def test_pins_validate_every_value_at_once():
    with pytest.raises(ArtifactConfigError) as caught:
        Pins.from_settings({"kubelet": "nope", "etcd.tar.gz": "12", "ok": A})
    assert "kubelet: 'nope'" in str(caught.value) and "etcd.tar.gz: '12'" in str(caught.value)


def test_pin_lookup_prefers_a_url_over_a_file_name():
    official = kubernetes_release("kubelet", DEFAULTS.kubernetes, "amd64").url
    mirror = f"http://127.0.0.1:8080/{mirror_relative_path(official)}"
    pins = Pins.from_settings({"kubelet": A, official: f"sha256:{B}"})
    assert pins.lookup(official, mirror) == (B, official)
    assert Pins.from_settings({"kubelet": A, mirror: B}).lookup(official, mirror) == (B, mirror)
    assert Pins.from_settings({"kubelet": A}).lookup(official, mirror) == (A, "kubelet")
    assert Pins().lookup(official) is None
