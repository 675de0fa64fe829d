"""What the test mirror holds: kbuild's default releases plus the older ones the upgrade tests start from.

Every version here is one the Go module proxy serves; kbuild's defaults come from its inventory
model, so moving a default moves the mirror with it. Each build says how upstream stamps its
version into the binary, so `--version` and the Node's kubeletVersion read what users see.
"""

from __future__ import annotations

from kbuild.inventory.model import Versions
from tests.mirror.gobuild import GoBuild, Stamp

DEFAULTS = Versions()
# The releases the upgrade tests start from: the previous Kubernetes minor, etcd's previous minor.
PREVIOUS_KUBERNETES = "1.36.3"
PREVIOUS_ETCD = "3.5.35"
KUBERNETES_VERSIONS = (DEFAULTS.kubernetes, PREVIOUS_KUBERNETES)
ETCD_VERSIONS = (DEFAULTS.etcd, PREVIOUS_ETCD)
COREDNS_VERSION = "1.14.6"  # what kubeadm 1.37 deploys (cmd/kubeadm/app/constants)
# The Debian source package the test image's busybox is built from (tests.mirror.busybox), as bookworm's
# Sources index lists it; the image is tagged with its upstream version (kbuild.test/busybox:1.35.0).
BUSYBOX_SUITE = "bookworm"
BUSYBOX_SOURCE_VERSION = "1:1.35.0-4+deb12u1"

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
                       "kubectl")
# The official containerd tarball's bin/ (containerd-stress is a load tool; kbuild installs the rest).
CONTAINERD_COMMANDS = ("containerd", "containerd-shim-runc-v2", "containerd-stress", "ctr")
# The official cni-plugins tarball: every Linux plugin of plugins/{main,ipam,meta}.
CNI_PLUGINS = {
    "main": ("bridge", "dummy", "host-device", "ipvlan", "loopback", "macvlan", "ptp", "tap", "vlan"),
    "ipam": ("dhcp", "host-local", "static"),
    "meta": ("bandwidth", "firewall", "portmap", "sbr", "tuning", "vrf"),
}


def _kubernetes_stamp(s: Stamp) -> dict[str, str]:
    # What hack/lib/version.sh sets; a build from the module archive has no git tree, which
    # Kubernetes itself calls tree state "archive".
    values = {"gitVersion": s.version, "gitMajor": s.major, "gitMinor": s.minor, "gitTreeState": "archive",
              "buildDate": s.time}
    return {f"{package}.{name}": value for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
            for name, value in values.items()}


def kubernetes(version: str) -> GoBuild:
    return GoBuild("kubernetes", f"v{version}", ("k8s.io/kubernetes",),
                   {name: f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS}, stamp=_kubernetes_stamp)


def etcd(version: str) -> GoBuild:
    # The `etcd` command is the server module's main package; its version is a constant in api/version.
    return GoBuild("etcd", f"v{version}", ("go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3",
                                            "go.etcd.io/etcd/etcdutl/v3"),
                   {"etcd": "go.etcd.io/etcd/server/v3", "etcdctl": "go.etcd.io/etcd/etcdctl/v3",
                    "etcdutl": "go.etcd.io/etcd/etcdutl/v3"})


def containerd(version: str) -> GoBuild:
    base = "github.com/containerd/containerd/v2"
    return GoBuild("containerd", f"v{version}", (base,), {n: f"{base}/cmd/{n}" for n in CONTAINERD_COMMANDS},
                   stamp=lambda s: {f"{base}/version.Version": s.version, f"{base}/version.Package": base})


def runc(version: str) -> GoBuild:
    # As `make static` does: seccomp through Debian's libseccomp, linked in, no libc at run time.
    return GoBuild("runc", f"v{version}", ("github.com/opencontainers/runc",), {"runc": "github.com/opencontainers/runc"},
                   cgo=True, tags=("seccomp", "netgo", "osusergo"), static=True)


def cni_plugins(version: str) -> GoBuild:
    base = "github.com/containernetworking/plugins"
    return GoBuild("cni-plugins", f"v{version}", (base,),
                   {name: f"{base}/plugins/{kind}/{name}" for kind, names in CNI_PLUGINS.items() for name in names},
                   stamp=lambda s: {f"{base}/pkg/utils/buildversion.BuildVersion": s.version})


def crictl(version: str) -> GoBuild:
    return GoBuild("crictl", f"v{version}", ("sigs.k8s.io/cri-tools",), {"crictl": "sigs.k8s.io/cri-tools/cmd/crictl"},
                   stamp=lambda s: {"sigs.k8s.io/cri-tools/pkg/version.Version": s.bare})


def coredns(version: str) -> GoBuild:
    return GoBuild("coredns", f"v{version}", ("github.com/coredns/coredns",), {"coredns": "github.com/coredns/coredns"})


def all_builds() -> list[GoBuild]:
    """Every build the mirror needs, the slowest first (so the others fill in beside it)."""
    versions = DEFAULTS
    if versions.crictl is None:
        raise AssertionError("kbuild's default versions name no crictl")
    return [
        *(kubernetes(v) for v in KUBERNETES_VERSIONS),
        *(etcd(v) for v in ETCD_VERSIONS),
        containerd(versions.containerd),
        coredns(COREDNS_VERSION),
        crictl(versions.crictl),
        cni_plugins(versions.cni_plugins),
        runc(versions.runc),
    ]
