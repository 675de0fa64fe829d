"""The version skew policy as data, and pure checks of an upgrade against it.

Sources (read, not copied):
- Kubernetes version skew policy, https://kubernetes.io/releases/version-skew-policy/ :
  HA kube-apiservers within one minor of each other; kubelet and kube-proxy never newer than any
  kube-apiserver and at most three minors older; kube-proxy within three minors of the kubelet beside
  it; kube-controller-manager and kube-scheduler never newer than the kube-apiservers and at most one
  minor older; "kube-apiserver [must] not skip minor versions when upgrading"; components are upgraded
  apiservers first, then controller-manager/scheduler, then kubelets (drained first: "in-place minor
  version kubelet upgrades are not supported").
- etcd upgrade policy, https://etcd.io/docs/v3.6/upgrades/upgrading-etcd/ : patch upgrades, or one minor
  at a time ("upgrades that skip a minor version are not supported"); and the 3.4 -> 3.5 guide,
  https://etcd.io/docs/v3.5/upgrades/upgrade_3_5/ : a rolling upgrade, one member at a time, from a
  healthy cluster already at 3.4; a mixed cluster runs at its lowest member's version.
- Downgrades: Kubernetes documents none; etcd's (https://etcd.io/docs/v3.5/downgrades/downgrade_3_5/)
  is its own procedure with its own preconditions. kbuild refuses both and says so.

kbuild adds one restriction of its own ("specific cluster deployment tools may place additional
restrictions", says the Kubernetes page): every Kubernetes component moves one minor at a time, as
kubeadm requires, so kubelets never jump several minors in one drain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kbuild.plays.upgrade.versions import BY_NAME, Version
from kbuild.render.versions import ETCD_MINORS, KUBERNETES

K8S_SKEW = "https://kubernetes.io/releases/version-skew-policy/"
ETCD_POLICY = "https://etcd.io/docs/v3.6/upgrades/upgrading-etcd/"
ETCD_3_5 = "https://etcd.io/docs/v3.5/upgrades/upgrade_3_5/"

REFUSE = "refuse"
WARN = "warn"

Key = tuple[str, str]  # (host or "node/NAME", component)


@dataclass(frozen=True)
class Finding:
    level: str  # refuse | warn
    rule: str  # a short id, stable for tests and --json
    message: str
    source: str

    @property
    def refused(self) -> bool:
        return self.level == REFUSE


@dataclass(frozen=True)
class UpgradeRule:
    """How far one component family may move in one upgrade."""

    family: str  # the inventory's versions field: kubernetes | etcd | containerd
    max_minor_step: int | None  # None: no limit kbuild knows of
    source: str


UPGRADE_RULES = {
    "kubernetes": UpgradeRule("kubernetes", 1, K8S_SKEW),
    "etcd": UpgradeRule("etcd", 1, ETCD_POLICY),
    # containerd publishes no skip rule; kbuild renders configs for 1.6, 1.7 and 2.x alike.
    "containerd": UpgradeRule("containerd", None, "https://containerd.io/releases/"),
}


@dataclass(frozen=True)
class SkewRule:
    """`component` may be at most `newer` minors newer and `older` minors older than every instance of
    `reference` (on the same host only, with `same_host`)."""

    component: str
    reference: str
    newer: int
    older: int
    why: str
    same_host: bool = False
    source: str = K8S_SKEW


SKEW_RULES = (
    SkewRule("kube-apiserver", "kube-apiserver", 1, 1, "HA kube-apiservers must be within one minor version"),
    SkewRule("kube-controller-manager", "kube-apiserver", 0, 1,
             "kube-controller-manager must not be newer than kube-apiserver, and at most one minor older"),
    SkewRule("kube-scheduler", "kube-apiserver", 0, 1,
             "kube-scheduler must not be newer than kube-apiserver, and at most one minor older"),
    SkewRule("kubelet", "kube-apiserver", 0, 3,
             "kubelet must not be newer than kube-apiserver, and at most three minors older"),
    SkewRule("kube-proxy", "kube-apiserver", 0, 3,
             "kube-proxy must not be newer than kube-apiserver, and at most three minors older"),
    SkewRule("kube-proxy", "kubelet", 3, 3, "kube-proxy must be within three minors of the kubelet beside it",
             same_host=True),
    SkewRule("etcd", "etcd", 1, 1, "etcd members may differ by one minor only while a rolling upgrade runs",
             source=ETCD_3_5),
)

# etcd releases its maintainers advise against running (data inconsistency fixed in 3.5.3; see the
# 3.5 CHANGELOG and https://etcd.io/docs/v3.5/op-guide/data_corruption/).
ETCD_ADVISORIES = {(3, 5, p): "etcd 3.5.0-3.5.2 can lose consistency after a crash under load; "
                              "etcd recommends 3.5.3 or later for production" for p in (0, 1, 2)}


def _where(keys: Iterable[Key]) -> str:
    hosts = sorted({h for h, _ in keys})
    return ", ".join(hosts[:6]) + (f" and {len(hosts) - 6} more" if len(hosts) > 6 else "")


def check_known(target: Mapping[str, Version]) -> list[Finding]:
    """The target must be a version kbuild can render units for (kbuild.render.versions)."""
    found = []
    kube, etcd = target["kube-apiserver"], target["etcd"]
    if kube.minor_key not in KUBERNETES:
        known = ", ".join(f"{a}.{b}" for a, b in KUBERNETES)
        found.append(Finding(REFUSE, "unknown-target", f"kbuild has no flag tables for Kubernetes {kube.short} "
                             f"(it knows {known})", K8S_SKEW))
    if etcd.minor_key not in ETCD_MINORS:
        known = ", ".join(f"{a}.{b}" for a, b in ETCD_MINORS)
        found.append(Finding(REFUSE, "unknown-target", f"kbuild has no flag tables for etcd {etcd.short} "
                             f"(it knows {known})", ETCD_POLICY))
    return found


def check_transitions(current: Mapping[Key, Version], target: Mapping[str, Version]) -> list[Finding]:
    """Each installed component's move to its target: no downgrade, no major change, no skipped minor."""
    groups: dict[tuple[str, str, Version], list[Key]] = {}
    for key, version in current.items():
        component = key[1]
        want = target.get(component)
        if want is None or version == want:
            continue
        rule = UPGRADE_RULES[BY_NAME[component].follows]
        if want < version:
            kind = "downgrade"
        elif want.major != version.major:
            kind = "major"
        elif rule.max_minor_step is not None and version.minors_to(want) > rule.max_minor_step:
            kind = "skip"
        else:
            continue
        groups.setdefault((kind, component, version), []).append(key)
    found = []
    for (kind, component, version), keys in sorted(groups.items(), key=lambda item: (item[0][1], str(item[0][2]))):
        want = target[component]
        family = BY_NAME[component].follows
        rule = UPGRADE_RULES[family]
        where = f"{component} {version} on {_where(keys)}"
        if kind == "downgrade":
            message = (f"{where}: {want} would be a downgrade; kbuild only upgrades ({family} downgrades are not "
                       f"a supported rolling operation). Set cluster.versions.{family} to {version} or newer")
        elif kind == "major":
            message = f"{where}: {want} is another major version; kbuild upgrades within major version {version.major}"
        else:
            step = Version(version.major, version.minor + 1, 0).short
            message = (f"{where}: {want} would skip {_skipped(version, want)}; upgrade one minor version at a "
                       f"time: first to the latest {step}.x, then to {want.short}")
        found.append(Finding(REFUSE, kind, message, rule.source))
    return found


