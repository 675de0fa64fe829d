"""The skew policy as pure checks: moves refused or allowed, and every intermediate state of a plan."""

from __future__ import annotations

import pytest

from kbuild.plays.upgrade import policy
from kbuild.plays.upgrade.policy import (
    check_etcd_cluster_version,
    check_plan,
    check_skew,
    check_transitions,
)
from kbuild.plays.upgrade.versions import Version

V = Version.parse
KUBE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE = ("kubelet", "kube-proxy")


def target(kube="1.34.1", etcd="3.5.6", containerd="1.6.20") -> dict[str, Version]:
    t = {c: V(kube) for c in (*KUBE, *NODE)}
    t["etcd"], t["containerd"] = V(etcd), V(containerd)
    return t


def cluster_state(kube="1.33.5", etcd="3.5.6", containerd="1.6.20", *, masters=3, workers=2) -> dict:
    """(host, component) -> version, as detected on an HA cluster."""
    state = {}
    for i in range(1, masters + 1):
        state[(f"m{i}", "etcd")] = V(etcd)
        for c in KUBE:
            state[(f"m{i}", c)] = V(kube)
    for i in range(1, workers + 1):
        state[(f"w{i}", "containerd")] = V(containerd)
        for c in NODE:
            state[(f"w{i}", c)] = V(kube)
    return state


def stages_in_order(state: dict) -> list[tuple[str, list]]:
    """The order kbuild's plan uses: etcd, apiservers, controllers, then each worker."""
    def keys(components, prefix):
        return sorted(k for k in state if k[1] in components and k[0].startswith(prefix))

    stages = [(f"etcd on {h}", [(h, c)]) for h, c in keys(("etcd",), "m")]
    stages += [(f"apiserver on {h}", [(h, c)]) for h, c in keys(("kube-apiserver",), "m")]
    stages += [(f"controllers on {h}", [(h, "kube-controller-manager"), (h, "kube-scheduler")])
               for h in sorted({h for h, _ in keys(("kube-scheduler",), "m")})]
    workers = sorted({h for h, _ in keys(NODE, "w")})
    stages += [(f"worker {h}", [(h, c) for c in ("containerd", *NODE)]) for h in workers]
    return stages


def refusals(findings) -> list[policy.Finding]:
    return [f for f in findings if f.refused]


def test_one_minor_up_in_the_skew_policy_order_is_allowed():
    state = cluster_state()
    findings = check_plan(state, target(), stages_in_order(state))
    assert refusals(findings) == []


def test_patch_upgrades_are_allowed():
    state = cluster_state(kube="1.34.0", etcd="3.5.1")
    assert refusals(check_plan(state, target(etcd="3.5.6"), stages_in_order(state))) == []


@pytest.mark.parametrize("kube, etcd, kind, family", [
    ("1.32.4", "3.5.6", "skip", "kubernetes"),      # 1.32 -> 1.34 skips 1.33
    ("1.35.0", "3.5.6", "downgrade", "kubernetes"),
    ("1.34.2", "3.5.6", "downgrade", "kubernetes"),  # a patch downgrade too
    ("1.33.5", "3.4.23", "skip", "etcd"),           # with target etcd 3.6: skips 3.5
    ("1.33.5", "3.6.1", "downgrade", "etcd"),
])
def test_skipping_a_minor_and_downgrades_are_refused(kube, etcd, kind, family):
    want = target(etcd="3.6.0" if etcd == "3.4.23" else "3.5.6")
    findings = check_transitions(cluster_state(kube=kube, etcd=etcd), want)
    assert [(f.rule, f.level) for f in findings] == [(kind, "refuse")]
    message = findings[0].message
    assert message.startswith(f"{family} ")
    if kind == "skip":
        assert "skips" in message and "one minor version at a time" in message
    else:
        assert "downgrade" in message and f"set cluster.versions.{family}" in message
    assert findings[0].source.startswith("https://")


def test_a_refusal_names_every_host_and_component_once():
    findings = check_transitions(cluster_state(kube="1.35.0"), target())
    assert len(findings) == 1
    text = findings[0].message
    assert "m1, m2, m3, w1, w2" in text
    assert "kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy" in text


def test_a_major_version_change_is_refused():
    findings = check_transitions(cluster_state(), target(kube="2.0.0"))
    assert [f.rule for f in findings] == ["major"]


