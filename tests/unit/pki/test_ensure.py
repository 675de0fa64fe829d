"""Idempotence, reuse, reissue and renewal: what a re-run keeps, what it changes, and why it says so."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from kbuild.inventory import Cluster
from kbuild.pki import Action, PKIError, ensure
from kbuild.pki.certlist import instances
from kbuild.pki.keys import algorithm_of, load_private_pem
from kbuild.pki.store import StateFiles

from .conftest import HOSTS, NOW, snapshot


def _cert(cluster: Cluster, file: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(StateFiles(cluster.state_dir).cert(file).read_bytes())


def _sans(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)) | {str(i) for i in ext.get_values_for_type(x509.IPAddress)}


def test_first_run_creates_everything_second_run_changes_nothing(cluster: Cluster) -> None:
    first = ensure(cluster, now=NOW)
    assert {o.action for o in first.outcomes} == {Action.CREATED}
    names = [o.name for o in first.outcomes]
    assert names[:3] == ["ca", "etcd-ca", "front-proxy-ca"]
    assert {"sa", "encryption-config", "admin.conf", "kubelet.conf/w1"} <= set(names)
    before = snapshot(cluster.state_dir)

    second = ensure(cluster, now=NOW + timedelta(days=10))
    assert second.changed == ()
    assert all(o.action is Action.REUSED for o in second.outcomes)
    assert snapshot(cluster.state_dir) == before


def test_state_dir_and_private_files_modes(cluster: Cluster) -> None:
    report = ensure(cluster, now=NOW)
    root = cluster.state_dir
    assert report.warnings == ()
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            assert mode == 0o700, path
        elif path.suffix in (".key", ".conf") or path.name == "encryption-config.yaml":
            assert mode == 0o600, path
        else:
            assert mode == 0o644, path


def test_loose_permissions_are_reported_not_hidden(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    (cluster.state_dir / "pki" / "apiserver.key").chmod(0o644)
    cluster.state_dir.chmod(0o755)
    warnings = ensure(cluster, now=NOW).warnings
    assert any("apiserver.key" in w and "0644" in w for w in warnings)
    assert any(w.startswith(f"{cluster.state_dir}:") and "0755" in w for w in warnings)


def test_renewal_keeps_the_ca_and_changes_the_serial(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    ca_before = StateFiles(cluster.state_dir).cert("ca").read_bytes()
    old = _cert(cluster, "apiserver")
    old_admin = (cluster.state_dir / "admin.conf").read_bytes()
    untouched = _cert(cluster, "scheduler")

    report = ensure(cluster, renew=["apiserver", "admin"], now=NOW + timedelta(days=1))
    assert report.get("apiserver").action is Action.REISSUED
    assert report.get("apiserver").reason == "renewal requested"
    assert report.get("ca").action is Action.REUSED
    assert report.get("admin.conf").action is Action.REISSUED
    assert "older client certificate" in report.get("admin.conf").reason
    assert {o.name for o in report.changed} == {"apiserver", "admin", "admin.conf"}

    new = _cert(cluster, "apiserver")
    assert StateFiles(cluster.state_dir).cert("ca").read_bytes() == ca_before
    assert new.serial_number != old.serial_number
    assert new.public_key() != old.public_key()
    new.verify_directly_issued_by(_cert(cluster, "ca"))
    assert _sans(new) == _sans(old)
    assert new.not_valid_after_utc > old.not_valid_after_utc
    assert (cluster.state_dir / "admin.conf").read_bytes() != old_admin
    assert _cert(cluster, "scheduler").serial_number == untouched.serial_number


def test_renew_a_table_name_covers_every_host(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    report = ensure(cluster, renew=["kubelet-client"], now=NOW)
    assert {o.name for o in report.changed} == {"kubelet-client/m2", "kubelet-client/w1", "kubelet.conf/m2",
                                                "kubelet.conf/w1"}
    report = ensure(cluster, renew=["etcd-peer/m3"], now=NOW)
    assert {o.name for o in report.changed} == {"etcd-peer/m3"}


def test_renew_accepts_kubeconfig_names_like_kubeadm(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    report = ensure(cluster, renew=["admin.conf", "kubelet.conf/w1"], now=NOW)
    assert {o.name for o in report.changed} == {"admin", "admin.conf", "kubelet-client/w1", "kubelet.conf/w1"}


def test_renew_refuses_cas_unknown_names_and_a_missing_pki(cluster: Cluster) -> None:
    with pytest.raises(PKIError, match="does not exist, so there is nothing to renew"):
        ensure(cluster, renew=["apiserver"], now=NOW)
    assert not cluster.state_dir.exists()
    ensure(cluster, now=NOW)
    with pytest.raises(PKIError, match="is a CA"):
        ensure(cluster, renew=["etcd-ca"], now=NOW)
    with pytest.raises(PKIError, match="no certificate named 'apiserver-typo'") as err:
        ensure(cluster, renew=["apiserver-typo"], now=NOW)
    assert "apiserver-kubelet-client" in str(err.value)


def test_a_new_master_adds_its_address_and_everything_else_is_reused(make_cluster: Callable[..., Cluster]) -> None:
    three = make_cluster()
    ensure(three, now=NOW)
    serials = {i.name: _cert(three, i.file).serial_number for i in instances(three)}

    hosts = dict(HOSTS, m4={"address": "198.18.0.14", "roles": ["control-plane"]})
    four = make_cluster(hosts=hosts)
    report = ensure(four, now=NOW + timedelta(days=1))

    assert report.get("apiserver").action is Action.REISSUED
    assert "lacks m4, 198.18.0.14" in report.get("apiserver").reason
    assert {"m4", "198.18.0.14"} <= _sans(_cert(four, "apiserver"))
    assert {o.name for o in report.changed} == {"apiserver"}  # m4 is a pure master: no kubelet, no etcd
    for inst in instances(four):
        if inst.name != "apiserver":
            assert _cert(four, inst.file).serial_number == serials[inst.name], inst.name


def test_a_new_worker_gets_its_own_certificates_only(make_cluster: Callable[..., Cluster]) -> None:
    ensure(make_cluster(), now=NOW)
    report = ensure(make_cluster(hosts=dict(HOSTS, w2={"address": "198.18.0.22", "roles": ["worker"]})), now=NOW)
    assert {(o.name, o.action) for o in report.changed} == {
        ("kubelet-client/w2", Action.CREATED), ("kubelet-serving/w2", Action.CREATED),
        ("kubelet.conf/w2", Action.CREATED)}


def test_changed_settings_reissue_what_they_affect(make_cluster: Callable[..., Cluster]) -> None:
    ensure(make_cluster(), now=NOW)
    moved = make_cluster(cluster={"api_endpoint": "k8s.lab.example:8443", "cluster_domain": "corp.example"})
    report = ensure(moved, now=NOW)
    assert report.get("apiserver").action is Action.REISSUED
    assert "kubernetes.default.svc.corp.example" in report.get("apiserver").reason
    for name in ("admin.conf", "kube-proxy.conf", "kubelet.conf/w1"):
        assert report.get(name).reason == "server was https://198.18.0.11:6443, now https://k8s.lab.example:8443"
    assert report.get("scheduler.conf").action is Action.REUSED  # talks to 127.0.0.1 either way


def test_a_leaf_expiring_within_the_window_is_reissued(cluster: Cluster) -> None:
    then = NOW - timedelta(days=340)  # leaves (365 days) have 25 days left at NOW; renew_before_days is 30
    ensure(cluster, now=then)
    ca = _cert(cluster, "ca")
    report = ensure(cluster, now=NOW)
    leaves = [i.name for i in instances(cluster) if not i.spec.is_ca]
    for name in leaves:
        assert report.get(name).action is Action.REISSUED
        assert report.get(name).reason == "expires in 25 days (renew_before_days=30)"
    assert report.get("ca").action is Action.REUSED
    assert _cert(cluster, "ca") == ca
    assert _cert(cluster, "admin").not_valid_after_utc == NOW + timedelta(days=365)


def test_an_expired_leaf_is_reissued(cluster: Cluster) -> None:
    ensure(cluster, now=NOW - timedelta(days=400))
    report = ensure(cluster, now=NOW)
    assert report.get("kube-proxy").reason.startswith("expired on ")


def test_a_leaf_never_outlives_its_ca_and_is_not_reissued_in_a_loop(make_cluster: Callable[..., Cluster]) -> None:
    short = make_cluster(pki={"ca_validity_days": 100, "cert_validity_days": 365})
    ensure(short, now=NOW)
    assert _cert(short, "admin").not_valid_after_utc == _cert(short, "ca").not_valid_after_utc
    report = ensure(short, now=NOW + timedelta(days=80))  # 20 days left on both
    assert report.changed == ()
    assert any("CA ca expires in 20 days" in w for w in report.warnings)
    assert any("its signing CA (ca) expires first" in w for w in report.warnings)


def test_a_leaf_signed_by_another_ca_is_reissued(cluster: Cluster, tmp_path: Path) -> None:
    ensure(cluster, now=NOW)
    files = StateFiles(cluster.state_dir)
    # Put in a scheduler certificate from an unrelated PKI with the same names.
    other = dataclasses.replace(cluster, state_dir=tmp_path / "other")  # not __dict__: it holds derived tables
    ensure(other, now=NOW)
    for suffix in ("crt", "key"):
        foreign = tmp_path / "other" / "pki" / f"scheduler.{suffix}"
        (files.pki / f"scheduler.{suffix}").write_bytes(foreign.read_bytes())
    report = ensure(cluster, now=NOW)
    assert report.get("scheduler").reason == "not signed by the current ca CA"
    assert {o.name for o in report.changed} == {"scheduler", "scheduler.conf"}
    _cert(cluster, "scheduler").verify_directly_issued_by(_cert(cluster, "ca"))


def test_a_key_that_does_not_match_its_certificate_is_reissued(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    files = StateFiles(cluster.state_dir)
    files.key("front-proxy-client").write_bytes(files.key("admin").read_bytes())
    report = ensure(cluster, now=NOW)
    assert report.get("front-proxy-client").reason == "the private key does not match the certificate"


def test_a_missing_leaf_key_or_cert_is_reissued(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    files = StateFiles(cluster.state_dir)
    files.key("apiserver-etcd-client").unlink()
    files.cert("hosts/w1/kubelet").unlink()
    report = ensure(cluster, now=NOW)
    assert report.get("apiserver-etcd-client").reason == "key missing (certificate present)"
    assert report.get("kubelet-serving/w1").reason == "certificate missing (key present)"


def test_a_missing_kubeconfig_or_sa_pub_is_written_again(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    admin = (cluster.state_dir / "admin.conf").read_bytes()
    (cluster.state_dir / "admin.conf").unlink()
    StateFiles(cluster.state_dir).sa_pub.unlink()
    report = ensure(cluster, now=NOW)
    assert report.get("admin.conf").action is Action.CREATED
    assert (cluster.state_dir / "admin.conf").read_bytes() == admin  # same certificate, same bytes
    assert report.get("sa").action is Action.REISSUED
    assert {o.name for o in report.changed} == {"admin.conf", "sa"}


def test_dry_run_decides_but_writes_nothing(cluster: Cluster) -> None:
    report = ensure(cluster, dry_run=True, now=NOW)
    assert report.dry_run and len(report.changed) == len(report.outcomes)
    assert not cluster.state_dir.exists()
    ensure(cluster, now=NOW)
    before = snapshot(cluster.state_dir)
    report = ensure(cluster, renew=["admin"], dry_run=True, now=NOW)
    assert {o.name for o in report.changed} == {"admin", "admin.conf"}
    assert snapshot(cluster.state_dir) == before


def test_force_new_ca_replaces_every_ca_after_a_backup(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    before = snapshot(cluster.state_dir)
    sa_key = StateFiles(cluster.state_dir).sa_key.read_bytes()
    encryption = StateFiles(cluster.state_dir).encryption_config.read_bytes()

    report = ensure(cluster, force_new_ca=True, now=NOW + timedelta(hours=1))
    for name in ("ca", "etcd-ca", "front-proxy-ca"):
        assert report.get(name).action is Action.REPLACED
    leaves = [i.name for i in instances(cluster) if not i.spec.is_ca]
    assert all(report.get(n).action is Action.REISSUED for n in leaves)
    assert report.get("sa").action is Action.REUSED
    assert report.get("encryption-config").action is Action.REUSED
    assert StateFiles(cluster.state_dir).sa_key.read_bytes() == sa_key
    assert StateFiles(cluster.state_dir).encryption_config.read_bytes() == encryption

    assert report.backup is not None and report.backup.parent == cluster.state_dir / "backups"
    assert snapshot(report.backup) == before  # the whole previous PKI, modes included
    assert ensure(cluster, now=NOW + timedelta(hours=2)).changed == ()


@pytest.mark.parametrize("algorithm", ["rsa-2048", "rsa-4096", "ecdsa-p256"])
def test_key_algorithm_from_the_inventory(make_cluster: Callable[..., Cluster], pooled_keys: None,
                                          algorithm: str) -> None:
    cluster = make_cluster(hosts={"n1": {"address": "198.18.0.31", "roles": ["etcd", "control-plane", "worker"]}},
                           pki={"key_algorithm": algorithm})
    ensure(cluster, now=NOW)
    files = StateFiles(cluster.state_dir)
    for inst in instances(cluster):
        cert = _cert(cluster, inst.file)
        assert algorithm_of(cert.public_key()) == algorithm, inst.name
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not inst.spec.is_ca:
            # keyEncipherment is for RSA key transport; never on ECDSA keys (RFC 5480)
            assert usage.key_encipherment is algorithm.startswith("rsa"), inst.name
    assert algorithm_of(load_private_pem(files.sa_key.read_bytes())) == algorithm
    assert ensure(cluster, now=NOW).changed == ()  # the checks accept what they issued


def test_changing_the_algorithm_reissues_leaves_but_keeps_cas(make_cluster: Callable[..., Cluster],
                                                             pooled_keys: None) -> None:
    one = {"n1": {"address": "198.18.0.31", "roles": ["etcd", "control-plane", "worker"]}}
    ensure(make_cluster(hosts=one, pki={"key_algorithm": "ecdsa-p256"}), now=NOW)
    rsa = make_cluster(hosts=one, pki={"key_algorithm": "rsa-2048"})
    report = ensure(rsa, now=NOW)
    assert report.get("ca").action is Action.REUSED
    assert report.get("apiserver").reason == "key is ecdsa-p256, the inventory asks for rsa-2048"
    assert algorithm_of(_cert(rsa, "ca").public_key()) == "ecdsa-p256"
    assert algorithm_of(_cert(rsa, "apiserver").public_key()) == "rsa-2048"
    _cert(rsa, "apiserver").verify_directly_issued_by(_cert(rsa, "ca"))
