"""Ctrl-C during a rolling upgrade: finish the host (or worker batch) in progress, then stop cleanly."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Self

from kbuild.errors import ExitCode, KbuildError


class UpgradeStopped(KbuildError):
    """The upgrade stopped on request between two hosts; running the same command again resumes it.

    Exit code 130, the shell's code for "ended by Ctrl-C", so scripts see an interruption, not a failure
    (1) or bad input (2); unlike an abrupt interrupt, every host is whole: upgraded and healthy, or untouched.
    """

    exit_code = ExitCode.INTERRUPTED


class StopRequest:
    """While active, SIGINT only sets a flag the rolling loop checks between hosts.

    The handler writes straight to stderr with os.write: it runs in the main thread between two bytecodes,
    possibly while that thread holds the reporter's lock, so it must not emit events itself.
    """

    def __init__(self, *, where: str = "the current host") -> None:
        self.requested = False
        self.where = where
        self._previous: object = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested
        self.requested = True
        text = (f"\nstop requested: kbuild finishes {self.where} and then stops (the upgrade resumes when run "
                "again)\n" if first else
                f"\nstill finishing {self.where}; kbuild never leaves a host half-upgraded\n")
        try:
            os.write(2, text.encode())
        except OSError:
            pass

    def __enter__(self) -> Self:
        # Signal handlers can only be set from the main thread (tests may drive plays from others).
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False
