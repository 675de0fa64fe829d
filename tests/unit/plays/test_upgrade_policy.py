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
from kbuild.plays.upgrade.running import Version
from kbuild.releases import ETCD, KUBERNETES, show
from tests.unit.supported import CONTAINERD, CONTAINERD_UNSUPPORTED, ETCD_VERSION, KUBE_PREVIOUS, beyond, short, step
from tests.unit.supported import KUBE as KUBE_VERSION

V = Version.parse
KUBE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE = ("kubelet", "kube-proxy")
NEW, OLD = KUBE_VERSION, KUBE_PREVIOUS  # the upgrade the tests plan: the previous Kubernetes minor to the default
NEWER_PATCH = f"{short(NEW)}.{V(NEW).patch + 1}"


def target(kube=NEW, etcd=ETCD_VERSION, containerd=CONTAINERD) -> dict[str, Version]:
    t = {c: V(kube) for c in (*KUBE, *NODE)}
    t["etcd"], t["containerd"] = V(etcd), V(containerd)
    return t


def cluster_state(kube=OLD, etcd=ETCD_VERSION, containerd=CONTAINERD, *, masters=3, workers=2) -> dict:
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


def refusals(findings) -> list[policy.PolicyFinding]:
    return [f for f in findings if f.refused]


def test_one_minor_up_in_the_skew_policy_order_is_allowed():
    state = cluster_state()
    findings = check_plan(state, target(), stages_in_order(state))
    assert refusals(findings) == []


def test_patch_upgrades_are_allowed():
    state = cluster_state(kube=step(NEW, 0), etcd=step(ETCD_VERSION, 0))  # X.Y.0 -> the default X.Y.Z
    assert refusals(check_plan(state, target(), stages_in_order(state))) == []


@pytest.mark.parametrize("kube, etcd, kind, family", [
    (step(NEW, -2), ETCD_VERSION, "skip", "kubernetes"),  # two minors up skips one
    (step(NEW, 1), ETCD_VERSION, "downgrade", "kubernetes"),
    (NEWER_PATCH, ETCD_VERSION, "downgrade", "kubernetes"),  # a patch downgrade too
    (OLD, step(ETCD_VERSION, -2), "skip", "etcd"),
    (OLD, step(ETCD_VERSION, 1), "downgrade", "etcd"),
])
def test_skipping_a_minor_and_downgrades_are_refused(kube, etcd, kind, family):
    findings = check_transitions(cluster_state(kube=kube, etcd=etcd), target())
    assert [(f.rule, f.level) for f in findings] == [(kind, "refuse")]
    message = findings[0].message
    assert message.startswith(f"{family} ")
    if kind == "skip":
        assert "skips" in message and "one minor version at a time" in message
    else:
        assert "downgrade" in message and f"set cluster.versions.{family}" in message
    assert findings[0].source.startswith("https://")


def test_a_refusal_names_every_host_and_component_once():
    findings = check_transitions(cluster_state(kube=step(NEW, 1)), target())
    assert len(findings) == 1
    text = findings[0].message
    assert "m1, m2, m3, w1, w2" in text
    assert "kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy" in text


def test_a_major_version_change_is_refused():
    findings = check_transitions(cluster_state(), target(kube="2.0.0"))
    assert [f.rule for f in findings] == ["major"]


def test_a_containerd_downgrade_is_refused_but_any_upgrade_is_not():
    assert [f.rule for f in check_transitions(cluster_state(containerd=step(CONTAINERD, 1)), target())] == [
        "downgrade"]
    assert check_transitions(cluster_state(containerd=step(CONTAINERD, -2)), target()) == []  # minors skipped
    # From a containerd major kbuild no longer installs, which hosts may still run.
    assert check_transitions(cluster_state(containerd=CONTAINERD_UNSUPPORTED), target()) == []


def test_kubelets_upgraded_before_the_apiservers_would_be_newer_than_them():
    state = cluster_state()
    wrong = list(reversed(stages_in_order(state)))  # workers first
    found = refusals(check_plan(state, target(), wrong))
    assert found and all(f.rule == "skew" for f in found)
    assert any(f"kubelet {short(NEW)}" in f.message and f"newer than kube-apiserver {short(OLD)}" in f.message
               for f in found)
    assert found[0].message.startswith("after worker w2:")


