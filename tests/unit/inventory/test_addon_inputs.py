"""Issue 14's bad input: an addon setting that does not exist, a cluster_dns outside service_cidr, a CNI kbuild
does not know, a replica count of 0 or 1000. Each is refused by `inventory check` (exit 2) with the file, the
line and the key named, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.cli import run
from kbuild.errors import ExitCode

HOSTS = """\
hosts:
  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}
  w1: {address: 198.18.0.11, roles: [worker]}
"""


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], cluster: str) -> tuple[int, str]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"cluster:\n  name: t\n{cluster}{HOSTS}")
    code = run(["inventory", "check", "-i", str(inventory)])
    return code, " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("cluster,line,expected", [
    ("  addons:\n    coredns:\n      replica: 3\n", 5,
     "cluster.addons.coredns.replica: unknown key 'replica'; did you mean 'replicas'?"),
    ("  addons:\n    kube-dns: {}\n", 4, "cluster.addons.kube-dns: unknown key 'kube-dns'"),
    ("  service_cidr: 10.96.0.0/16\n  cluster_dns: 10.32.0.10\n", 4,
     "cluster.cluster_dns: 10.32.0.10 is not inside cluster.service_cidr 10.96.0.0/16"),
    ("  service_cidr: 10.96.0.0/16\n  cluster_dns: 10.96.0.1\n", 4,
     "cluster.cluster_dns: 10.96.0.1 is the network address or the `kubernetes` Service's address of 10.96.0.0/16"),
    ("  service_cidr: fd00:96::/112\n  cluster_dns: 'fd00:96::'\n", 4,
     "cluster.cluster_dns: fd00:96:: is the network address or the `kubernetes` Service's address of fd00:96::/112"),
    ("  cni: calico\n", 3, "cluster.cni: Input should be 'bridge' or 'none' (got 'calico')"),
    ("  addons:\n    coredns:\n      replicas: 0\n", 5,
     "cluster.addons.coredns.replicas: Input should be greater than or equal to 1 (got 0)"),
    ("  addons:\n    coredns:\n      replicas: 1000\n", 5,
     "cluster.addons.coredns.replicas: Input should be less than or equal to 100 (got 1000)"),
    ("  addons:\n    coredns:\n      forward: [dns.google]\n", 5,
     "cluster.addons.coredns.forward.0: 'dns.google' is neither a resolv.conf path nor an IP address[:port]"),
    ("  addons:\n    coredns:\n      forward: ['[2606:4700::1111]:']\n", 5,
     "cluster.addons.coredns.forward.0: '[2606:4700::1111]:' is not [IPv6 address]:port"),
    ("  addons:\n    coredns:\n      forward: ['[2606:4700::1111]:99999']\n", 5,
     "cluster.addons.coredns.forward.0: '[2606:4700::1111]:99999': '99999' is not a port"),
])
def test_inventory_check_names_the_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     cluster: str, line: int, expected: str) -> None:
    code, err = check(tmp_path, capsys, cluster)
    assert code == ExitCode.BAD_INPUT, err
    assert f"{tmp_path / 'inventory.yaml'}:{line}: {expected}" in err
    assert "Traceback" not in err and "internal error" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yaml"]  # no state directory, nothing else


@pytest.mark.parametrize("cluster", [
    "  addons:\n    coredns: {replicas: 1, forward: []}\n",
    "  addons:\n    coredns: {replicas: 100, forward: ['1.1.1.1', '[2606:4700::1111]:53', /etc/resolv.conf]}\n",
    "  addons:\n    coredns: {enabled: false}\n",
    "  service_cidr: 10.96.0.0/16\n  cluster_dns: 10.96.0.53\n  cni: none\n",
])
def test_the_edges_of_what_is_allowed_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str], cluster: str) -> None:
    code, err = check(tmp_path, capsys, cluster)
    assert code == ExitCode.OK, err
