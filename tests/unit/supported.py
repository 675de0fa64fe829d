"""The versions unit tests use, derived from kbuild's own data and the test mirror's, never spelled by hand.

kbuild's defaults (Versions()) are what an inventory without `cluster.versions` gets; the test
mirror holds those plus the previous Kubernetes and etcd minors the upgrade tests start from; a
supported minor the mirror does not hold is written as its .0 patch (any X.Y.Z of a supported
minor loads). `beyond` and `before` step outside the supported range, for refusals.
"""

from __future__ import annotations

from kbuild.inventory.model import Versions
from kbuild.releases import CONTAINERD_MAJORS, ETCD, KUBERNETES, RUNC_OLDEST, Minor, minor_of, show
from tests.mirror import releases as mirror

DEFAULTS = Versions()
KUBE = DEFAULTS.kubernetes
KUBE_PREVIOUS = mirror.PREVIOUS_KUBERNETES
ETCD_VERSION = DEFAULTS.etcd
ETCD_PREVIOUS = mirror.PREVIOUS_ETCD
CONTAINERD = DEFAULTS.containerd
PAUSE = KUBERNETES[minor_of(KUBE)].pause_image  # the sandbox image of the default Kubernetes release
PAUSE_TAG = PAUSE.rsplit(":", 1)[1]

_MIRROR = (*mirror.KUBERNETES_VERSIONS, *mirror.ETCD_VERSIONS)


def release_of(minor: Minor) -> str:
    """A release of `minor`: the mirror's when it holds one, else the minor's first patch."""
    return next((v for v in _MIRROR if minor_of(v) == minor), f"{show(minor)}.0")


KUBERNETES_RELEASES = tuple(release_of(m) for m in KUBERNETES)  # one per supported Kubernetes minor, oldest first
ETCD_RELEASES = tuple(release_of(m) for m in ETCD)  # one per supported etcd minor, oldest first


# The newest releases kbuild refuses outright: a containerd of the major before the supported ones, and the
# runc just before the one that fixed CVE-2024-21626.
CONTAINERD_UNSUPPORTED = f"{min(CONTAINERD_MAJORS) - 1}.7.0"
RUNC_FIXED = ".".join(map(str, RUNC_OLDEST))
RUNC_VULNERABLE = f"{RUNC_OLDEST[0]}.{RUNC_OLDEST[1]}.{RUNC_OLDEST[2] - 1}"


def step(version: str, minors: int) -> str:
    """`version` moved by `minors` minor versions (patch 0): step("1.37.2", 1) == "1.38.0"."""
    major, minor = minor_of(version)
    return f"{major}.{minor + minors}.0"


def beyond(minors: tuple[Minor, ...]) -> str:
    """The first release newer than every supported minor."""
    return step(f"{show(max(minors))}.0", 1)


def before(minors: tuple[Minor, ...]) -> str:
    """The newest minor older than every supported one, as X.Y.0."""
    return step(f"{show(min(minors))}.0", -1)


def short(version: str) -> str:
    """'1.37.2' -> '1.37'."""
    return show(minor_of(version))