def test_a_containerd_downgrade_is_refused_but_any_upgrade_is_not():
    assert [f.rule for f in check_transitions(cluster_state(containerd="1.7.2"), target())] == ["downgrade"]
    assert check_transitions(cluster_state(containerd="1.6.20"), target(containerd="2.1.0")) == []


def test_kubelets_upgraded_before_the_apiservers_would_be_newer_than_them():
    state = cluster_state()
    wrong = list(reversed(stages_in_order(state)))  # workers first
    found = refusals(check_plan(state, target(), wrong))
    assert found and all(f.rule == "skew" for f in found)
    assert any("kubelet 1.34" in f.message and "newer than kube-apiserver 1.33" in f.message for f in found)
    assert found[0].message.startswith("after worker w2:")


def test_a_node_kbuild_does_not_manage_would_fall_too_far_behind():
    state = cluster_state()
    state[("node/legacy", "kubelet")] = V("1.30.9")  # 3 minors behind 1.33: allowed today, 4 behind 1.34
    found = refusals(check_plan(state, target(), stages_in_order(state)))
    assert len(found) == 1
    assert "kubelet 1.30 (on node/legacy) would be 4 minor versions older than kube-apiserver 1.34" in found[0].message
    assert found[0].message.startswith("after apiserver on m1:")


def test_controllers_may_lag_one_minor_but_never_lead():
    assert check_skew({("m1", "kube-apiserver"): V("1.34.0"), ("m1", "kube-scheduler"): V("1.33.0")}) == []
    ahead = check_skew({("m1", "kube-apiserver"): V("1.33.0"), ("m1", "kube-scheduler"): V("1.34.0")})
    assert len(ahead) == 1 and "1 minor version newer" in ahead[0].message()
    behind = check_skew({("m1", "kube-apiserver"): V("1.34.0"), ("m1", "kube-scheduler"): V("1.32.0")})
    assert len(behind) == 1 and "2 minor versions older" in behind[0].message()


def test_ha_apiservers_stay_within_one_minor_and_kube_proxy_within_three_of_its_kubelet():
    assert len(check_skew({("a", "kube-apiserver"): V("1.34.0"), ("b", "kube-apiserver"): V("1.32.0")})) == 2
    assert check_skew({("a", "kube-apiserver"): V("1.34.0"), ("b", "kube-apiserver"): V("1.33.0")}) == []
    proxy = {("a", "kube-apiserver"): V("1.34.0"), ("w", "kubelet"): V("1.34.0"), ("w", "kube-proxy"): V("1.30.0")}
    rules = {(v.rule.component, v.rule.reference) for v in check_skew(proxy)}
    assert rules == {("kube-proxy", "kube-apiserver"), ("kube-proxy", "kubelet")}


def test_a_cluster_already_outside_the_policy_is_a_warning_the_upgrade_may_repair():
    state = cluster_state()
    state[("w1", "kubelet")] = V("1.34.1")  # someone installed it by hand, ahead of the apiservers
    findings = check_plan(state, target(), stages_in_order(state))
    assert refusals(findings) == []
    assert [f.rule for f in findings if not f.refused] == ["skew-now"]


def test_a_target_kbuild_cannot_render_is_refused():
    findings = check_plan(cluster_state(kube="1.34.1"), target(kube="1.35.0"), [])
    assert any(f.rule == "unknown-target" and "Kubernetes 1.35" in f.message for f in refusals(findings))


def test_etcd_releases_with_known_data_bugs_are_a_warning():
    state = cluster_state(etcd="3.4.23")
    findings = check_plan(state, target(etcd="3.5.1"), stages_in_order(state))
    assert refusals(findings) == []
    assert [f.rule for f in findings] == ["etcd-advisory"]


def test_etcd_moves_only_from_a_cluster_at_the_previous_minor():
    assert check_etcd_cluster_version(V("3.4.0"), V("3.5.6")) == []
    assert check_etcd_cluster_version(V("3.5.0"), V("3.5.6")) == []
    refused = check_etcd_cluster_version(V("3.3.0"), V("3.5.6"))
    assert [f.rule for f in refused] == ["etcd-cluster-version"] and "3.4 or later" in refused[0].message


def test_every_skew_rule_names_its_source():
    for rule in policy.SKEW_RULES:
        assert rule.source.startswith("https://") and rule.why
    for rule in policy.UPGRADE_RULES.values():
        assert rule.source.startswith("https://")
