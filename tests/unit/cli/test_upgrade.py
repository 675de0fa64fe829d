"""`kbuild upgrade` arguments that are refused before any host is contacted."""

from __future__ import annotations

import re
import textwrap

import pytest

from kbuild.cli import run
from kbuild.cli.upgrade import _confirm, target_cluster
from kbuild.errors import UsageError
from kbuild.inventory import load_cluster
from kbuild.plays.upgrade.plan import UpgradePlan
from tests.unit.supported import KUBE, KUBE_PREVIOUS, short


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text(textwrap.dedent(f"""\
        cluster: {{name: t, versions: {{kubernetes: {KUBE_PREVIOUS}}}}}
        hosts:
          m1: {{address: 198.18.0.10, roles: [etcd, control-plane, worker]}}
        """))
    return path


def test_a_bad_to_version_is_bad_input_and_names_the_option(inventory, capsys):
    code = run(["upgrade", "plan", "-i", str(inventory), "--to", short(KUBE)])
    assert code == 2
    assert re.search(rf"--to: '{re.escape(short(KUBE))}' is not a version like \d+\.\d+\.\d+\b",
                     capsys.readouterr().err)


def test_to_replaces_only_the_kubernetes_version(inventory):
    cluster = load_cluster(inventory)
    target = target_cluster(cluster, f"v{KUBE}")
    assert target.settings.versions.kubernetes == KUBE
    assert target.settings.versions.etcd == cluster.settings.versions.etcd
    assert cluster.settings.versions.kubernetes == KUBE_PREVIOUS  # the loaded inventory is untouched
    assert target_cluster(cluster, None) is cluster


def test_apply_without_a_terminal_needs_yes():
    plan = UpgradePlan(target={}, observed={}, steps=[])
    with pytest.raises(UsageError, match="add --yes"):
        _confirm(plan, yes=False, as_json=True)
    _confirm(plan, yes=True, as_json=True)  # --yes: no question asked
