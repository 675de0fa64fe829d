"""kbuild upgrade apply as an action: the PKI and binaries first, the rolling steps, then the addons waited for."""

from __future__ import annotations

import pytest

from kbuild.plays import actions
from kbuild.plays.desired import INPUTS
from kbuild.plays.phases import Context
from kbuild.plays.upgrade import UpgradePlan


def test_the_addons_are_applied_and_waited_for_after_the_hosts(monkeypatch: pytest.MonkeyPatch,
                                                               cluster_from) -> None:
    # Draining the only worker evicts every CoreDNS replica: the upgrade must not end before they are back.
    order: list[str] = []
    monkeypatch.setattr(actions, "run_phases", lambda ctx, phases, **_: order.extend(p.name for p in phases))
    monkeypatch.setattr(actions, "run_upgrade", lambda ctx, plan, inputs: order.append("rolling") or ["workers"])
    cluster = cluster_from("cluster: {name: t}\nhosts:\n  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}\n"
                           "  w1: {address: 198.18.0.11, roles: [worker]}\n")
    ctx = Context(cluster, None, check=False)  # type: ignore[arg-type]  # the stand-ins above never use it
    ctx.state.put(INPUTS, {})
    done = actions.upgrade(ctx, UpgradePlan(target={}, observed={}, steps=[]))
    assert done == ["workers"]
    assert order == ["pki", "artifacts", "rolling", "addons"]
