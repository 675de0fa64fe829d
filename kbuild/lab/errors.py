"""The lab's errors: the host cannot run a lab (bad input, exit 2) or a lab step failed (exit 1)."""

from __future__ import annotations

from kbuild.errors import KbuildError, UsageError


class LabUnavailable(UsageError):
    """This host cannot run lab machines: not Linux, not root, or a required tool is missing."""


class LabNotFound(UsageError):
    """No lab, or no machine, by that name."""


class LabError(KbuildError):
    """A lab step failed: a command, a machine that did not boot, something left behind."""
