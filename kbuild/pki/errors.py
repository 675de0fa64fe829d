"""The PKI's error: a key, certificate or config on disk that kbuild cannot use as it is."""

from __future__ import annotations

from kbuild.errors import UsageError


class PKIError(UsageError):
    """A PKI file is missing, unreadable, corrupt or unusable; the message names the file(s).

    It is a UsageError (exit 2, bad input): what is wrong is a local file, and nothing on disk
    has been changed when it is raised.
    """
