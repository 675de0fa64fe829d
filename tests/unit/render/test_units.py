"""Unit files: their sections, binaries under BIN_DIR, and `systemd-analyze verify` where it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild import layout
from kbuild.render import host_files
from tests.systemd_verify import systemd_analyze_available, verify_units
from tests.unit.supported import ETCD_PREVIOUS, ETCD_VERSION, KUBE, KUBE_PREVIOUS

from .conftest import MakeCluster, versions
from .unitfile import exec_start, parse_unit


def units(cluster, host: str) -> dict[str, str]:
    return {f.path.name: f.content for f in host_files(cluster, cluster.host(host)) if f.path.parent == layout.UNIT_DIR}


@pytest.mark.parametrize("host", ["m3", "w1"])
def test_units_have_the_expected_sections(cluster, host: str) -> None:
    for name, text in units(cluster, host).items():
        sections = parse_unit(text)
        assert set(sections) == {"Unit", "Service", "Install"}, name
        assert sections["Install"]["WantedBy"] == ["multi-user.target"]
        assert sections["Unit"]["Description"]
        if name == "kbuild-pod-routes.service":
            continue  # a oneshot running `ip route`, not a component binary
        argv = exec_start(text)
        assert Path(argv[0]).parent == Path(layout.BIN_DIR), name
        assert argv[0] == str(layout.binary_path(name.removesuffix(".service")))


def test_unit_specifics(cluster) -> None:
    m3 = {name: parse_unit(text) for name, text in units(cluster, "m3").items()}
    assert m3["etcd.service"]["Service"]["Type"] == ["notify"]
    assert "etcd.service" in m3["kube-apiserver.service"]["Unit"]["After"][0].split()
    containerd = m3["containerd.service"]["Service"]
    assert containerd["KillMode"] == ["process"] and containerd["Delegate"] == ["yes"]
    assert m3["kubelet.service"]["Unit"]["Requires"] == ["containerd.service"]
    w1 = {name: parse_unit(text) for name, text in units(cluster, "w1").items()}
    assert "Environment" not in w1["kubelet.service"]["Service"]


@pytest.mark.skipif(not systemd_analyze_available(), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("kubernetes, etcd", [(KUBE, ETCD_VERSION), (KUBE_PREVIOUS, ETCD_PREVIOUS)])
def test_systemd_analyze_verify_accepts_the_units(make_cluster: MakeCluster, tmp_path: Path, kubernetes,
                                                  etcd) -> None:
    cluster = make_cluster(versions=versions(kubernetes, etcd),
                           extra_flags={"kubelet": {"node-status-update-frequency": "a b $x 5%"}})
    for host in ("m3", "w1"):
        paths = []
        for name, text in units(cluster, host).items():
            (tmp_path / host).mkdir(exist_ok=True)
            path = tmp_path / host / name
            path.write_text(text)
            paths.append(path)
        # The binaries are not installed on this machine; in a lab machine they are.
        assert verify_units(paths, binaries_installed=False) == [], host


@pytest.mark.skipif(not systemd_analyze_available(), reason="systemd-analyze is not installed")
def test_verify_units_reports_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.service"
    bad.write_text("[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\nBogusKey=1\n")
    problems = verify_units([bad])
    assert any("BogusKey" in p for p in problems)
    missing = tmp_path / "missing.service"
    missing.write_text(f"[Service]\nExecStart={layout.BIN_DIR}/no-such-kbuild-binary\n")
    assert any("not executable" in p for p in verify_units([missing]))
    assert verify_units([missing], binaries_installed=False) == []


def test_verify_units_can_run_elsewhere() -> None:
    seen: list[list[str]] = []

    def runner(argv: list[str]) -> tuple[int, str]:
        seen.append(argv)
        return 0, ""

    assert verify_units(["/etc/systemd/system/etcd.service"], run=runner) == []
    assert seen == [["systemd-analyze", "verify", "--man=no", "/etc/systemd/system/etcd.service"]]
    assert verify_units([], run=runner) == []
    assert verify_units(["x.service"], run=lambda argv: (1, "")) == ["systemd-analyze verify exited 1 without saying why"]