def test_a_node_kbuild_does_not_manage_would_fall_too_far_behind():
    state = cluster_state()
    legacy = step(OLD, -3)
    state[("node/legacy", "kubelet")] = V(legacy)  # 3 minors behind the apiservers: allowed today, 4 after
    found = refusals(check_plan(state, target(), stages_in_order(state)))
    assert len(found) == 1
    assert (f"kubelet {short(legacy)} (on node/legacy) would be 4 minor versions older than kube-apiserver "
            f"{short(NEW)}") in found[0].message
    assert found[0].message.startswith("after apiserver on m1:")


def minors_back(n: int) -> Version:
    return V(step(NEW, -n))


def test_controllers_may_lag_one_minor_but_never_lead():
    assert check_skew({("m1", "kube-apiserver"): minors_back(0), ("m1", "kube-scheduler"): minors_back(1)}) == []
    ahead = check_skew({("m1", "kube-apiserver"): minors_back(1), ("m1", "kube-scheduler"): minors_back(0)})
    assert len(ahead) == 1 and "1 minor version newer" in ahead[0].message()
    behind = check_skew({("m1", "kube-apiserver"): minors_back(0), ("m1", "kube-scheduler"): minors_back(2)})
    assert len(behind) == 1 and "2 minor versions older" in behind[0].message()


def test_ha_apiservers_stay_within_one_minor_and_kube_proxy_within_three_of_its_kubelet():
    assert len(check_skew({("a", "kube-apiserver"): minors_back(0), ("b", "kube-apiserver"): minors_back(2)})) == 2
    assert check_skew({("a", "kube-apiserver"): minors_back(0), ("b", "kube-apiserver"): minors_back(1)}) == []
    proxy = {("a", "kube-apiserver"): minors_back(0), ("w", "kubelet"): minors_back(0),
             ("w", "kube-proxy"): minors_back(4)}
    rules = {(v.rule.component, v.rule.reference) for v in check_skew(proxy)}
    assert rules == {("kube-proxy", "kube-apiserver"), ("kube-proxy", "kubelet")}


def test_a_cluster_already_outside_the_policy_is_a_warning_the_upgrade_may_repair():
    state = cluster_state()
    state[("w1", "kubelet")] = V(NEW)  # someone installed it by hand, ahead of the apiservers
    findings = check_plan(state, target(), stages_in_order(state))
    assert refusals(findings) == []
    assert [f.rule for f in findings if not f.refused] == ["skew-now"]


@pytest.mark.parametrize("kube, etcd, named", [
    (beyond(tuple(KUBERNETES)), ETCD_VERSION, f"Kubernetes {short(beyond(tuple(KUBERNETES)))} (it knows "
                                              f"{', '.join(show(m) for m in KUBERNETES)})"),
    (NEW, beyond(ETCD), f"etcd {short(beyond(ETCD))} (it knows {', '.join(show(m) for m in ETCD)})"),
])
def test_a_target_kbuild_does_not_support_is_refused(kube, etcd, named):
    findings = check_plan(cluster_state(kube=NEW), target(kube=kube, etcd=etcd), [])
    assert [f.rule for f in refusals(findings)] == ["unknown-target"]
    assert named in refusals(findings)[0].message


def test_etcd_releases_with_known_data_bugs_are_a_warning():
    minor, floor = next((m, f) for m, f in policy.ETCD_MIN_RECOMMENDED.items() if m in ETCD)
    below = str(Version(floor.major, floor.minor, floor.patch - 1))
    state = cluster_state(etcd=f"{show(minor)}.0")
    findings = check_plan(state, target(etcd=below), stages_in_order(state))
    assert refusals(findings) == []
    assert [f.rule for f in findings] == ["etcd-advisory"]
    assert f"older than {floor}" in findings[0].message
    assert [f.rule for f in check_plan(state, target(etcd=str(floor)), stages_in_order(state))] == []


def test_etcd_moves_only_from_a_cluster_at_the_previous_minor():
    previous, older = V(step(ETCD_VERSION, -1)), V(step(ETCD_VERSION, -2))
    assert check_etcd_cluster_version(previous, V(ETCD_VERSION)) == []
    assert check_etcd_cluster_version(V(step(ETCD_VERSION, 0)), V(ETCD_VERSION)) == []
    refused = check_etcd_cluster_version(older, V(ETCD_VERSION))
    assert [f.rule for f in refused] == ["etcd-cluster-version"]
    assert f"{previous.short} or later" in refused[0].message


def test_every_skew_rule_names_its_source():
    for rule in policy.SKEW_RULES:
        assert rule.source.startswith("https://") and rule.why
    for rule in policy.UPGRADE_RULES.values():
        assert rule.source.startswith("https://")
