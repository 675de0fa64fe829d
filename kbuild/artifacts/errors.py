"""Errors about artifacts: downloads, checksums, the cache and bundles, each saying what to do next."""

from __future__ import annotations

from kbuild.errors import ExitCode, KbuildError


class ArtifactError(KbuildError):
    """An artifact could not be obtained or trusted; nothing was installed from it."""


class DownloadError(ArtifactError):
    """A download failed (network, HTTP status, local mirror file unreadable) after the allowed retries."""

    def __init__(self, location: str, reason: str, *, status: int | None = None, hint: str | None = None) -> None:
        status_text = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"cannot download {location}{status_text}: {reason}", hint=hint)
        self.location = location
        self.status = status


class NotFound(DownloadError):
    """The mirror or release site has no such file (HTTP 404/410, or a missing file in a mirror directory)."""


class ChecksumError(ArtifactError):
    """A file's sha256 is missing, disagrees with the expected one, or two sources of truth disagree."""


class BundleError(ArtifactError):
    """A bundle file is unreadable, incomplete or does not match its manifest."""

    exit_code = ExitCode.BAD_INPUT


class ArtifactConfigError(ArtifactError):
    """The inventory's artifacts section cannot be used as written (bad pin, unusable mirror for pull mode)."""

    exit_code = ExitCode.BAD_INPUT
