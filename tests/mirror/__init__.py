"""The test artifact mirror: every cluster binary and image built from its published source, in the official layout."""

from tests.mirror.builder import Mirror, cache_root, ensure_mirror
from tests.mirror.errors import MirrorBuildError
from tests.mirror.server import MirrorServer

__all__ = ["Mirror", "MirrorBuildError", "MirrorServer", "cache_root", "ensure_mirror"]
