"""Can this host run lab machines? Linux, root and the tools, each missing piece named in one line."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable

from kbuild.lab.errors import LabUnavailable

# tool -> the Debian package that ships it
PACKAGES = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "chroot": "coreutils",
}
RUN_TOOLS = ("systemd-nspawn", "ip", "nsenter", "mount", "umount")  # to boot and stop machines
BUILD_TOOLS = ("debootstrap", "chroot")  # to build the image
INSTALL_HINT = "apt-get install systemd-container debootstrap"


def check_host(
    tools: Iterable[str] = RUN_TOOLS,
    *,
    platform: str = sys.platform,
    euid: int | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> None:
    """Raise LabUnavailable (exit 2) with one line saying what is missing and how to get it."""
    if not platform.startswith("linux"):
        raise LabUnavailable(f"kbuild lab needs Linux (systemd-nspawn machines); this host runs {platform}")
    if euid is None:
        euid = os.geteuid()
    if euid != 0:
        raise LabUnavailable("kbuild lab needs root (it mounts overlays, creates a bridge and boots "
                             "systemd-nspawn machines); run it with sudo")
    missing = [tool for tool in tools if which(tool) is None]
    if missing:
        packages = sorted({PACKAGES.get(tool, tool) for tool in missing} | {"systemd-container", "debootstrap"})
        names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        raise LabUnavailable(f"kbuild lab needs {names}, not found on PATH; install "
                             f"{'them' if len(missing) > 1 else 'it'} with: apt-get install {' '.join(packages)}")
