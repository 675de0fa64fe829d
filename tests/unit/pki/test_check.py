"""The check: one row per item, states that follow the same findings as generation, read-only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from kbuild.inventory import Cluster
from kbuild.pki import check, ensure
from kbuild.pki.certlist import instances, kubeconfig_instances
from kbuild.pki.cert_check import residual
from kbuild.pki.store import StateFiles

from .conftest import HOSTS, NOW, snapshot


def _states(cluster: Cluster, **kwargs: object) -> dict[str, str]:
    return {s.name: s.state for s in check(cluster, **kwargs).statuses}  # type: ignore[arg-type]


def test_everything_ok_after_generate(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    report = check(cluster, now=NOW + timedelta(days=1))
    assert report.ok
    names = [s.name for s in report.statuses]
    assert names == [i.name for i in instances(cluster)] + ["sa"] + \
        [k.name for k in kubeconfig_instances(cluster)] + ["encryption-config"]
    apiserver = next(s for s in report.statuses if s.name == "apiserver")
    assert apiserver.subject == "CN=kube-apiserver" and apiserver.ca == "ca" and apiserver.residual == "364d"
    assert apiserver.not_after == NOW + timedelta(days=365)
    assert next(s for s in report.statuses if s.name == "ca").residual == "9y"
    admin = next(s for s in report.statuses if s.name == "admin.conf")
    assert admin.subject == "CN=admin,O=system:masters" and admin.matches


def test_missing_pki(cluster: Cluster) -> None:
    report = check(cluster, now=NOW)
    assert not report.ok
    assert set(_states(cluster, now=NOW).values()) == {"missing"}
    assert not cluster.state_dir.exists()


def test_expiring_and_expired(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    before = snapshot(cluster.state_dir)
    states = _states(cluster, now=NOW + timedelta(days=340))
    assert states["apiserver"] == "expiring" and states["admin.conf"] == "expiring" and states["ca"] == "ok"
    states = _states(cluster, now=NOW + timedelta(days=366))
    assert states["kubelet-serving/w1"] == "expired" and states["kubelet.conf/w1"] == "expired"
    assert snapshot(cluster.state_dir) == before


def test_inventory_changes_show_as_mismatch(make_cluster: Callable[..., Cluster]) -> None:
    ensure(make_cluster(), now=NOW)
    grown = make_cluster(hosts=dict(HOSTS, m4={"address": "198.18.0.14", "roles": ["control-plane", "worker"]}),
                         cluster={"api_endpoint": "api.lab.example"})
    report = check(grown, now=NOW)
    rows = {s.name: s for s in report.statuses}
    assert rows["apiserver"].state == "mismatch" and not rows["apiserver"].matches
    assert any("lacks" in p and "198.18.0.14" in p for p in rows["apiserver"].problems)
    assert rows["kubelet-client/m4"].state == "missing"
    assert rows["admin.conf"].state == "mismatch"
    assert rows["scheduler"].state == "ok"
    ensure(grown, now=NOW)
    assert check(grown, now=NOW).ok


def test_stale_kubeconfig_is_a_mismatch(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    files = StateFiles(cluster.state_dir)
    old = (cluster.state_dir / "admin.conf").read_bytes()
    ensure(cluster, renew=["admin"], now=NOW)
    (cluster.state_dir / "admin.conf").write_bytes(old)
    rows = {s.name: s for s in check(cluster, now=NOW).statuses}
    assert rows["admin.conf"].state == "mismatch"
    assert "client certificate other than admin's current one" in rows["admin.conf"].problems[0]
    assert files.cert("admin").exists()


def test_corrupt_files_are_rows_not_crashes(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    files = StateFiles(cluster.state_dir)
    files.key("ca").write_text("garbage")
    (cluster.state_dir / "kubeconfigs" / "scheduler.conf").write_text("{")
    rows = {s.name: s for s in check(cluster, now=NOW).statuses}
    assert rows["ca"].state == "invalid" and str(files.key("ca")) in rows["ca"].problems[0]
    assert rows["scheduler.conf"].state == "invalid"
    assert rows["apiserver"].state == "mismatch"  # its CA cannot be loaded to verify it


def test_json_form(cluster: Cluster) -> None:
    ensure(cluster, now=NOW)
    data = check(cluster, now=NOW).as_json()
    assert data["ok"] is True and data["state_dir"] == str(cluster.state_dir)
    row = data["certificates"][0]
    assert set(row) >= {"name", "kind", "path", "state", "subject", "not_after", "residual", "ca", "matches", "ok"}


def test_residual_format() -> None:
    assert residual(NOW + timedelta(days=3650), NOW) == "10y"
    assert residual(NOW + timedelta(days=400), NOW) == "400d"
    assert residual(NOW + timedelta(hours=5, minutes=3), NOW) == "5h"
    assert residual(NOW - timedelta(seconds=1), NOW) == "<invalid>"
    assert residual(None, NOW) == "-"
