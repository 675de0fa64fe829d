"""Bad inputs: each gives one clear error naming the file, and the PKI on disk stays byte-for-byte as it was."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kbuild.errors import ExitCode, UsageError
from kbuild.inventory import Cluster
from kbuild.pki import Action, PKIError, check, ensure, host_files
from kbuild.pki.sans import alt_names
from kbuild.pki.store import StateFiles

from .conftest import NOW, snapshot


@pytest.fixture
def generated(cluster: Cluster) -> Cluster:
    ensure(cluster, now=NOW)
    return cluster


def assert_refused_untouched(cluster: Cluster, match: str, **kwargs: object) -> PKIError:
    before = snapshot(cluster.state_dir)
    with pytest.raises(PKIError, match=match) as err:
        ensure(cluster, now=NOW + timedelta(days=1), **kwargs)  # type: ignore[arg-type]
    assert snapshot(cluster.state_dir) == before
    assert err.value.exit_code == ExitCode.BAD_INPUT
    return err.value


@pytest.mark.parametrize("file", ["apiserver.key", "ca.key", "hosts/w1/kubelet.key", "etcd/ca.key"])
def test_a_corrupt_key_names_the_file(generated: Cluster, file: str) -> None:
    path = StateFiles(generated.state_dir).pki / file
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    err = assert_refused_untouched(generated, "nothing was changed")
    assert f"{path}: not a PEM private key" in err.message


def test_a_truncated_certificate_names_the_file(generated: Cluster) -> None:
    path = StateFiles(generated.state_dir).cert("apiserver")
    path.write_bytes(path.read_bytes()[:200])
    err = assert_refused_untouched(generated, "not a valid PEM certificate")
    assert str(path) in err.message


def test_every_corrupt_file_is_named_at_once(generated: Cluster) -> None:
    files = StateFiles(generated.state_dir)
    files.key("admin").write_text("garbage")
    files.cert("scheduler").write_text("garbage")
    err = assert_refused_untouched(generated, "cannot use the existing PKI")
    assert str(files.key("admin")) in err.message and str(files.cert("scheduler")) in err.message


def test_an_encrypted_key_is_refused(generated: Cluster) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    StateFiles(generated.state_dir).key("admin").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    assert_refused_untouched(generated, "encrypted with a passphrase")


def test_an_expired_ca_stops_the_run(make_cluster: Callable[..., Cluster]) -> None:
    short = make_cluster(pki={"ca_validity_days": 2})
    ensure(short, now=NOW - timedelta(days=3))
    err = assert_refused_untouched(short, "CA ca: expired on")
    assert "--force-new-ca" in (err.hint or "")
    report = check(short, now=NOW)
    assert {s.name: s.state for s in report.statuses}["ca"] == "expired"


def test_a_ca_without_its_key_stops_the_run(generated: Cluster) -> None:
    StateFiles(generated.state_dir).key("front-proxy-ca").unlink()
    assert_refused_untouched(generated, "its key .*front-proxy-ca.key does not")


def test_a_ca_key_without_its_certificate_stops_the_run(generated: Cluster) -> None:
    StateFiles(generated.state_dir).cert("etcd/ca").unlink()
    assert_refused_untouched(generated, "etcd/ca.key exists but .*etcd/ca.crt does not")


def test_a_ca_key_swapped_for_another_stops_the_run(generated: Cluster) -> None:
    files = StateFiles(generated.state_dir)
    files.key("ca").write_bytes(files.key("etcd/ca").read_bytes())
    assert_refused_untouched(generated, "is not the private key of")


def test_a_leaf_in_place_of_a_ca_stops_the_run(generated: Cluster) -> None:
    files = StateFiles(generated.state_dir)
    for ext in ("crt", "key"):
        (files.pki / f"front-proxy-ca.{ext}").write_bytes((files.pki / f"front-proxy-client.{ext}").read_bytes())
    assert_refused_untouched(generated, "not a CA certificate")


def test_a_lost_ca_is_not_recreated_under_its_certificates(generated: Cluster) -> None:
    files = StateFiles(generated.state_dir)
    files.cert("etcd/ca").unlink()
    files.key("etcd/ca").unlink()
    err = assert_refused_untouched(generated, "CA etcd-ca is missing, but certificates it signed exist "
                                      r"\(apiserver-etcd-client, etcd-server/m1, etcd-server/m2 ...\)")
    assert "--force-new-ca" in (err.hint or "")


def test_sa_pub_without_sa_key_stops_the_run(generated: Cluster) -> None:
    StateFiles(generated.state_dir).sa_key.unlink()
    err = assert_refused_untouched(generated, "sa.pub exists but .*sa.key does not")
    assert "service-account token" in (err.hint or "")


def test_a_corrupt_encryption_config_is_never_replaced(generated: Cluster) -> None:
    path = StateFiles(generated.state_dir).encryption_config
    path.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [")
    err = assert_refused_untouched(generated, "not valid YAML")
    assert str(path) in err.message and "decrypts the cluster's Secrets" in (err.hint or "")


def test_a_state_dir_that_is_a_file(cluster: Cluster) -> None:
    cluster.state_dir.parent.mkdir(parents=True, exist_ok=True)
    cluster.state_dir.write_text("not a directory")
    with pytest.raises(PKIError, match="the state directory is not a directory"):
        ensure(cluster, now=NOW)
    assert cluster.state_dir.read_text() == "not a directory"


def test_a_pki_path_that_is_a_file_or_a_directory(generated: Cluster) -> None:
    files = StateFiles(generated.state_dir)
    files.cert("admin").unlink()
    files.cert("admin").mkdir()
    err = assert_refused_untouched(generated, "is a directory, expected a file")
    assert str(files.cert("admin")) in err.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory whatever its mode")
def test_an_unreadable_state_directory(generated: Cluster) -> None:
    generated.state_dir.chmod(0o000)
    try:
        with pytest.raises(PKIError, match="not readable and writable"):
            ensure(generated, now=NOW)
    finally:
        generated.state_dir.chmod(0o700)


def test_an_unreadable_state_directory_as_root_too(generated: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root passes every permission check, so the access test is what is simulated here.
    before = snapshot(generated.state_dir)
    monkeypatch.setattr("kbuild.pki.store.os.access", lambda path, mode: Path(path) != generated.state_dir)
    with pytest.raises(PKIError, match=f"{generated.state_dir}: not readable and writable by this user"):
        ensure(generated, now=NOW)
    with pytest.raises(PKIError, match="not readable and writable"):
        check(generated, now=NOW)
    monkeypatch.undo()
    assert snapshot(generated.state_dir) == before


def test_an_unreadable_file(generated: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root ignores file modes, so the permission error is simulated where the file is read.
    before = snapshot(generated.state_dir)
    target = StateFiles(generated.state_dir).key("kube-proxy")
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(PKIError, match="cannot read: Permission denied") as err:
        ensure(generated, now=NOW)
    assert str(target) in err.value.message
    monkeypatch.undo()
    assert snapshot(generated.state_dir) == before


@pytest.mark.parametrize("bad", ["under_score.example", "-lead.example", "a..b", "1.2.3.4.5", "10.0.0.256", ""])
def test_a_san_that_is_neither_name_nor_address(bad: str) -> None:
    with pytest.raises(PKIError, match="is neither a DNS name nor an IP address"):
        alt_names(["kubernetes", bad], source="cluster.extra_sans")


def test_a_bad_san_reaching_the_pki_layer_stops_before_any_write(generated: Cluster) -> None:
    # The inventory rejects such a SAN; a cluster built another way must still not get a broken certificate.
    settings = generated.settings.model_copy(update={"extra_sans": ["ok.example", "bad_name!"]})
    broken = dataclasses.replace(generated, settings=settings)  # not __dict__: it holds derived tables
    err = assert_refused_untouched(broken, "cluster.extra_sans: 'bad_name!' is neither a DNS name nor an IP address")
    assert isinstance(err, UsageError)


def test_host_files_before_generate_says_what_to_run(cluster: Cluster) -> None:
    with pytest.raises(PKIError, match="not generated for this host yet") as err:
        host_files(cluster, cluster.host("w1"))
    assert "kbuild certs generate -i" in (err.value.hint or "")
    assert not cluster.state_dir.exists()


# -- trust on first use of the CAs, and the state directory's modes ---------------------------------------


def test_a_foreign_ca_pair_is_refused_unless_every_ca_is_replaced_on_purpose(cluster: Cluster, tmp_path: Path) -> None:
    from kbuild.pki import trust

    ensure(cluster)
    files = StateFiles(cluster.state_dir)
    recorded = trust.recorded(files)
    assert set(recorded) >= {"ca", "etcd-ca", "front-proxy-ca"}
    # A valid CA pair made elsewhere, put in place of both ca.crt and ca.key.
    other = tmp_path / "other"
    foreign = dataclasses.replace(cluster, state_dir=other)
    ensure(foreign)
    for name in ("ca.crt", "ca.key"):
        (files.pki / name).write_bytes((other / "pki" / name).read_bytes())
    rows = {row.name: row for row in check(cluster).statuses}
    assert rows["ca"].state == "invalid" and "not the CA this cluster was set up with" in rows["ca"].problems[0]
    refused = assert_refused_untouched(cluster, "CA ca is not the CA this cluster was set up with")
    assert "--force-new-ca" in (refused.hint or "")
    report = ensure(cluster, force_new_ca=True)
    assert report.get("ca").action is Action.REPLACED
    assert trust.recorded(files)["ca"] != recorded["ca"]
    assert not ensure(cluster).changed  # the new CAs are the recorded ones now


def test_loose_modes_in_the_state_directory_are_fixed_and_said(cluster: Cluster) -> None:
    import stat

    ensure(cluster)
    files = StateFiles(cluster.state_dir)
    files.key("ca").chmod(0o644)
    cluster.state_dir.chmod(0o755)
    report = ensure(cluster)
    assert stat.S_IMODE(files.key("ca").stat().st_mode) == 0o600
    assert stat.S_IMODE(cluster.state_dir.stat().st_mode) == 0o700
    assert any(str(files.key("ca")) in w and "was 0644" in w for w in report.warnings)
    assert any(w.startswith(f"{cluster.state_dir}: was 0755") for w in report.warnings)
