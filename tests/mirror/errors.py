"""The one error the mirror build raises: what could not be built, and what to do about it."""


class MirrorBuildError(RuntimeError):
    """The mirror cannot be built here (missing tool, a module the proxy refuses, a failed build)."""
