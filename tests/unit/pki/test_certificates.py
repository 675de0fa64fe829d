"""Every issued certificate, field by field, against a table of what Kubernetes needs; and its signature."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kbuild.inventory import Cluster, load_cluster
from kbuild.pki import ensure
from kbuild.pki.certlist import instances
from kbuild.pki.keys import load_private_pem, same_public_key
from kbuild.pki.store import StateFiles

from .conftest import NOW, write_inventory

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
LOOPBACK = ["localhost", "127.0.0.1"]

# name -> (file under pki/, CN, O, issuer CN, extended key usages, SANs or None)
EXPECTED: dict[str, tuple[str, str, list[str], str, set, list[str] | None]] = {
    "apiserver": ("apiserver", "kube-apiserver", [], "kubernetes", {SERVER}, [
        "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.k8s.example",
        "localhost", "m1", "m2", "m3", "api.lab.example", "extra.example.com",
        "10.96.0.1", "127.0.0.1", "198.18.0.11", "198.18.0.12", "198.18.0.13", "192.0.2.10"]),
    "apiserver-kubelet-client": ("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                 ["system:masters"], "kubernetes", {CLIENT}, None),
    "apiserver-etcd-client": ("apiserver-etcd-client", "kube-apiserver-etcd-client", [], "etcd-ca", {CLIENT}, None),
    "front-proxy-client": ("front-proxy-client", "front-proxy-client", [], "front-proxy-ca", {CLIENT}, None),
    "etcd-server/m1": ("hosts/m1/etcd-server", "m1", [], "etcd-ca", {SERVER, CLIENT},
                       ["m1", "198.18.0.11", *LOOPBACK]),
    "etcd-server/m3": ("hosts/m3/etcd-server", "m3", [], "etcd-ca", {SERVER, CLIENT},
                       ["m3", "198.18.0.13", *LOOPBACK]),
    "etcd-peer/m2": ("hosts/m2/etcd-peer", "m2", [], "etcd-ca", {SERVER, CLIENT}, ["m2", "198.18.0.12", *LOOPBACK]),
    "etcd-healthcheck-client": ("etcd/healthcheck-client", "kube-etcd-healthcheck-client", [], "etcd-ca",
                                {CLIENT}, None),
    "admin": ("admin", "admin", ["system:masters"], "kubernetes", {CLIENT}, None),
    "controller-manager": ("controller-manager", "system:kube-controller-manager", [], "kubernetes", {CLIENT}, None),
    "scheduler": ("scheduler", "system:kube-scheduler", [], "kubernetes", {CLIENT}, None),
    "kube-proxy": ("kube-proxy", "system:kube-proxy", ["system:node-proxier"], "kubernetes", {CLIENT}, None),
    "kubelet-client/w1": ("hosts/w1/kubelet-client", "system:node:w1", ["system:nodes"], "kubernetes", {CLIENT},
                          None),
    "kubelet-client/m2": ("hosts/m2/kubelet-client", "system:node:m2", ["system:nodes"], "kubernetes", {CLIENT},
                          None),
    "kubelet-serving/w1": ("hosts/w1/kubelet", "system:node:w1", ["system:nodes"], "kubernetes", {SERVER},
                           ["w1", "198.18.0.21"]),
}
CAS = {"ca": ("ca", "kubernetes"), "etcd-ca": ("etcd/ca", "etcd-ca"), "front-proxy-ca": ("front-proxy-ca",
                                                                                         "front-proxy-ca")}


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cluster, StateFiles]:
    folder = tmp_path_factory.mktemp("issued")
    cluster = load_cluster(write_inventory(folder, cluster={
        "api_endpoint": "api.lab.example:443", "extra_sans": ["extra.example.com", "192.0.2.10"],
        "service_cidr": "10.96.0.0/16", "cluster_domain": "k8s.example"}))
    ensure(cluster, now=NOW)
    return cluster, StateFiles(cluster.state_dir)


def _load(files: StateFiles, file: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(files.cert(file).read_bytes())


def _names(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def test_the_table_covers_every_kind_of_certificate(issued: tuple[Cluster, StateFiles]) -> None:
    cluster, _ = issued
    kinds = {i.spec.name for i in instances(cluster) if not i.spec.is_ca}
    assert kinds == {name.split("/")[0] for name in EXPECTED} | {"etcd-peer", "kubelet-serving"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_leaf_fields(issued: tuple[Cluster, StateFiles], name: str) -> None:
    cluster, files = issued
    file, cn, orgs, issuer_cn, eku, sans = EXPECTED[name]
    cert = _load(files, file)
    ca = _load(files, {"kubernetes": "ca", "etcd-ca": "etcd/ca", "front-proxy-ca": "front-proxy-ca"}[issuer_cn])

    assert _names(cert, NameOID.COMMON_NAME) == [cn]
    assert sorted(_names(cert, NameOID.ORGANIZATION_NAME)) == sorted(orgs)
    assert cert.issuer == ca.subject
    assert [str(a.value) for a in cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)] == [issuer_cn]
    cert.verify_directly_issued_by(ca)  # raises if the CA did not sign it

    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_encipherment  # ECDSA keys: RFC 5480 forbids it
    assert not usage.value.key_cert_sign
    assert set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == eku

    if sans is None:
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    else:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        got = ext.get_values_for_type(x509.DNSName) + [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
        assert sorted(got) == sorted(sans)
        assert all(isinstance(ip, ipaddress.IPv4Address) for ip in ext.get_values_for_type(x509.IPAddress))

    assert cert.not_valid_before_utc <= NOW
    assert cert.not_valid_after_utc == NOW + timedelta(days=cluster.pki.cert_validity_days)
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == \
        ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


@pytest.mark.parametrize("name", sorted(CAS))
def test_ca_fields(issued: tuple[Cluster, StateFiles], name: str) -> None:
    cluster, files = issued
    file, cn = CAS[name]
    ca = _load(files, file)
    assert _names(ca, NameOID.COMMON_NAME) == [cn]
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is True and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and usage.digital_signature
    assert ca.not_valid_after_utc == NOW + timedelta(days=cluster.pki.ca_validity_days)


def test_three_distinct_cas(issued: tuple[Cluster, StateFiles]) -> None:
    _, files = issued
    keys = {files.key(f).read_bytes() for f, _ in CAS.values()}
    assert len(keys) == 3


def test_every_certificate_is_signed_by_its_ca_and_its_key_is_private(issued: tuple[Cluster, StateFiles]) -> None:
    cluster, files = issued
    for inst in instances(cluster):
        key_path = files.key(inst.file)
        assert key_path.stat().st_mode & 0o777 == 0o600, key_path
        assert files.cert(inst.file).stat().st_mode & 0o777 == 0o644
        key = load_private_pem(key_path.read_bytes())
        cert = _load(files, inst.file)
        assert same_public_key(key, cert.public_key()), inst.name
        signer = next(i for i in instances(cluster) if i.name == (inst.ca or inst.name))
        cert.verify_directly_issued_by(_load(files, signer.file))  # every certificate, not only the table's sample
