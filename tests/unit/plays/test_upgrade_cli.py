"""`kbuild upgrade` arguments that are refused before any host is contacted."""

from __future__ import annotations

import textwrap

import pytest

from kbuild.cli import run
from kbuild.cli.upgrade import _confirm, target_cluster
from kbuild.errors import UsageError
from kbuild.inventory import load_cluster
from kbuild.plays.upgrade.plan import UpgradePlan


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text(textwrap.dedent("""\
        cluster: {name: t, versions: {kubernetes: 1.33.5}}
        hosts:
          m1: {address: 198.18.0.10, roles: [etcd, control-plane, worker]}
        """))
    return path


def test_a_bad_to_version_is_bad_input_and_names_the_option(inventory, capsys):
    code = run(["upgrade", "plan", "-i", str(inventory), "--to", "1.34"])
    assert code == 2
    assert "--to: '1.34' is not a version like 1.34.1" in capsys.readouterr().err


def test_to_replaces_only_the_kubernetes_version(inventory):
    cluster = load_cluster(inventory)
    target = target_cluster(cluster, "v1.34.1")
    assert target.settings.versions.kubernetes == "1.34.1"
    assert target.settings.versions.etcd == cluster.settings.versions.etcd
    assert cluster.settings.versions.kubernetes == "1.33.5"  # the loaded inventory is untouched
    assert target_cluster(cluster, None) is cluster


def test_apply_without_a_terminal_needs_yes():
    plan = UpgradePlan(target={}, observed={}, steps=[])
    with pytest.raises(UsageError, match="add --yes"):
        _confirm(plan, yes=False, as_json=True)
    _confirm(plan, yes=True, as_json=True)  # --yes: no question asked