def _skipped(old: Version, new: Version) -> str:
    minors = [f"{old.major}.{m}" for m in range(old.minor + 1, new.minor)]
    return minors[0] if len(minors) == 1 else f"{', '.join(minors[:-1])} and {minors[-1]}"


def check_skew(state: Mapping[Key, Version]) -> list[Finding]:
    """Every pair the skew rules constrain, in one state of the cluster."""
    by_component: dict[str, list[tuple[Key, Version]]] = {}
    for key, version in state.items():
        by_component.setdefault(key[1], []).append((key, version))
    found: dict[str, Finding] = {}
    for rule in SKEW_RULES:
        for key, version in by_component.get(rule.component, []):
            for ref_key, ref in by_component.get(rule.reference, []):
                if ref_key == key or (rule.same_host and ref_key[0] != key[0]) or ref.major != version.major:
                    continue
                ahead = ref.minors_to(version)  # >0: the component is newer than the reference
                if -rule.older <= ahead <= rule.newer:
                    continue
                relation = f"{ahead} minor{'s' if abs(ahead) != 1 else ''} newer" if ahead > 0 else \
                    f"{-ahead} minors older"
                message = (f"{rule.component} {version.short} on {key[0]} would be {relation} than "
                           f"{rule.reference} {ref.short} on {ref_key[0]}: {rule.why}")
                found.setdefault(message, Finding(REFUSE, "skew", message, rule.source))
    return list(found.values())


def check_plan(current: Mapping[Key, Version], target: Mapping[str, Version],
               stages: Sequence[tuple[str, Sequence[Key]]]) -> list[Finding]:
    """The whole upgrade: the target, each move, and the cluster's skew after every stage of the plan.

    `current` holds what is installed (hosts kbuild manages, and kubelets of Nodes it does not, keyed
    "node/NAME"); `stages` is the plan's order, each naming the (host, component) pairs it moves to the
    target. A state the cluster is already in is only a warning (the upgrade may well repair it);
    a state the plan would create is a refusal.
    """
    findings = check_known(target) + check_transitions(current, target)
    state = dict(current)
    before = {f.message for f in check_skew(state)}
    for message in sorted(before):
        findings.append(Finding(WARN, "skew-now", f"already outside the skew policy: {message}", K8S_SKEW))
    seen = set(before)
    for name, keys in stages:
        for key in keys:
            state[key] = target[key[1]]
        for finding in check_skew(state):
            if finding.message not in seen:
                seen.add(finding.message)
                findings.append(Finding(REFUSE, "skew", f"after {name}: {finding.message}", finding.source))
    advisory = ETCD_ADVISORIES.get((target["etcd"].major, target["etcd"].minor, target["etcd"].patch))
    if advisory and any(k[1] == "etcd" for k in current):
        findings.append(Finding(WARN, "etcd-advisory", f"target etcd {target['etcd']}: {advisory}", ETCD_3_5))
    return findings


def check_etcd_cluster_version(cluster_version: Version | None, target: Version) -> list[Finding]:
    """etcd negotiates a cluster version (the lowest member's minor); a rolling upgrade to 3.N starts from a
    cluster that already is at 3.N-1 or later, as the 3.4 -> 3.5 guide requires ("the running cluster must
    be 3.4 or greater")."""
    if cluster_version is None or cluster_version.minor_key >= (target.major, target.minor - 1):
        return []
    return [Finding(REFUSE, "etcd-cluster-version",
                    f"the etcd cluster runs at cluster version {cluster_version.short}; etcd {target.short} needs "
                    f"a cluster at {target.major}.{target.minor - 1} or later: finish the previous etcd upgrade "
                    "first", ETCD_3_5)]
