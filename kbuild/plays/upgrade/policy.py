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

from kbuild.plays.upgrade.running import BY_NAME, Version
from kbuild.releases import ETCD as ETCD_MINORS
from kbuild.releases import KUBERNETES

K8S_SKEW = "https://kubernetes.io/releases/version-skew-policy/"
ETCD_POLICY = "https://etcd.io/docs/v3.6/upgrades/upgrading-etcd/"
ETCD_3_5 = "https://etcd.io/docs/v3.5/upgrades/upgrade_3_5/"

REFUSE = "refuse"
WARN = "warn"

Key = tuple[str, str]  # (host or "node/NAME", component)


@dataclass(frozen=True)
class PolicyFinding:
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
    major: bool = False  # may move to the next major version


UPGRADE_RULES = {
    "kubernetes": UpgradeRule("kubernetes", 1, K8S_SKEW),
    "etcd": UpgradeRule("etcd", 1, ETCD_POLICY),
    # containerd publishes no skip rule for its minors, and 2.x reads a 1.x configuration; kbuild renders
    # the configuration each version wants (kbuild.render.versions). Nodes are drained before it changes.
    "containerd": UpgradeRule("containerd", None, "https://containerd.io/releases/", major=True),
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

# The oldest patch releases etcd recommends for production, per minor (etcd's CHANGELOG/README.md and
# https://kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/): earlier ones have known
# data-inconsistency bugs (3.5.0-3.5.2 after a crash under load; 3.5.0-3.5.5 during defragmentation).
ETCD_MIN_RECOMMENDED = {(3, 4): Version(3, 4, 22), (3, 5): Version(3, 5, 6)}
ETCD_RECOMMENDATION = "https://kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/"


def _where(keys: Iterable[Key]) -> str:
    hosts = sorted({h for h, _ in keys})
    return ", ".join(hosts[:6]) + (f" and {len(hosts) - 6} more" if len(hosts) > 6 else "")


def check_known(target: Mapping[str, Version]) -> list[PolicyFinding]:
    """The target must be a version kbuild supports (kbuild.releases)."""
    found = []
    kube, etcd = target["kube-apiserver"], target["etcd"]
    if kube.minor_key not in KUBERNETES:
        known = ", ".join(f"{a}.{b}" for a, b in KUBERNETES)
        found.append(PolicyFinding(REFUSE, "unknown-target", f"kbuild has no flag tables for Kubernetes {kube.short} "
                             f"(it knows {known})", K8S_SKEW))
    if etcd.minor_key not in ETCD_MINORS:
        known = ", ".join(f"{a}.{b}" for a, b in ETCD_MINORS)
        found.append(PolicyFinding(REFUSE, "unknown-target", f"kbuild has no flag tables for etcd {etcd.short} "
                             f"(it knows {known})", ETCD_POLICY))
    return found


def check_transitions(current: Mapping[Key, Version], target: Mapping[str, Version],
                      moving: Iterable[Key] | None = None) -> list[PolicyFinding]:
    """Each installed component's move to its target (those in `moving`, default all): no downgrade, no
    major change, no skipped minor. One finding per family and version found, naming components and hosts."""
    groups: dict[tuple[str, str, Version], list[Key]] = {}
    chosen = set(current if moving is None else moving)
    for key, version in current.items():
        want = target.get(key[1])
        if want is None or version == want or key not in chosen:
            continue
        family = BY_NAME[key[1]].release
        rule = UPGRADE_RULES[family]
        if want < version:
            kind = "downgrade"
        elif want.major != version.major and not (rule.major and want.major == version.major + 1):
            kind = "major"
        elif rule.max_minor_step is not None and version.minors_to(want) > rule.max_minor_step:
            kind = "skip"
        else:
            continue
        groups.setdefault((kind, family, version), []).append(key)
    found = []
    for (kind, family, version), keys in sorted(groups.items(), key=lambda item: (item[0][1], item[0][2])):
        want = target[keys[0][1]]
        components = sorted({c for _, c in keys}, key=list(BY_NAME).index)
        where = f"{family} {version} ({', '.join(components)} on {_where(keys)})"
        if kind == "downgrade":
            message = (f"{where} -> {want} is a downgrade: kbuild only upgrades (a downgrade is not a rolling "
                       f"operation either project supports); set cluster.versions.{family} to {version} or newer")
        elif kind == "major":
            message = f"{where} -> {want} changes the major version; kbuild upgrades within {version.major}.x"
        else:
            step = Version(version.major, version.minor + 1, 0).short
            message = (f"{where} -> {want} skips {_skipped(version, want)}: upgrade one minor version at a "
                       f"time, first to the latest {step}.x, then to {want.short}")
        found.append(PolicyFinding(REFUSE, kind, message, UPGRADE_RULES[family].source))
    return found


def _minors(n: int) -> str:
    return f"{n} minor version{'s' if n != 1 else ''}"


def _skipped(old: Version, new: Version) -> str:
    minors = [f"{old.major}.{m}" for m in range(old.minor + 1, new.minor)]
    return minors[0] if len(minors) == 1 else f"{', '.join(minors[:-1])} and {minors[-1]}"


@dataclass(frozen=True)
class Violation:
    """Instances of `rule.component` at `version` out of bounds against `rule.reference` at `ref`."""

    rule: SkewRule
    version: Version
    ref: Version
    hosts: tuple[str, ...]
    ref_hosts: tuple[str, ...]

    @property
    def key(self) -> tuple:
        return (self.rule, self.version.minor_key, self.ref.minor_key)

    def message(self) -> str:
        ahead = self.ref.minors_to(self.version)
        relation = f"{_minors(ahead)} newer" if ahead > 0 else f"{_minors(-ahead)} older"
        return (f"{self.rule.component} {self.version.short} (on {_where((h, '') for h in self.hosts)}) would be "
                f"{relation} than {self.rule.reference} {self.ref.short} (on "
                f"{_where((h, '') for h in self.ref_hosts)}): {self.rule.why}")


def check_skew(state: Mapping[Key, Version]) -> list[Violation]:
    """Every pair the skew rules constrain, in one state of the cluster, grouped by versions."""
    by_component: dict[str, list[tuple[Key, Version]]] = {}
    for key, version in state.items():
        by_component.setdefault(key[1], []).append((key, version))
    pairs: dict[tuple, tuple[set[str], set[str]]] = {}
    for rule in SKEW_RULES:
        for key, version in by_component.get(rule.component, []):
            for ref_key, ref in by_component.get(rule.reference, []):
                if ref_key == key or (rule.same_host and ref_key[0] != key[0]) or ref.major != version.major:
                    continue
                if -rule.older <= ref.minors_to(version) <= rule.newer:
                    continue
                hosts, ref_hosts = pairs.setdefault((rule, version.minor_key, ref.minor_key), (set(), set()))
                hosts.add(key[0])
                ref_hosts.add(ref_key[0])
    return [Violation(rule, Version(*v, 0), Version(*r, 0), tuple(sorted(h)), tuple(sorted(rh)))
            for (rule, v, r), (h, rh) in pairs.items()]


def check_plan(current: Mapping[Key, Version], target: Mapping[str, Version],
               stages: Sequence[tuple[str, Sequence[Key]]]) -> list[PolicyFinding]:
    """The whole upgrade: the target, each move, and the cluster's skew after every stage of the plan.

    `current` holds what is installed (hosts kbuild manages, and kubelets of Nodes it does not, keyed
    "node/NAME"); `stages` is the plan's order, each naming the (host, component) pairs it moves to the
    target. A state the cluster is already in is only a warning (the upgrade may well repair it); a
    state the plan would create is a refusal, reported once, at the first stage that creates it.
    Moves that are refused already (a downgrade, a skipped minor) are not simulated further.
    """
    moving = {key for _, keys in stages for key in keys}
    findings = check_known(target) + check_transitions(current, target, moving)
    if any(f.refused for f in findings):
        return findings
    state = dict(current)
    seen = set()
    for violation in check_skew(state):
        seen.add(violation.key)
        findings.append(PolicyFinding(WARN, "skew-now", f"already outside the skew policy: {violation.message()}",
                                violation.rule.source))
    for name, keys in stages:
        for key in keys:
            state[key] = target[key[1]]
        for violation in check_skew(state):
            if violation.key not in seen:
                seen.add(violation.key)
                findings.append(PolicyFinding(REFUSE, "skew", f"after {name}: {violation.message()}",
                                        violation.rule.source))
    etcd = target["etcd"]
    floor = ETCD_MIN_RECOMMENDED.get(etcd.minor_key)
    if floor is not None and etcd < floor and any(k[1] == "etcd" for k in current):
        findings.append(PolicyFinding(WARN, "etcd-advisory", f"target etcd {etcd} is older than {floor}, the oldest "
                                f"{etcd.short} release etcd recommends for production (known data-inconsistency "
                                "bugs)", ETCD_RECOMMENDATION))
    return findings


def check_etcd_cluster_version(cluster_version: Version | None, target: Version) -> list[PolicyFinding]:
    """etcd negotiates a cluster version (the lowest member's minor); a rolling upgrade to 3.N starts from a
    cluster that already is at 3.N-1 or later, as the 3.4 -> 3.5 guide requires ("the running cluster must
    be 3.4 or greater")."""
    if cluster_version is None or cluster_version.minor_key >= (target.major, target.minor - 1):
        return []
    return [PolicyFinding(REFUSE, "etcd-cluster-version",
                    f"the etcd cluster runs at cluster version {cluster_version.short}; etcd {target.short} needs "
                    f"a cluster at {target.major}.{target.minor - 1} or later: finish the previous etcd upgrade "
                    "first", ETCD_3_5)]
