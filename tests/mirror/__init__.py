"""The test artifact mirror: real etcd, containerd, runc, CNI, kubectl and kube stand-ins, in the official layout."""

from tests.mirror.builder import Mirror, MirrorBuildError, cache_root, content_key, ensure_mirror
from tests.mirror.server import MirrorServer

__all__ = ["Mirror", "MirrorBuildError", "MirrorServer", "cache_root", "content_key", "ensure_mirror"]
