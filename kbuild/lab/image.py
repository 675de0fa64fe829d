"""The lab's Debian root filesystem: debootstrap'ed once, customised for lab machines, cached by content.

An image lives in <cache>/images/<suite>-<arch>-<key>/rootfs, where the key hashes the suite,
the package list and IMAGE_REVISION. It is built in a temporary directory beside it and renamed
into place only when complete, so an interrupted build never leaves a half image that a lab
would boot.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kbuild.lab.errors import LabError
from kbuild.lab.mounts import remove_tree
from kbuild.lab.proc import run

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "KBUILD_LAB_MIRROR"
LAB_USER = "kbuild"
PACKAGES = (
    "systemd", "systemd-sysv", "dbus",  # a real init, so services behave as on a VM
    "openssh-server", "openssh-sftp-server",  # kbuild's only way in; SFTP for uploads
    "python3",  # what Ansible needs on a host (the benchmarks drive it); a plain Debian server has it
    "sudo", "ca-certificates", "curl", "netbase",
    "iproute2", "iptables", "nftables", "kmod", "procps",  # what a Kubernetes node's setup touches
    "iputils-ping",  # reachability checks between machines, by tests and by people
)
# Bump when the customisation below changes, so existing caches are rebuilt rather than reused.
IMAGE_REVISION = 3

SSHD_CONFIG = """\
# kbuild lab: each machine gets its own host keys from `kbuild lab up` (ed25519 and ECDSA).
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# Tests open many sessions at once; do not let sshd drop them as a flood.
MaxStartups 100:30:200
MaxSessions 100
"""

CGROUPS_SCRIPT = """\
#!/bin/sh
# kbuild lab: systemd-nspawn mounts the cgroup v1 controllers read-only, but containerd and runc
# must create cgroups in them. The machine sees only its own subtree (cgroup namespace), so
# making these mounts writable lets it manage its own cgroups without touching the host's.
awk '$3 == "cgroup" && $2 ~ "^/sys/fs/cgroup/" && $4 ~ /(^|,)ro(,|$)/ { print $2 }' /proc/self/mounts |
while read -r dir; do
    mount -o remount,bind,rw "$dir"
done
exit 0
"""

CGROUPS_UNIT = """\
[Unit]
Description=Writable cgroup v1 controllers for containerd and runc (kbuild lab)
DefaultDependencies=no
ConditionVirtualization=container
Before=sysinit.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/kbuild-lab-cgroups

[Install]
WantedBy=sysinit.target
"""

JOURNALD_CONFIG = """\
[Journal]
# kbuild lab: keep logs in memory; a lab machine lives for one test session.
Storage=volatile
RuntimeMaxUse=64M
"""

# Timers that would reach for the network or churn the disk in the middle of a test, and the
# console getty (nobody types on a lab machine's console).
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
                "fstrim.timer", "console-getty.service")
ENABLED_UNITS = ("systemd-networkd.service", "ssh.service", "kbuild-lab-cgroups.service")

CHROOT_SCRIPT = f"""\
set -e
useradd --create-home --shell /bin/bash --user-group --comment "kbuild lab" {LAB_USER}
usermod --password '*' {LAB_USER}   # no password, but not locked: key logins only
systemctl enable {' '.join(ENABLED_UNITS)}
systemctl mask {' '.join(MASKED_UNITS)}
"""


@dataclass(frozen=True)
class ImageSpec:
    """What goes into an image; `key` changes when any of it does (the mirror does not matter)."""

    suite: str = SUITE
    packages: tuple[str, ...] = PACKAGES
    mirror: str = DEFAULT_MIRROR
    arch: str = field(default_factory=lambda: _debian_arch(platform.machine()))

    @property
    def key(self) -> str:
        blob = json.dumps({"suite": self.suite, "packages": sorted(self.packages), "arch": self.arch,
                           "revision": IMAGE_REVISION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def id(self) -> str:
        return f"{self.suite}-{self.arch}-{self.key}"

    def dir(self, cache: Path) -> Path:
        return cache / "images" / self.id

    def rootfs(self, cache: Path) -> Path:
        return self.dir(cache) / "rootfs"


def _debian_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf"}.get(machine, machine)


def mirror_from_env(value: str | None = None) -> str:
    return value or os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR


def debootstrap_command(spec: ImageSpec, target: Path) -> list[str]:
    return ["debootstrap", "--variant=minbase", f"--arch={spec.arch}", "--components=main",
            f"--include={','.join(spec.packages)}", spec.suite, str(target), spec.mirror]


def image_files() -> dict[str, tuple[str, int]]:
    """Files the customisation writes into the rootfs: path -> (content, mode)."""
    return {
        "etc/ssh/sshd_config.d/10-kbuild-lab.conf": (SSHD_CONFIG, 0o644),
        f"etc/sudoers.d/{LAB_USER}": (f"{LAB_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440),
        "usr/local/sbin/kbuild-lab-cgroups": (CGROUPS_SCRIPT, 0o755),
        "etc/systemd/system/kbuild-lab-cgroups.service": (CGROUPS_UNIT, 0o644),
        "etc/systemd/journald.conf.d/10-kbuild-lab.conf": (JOURNALD_CONFIG, 0o644),
        # Per machine, `lab up` writes the real ones; the image must not carry any to share.
        "etc/machine-id": ("", 0o444),
        "etc/hostname": ("localhost\n", 0o644),
        # No DNS server is reachable from the lab network. With none listed, glibc fails a lookup
        # at once instead of waiting 10 s for the host's nameserver (nspawn runs --resolv-conf=off).
        "etc/resolv.conf": ("# kbuild lab: no DNS here; names of lab machines are in /etc/hosts\n", 0o644),
    }


def is_built(spec: ImageSpec, cache: Path) -> bool:
    return (spec.dir(cache) / "image.json").is_file() and spec.rootfs(cache).is_dir()


def ensure_image(spec: ImageSpec, cache: Path, *, rebuild: bool = False, in_use: list[str] | None = None,
                 say: Callable[[str], None] = print) -> Path:
    """Return the image's rootfs, building it first if it is missing (or `rebuild`)."""
    images = cache / "images"
    images.mkdir(parents=True, exist_ok=True)
    with _locked(images / ".lock"):
        final = spec.dir(cache)
        if is_built(spec, cache) and not rebuild:
            return spec.rootfs(cache)
        if rebuild and in_use:
            raise LabError(f"image {spec.id} is in use by lab {', '.join(in_use)}; "
                           "run `kbuild lab down` for it before rebuilding")
        for stale in images.glob(".build-*"):
            remove_tree(stale)  # left by an interrupted build
        _build(spec, images, final, say)
        return spec.rootfs(cache)


def _build(spec: ImageSpec, images: Path, final: Path, say: Callable[[str], None]) -> None:
    tmp = images / f".build-{spec.id}-{os.getpid()}"
    log = images / f"{spec.id}.build.log"
    rootfs = tmp / "rootfs"
    say(f"building lab image {spec.id} with debootstrap from {spec.mirror} (about a minute; log: {log})")
    started = time.monotonic()
    try:
        rootfs.mkdir(parents=True)
        with log.open("w") as out:
            out.write(f"$ {' '.join(debootstrap_command(spec, rootfs))}\n")
            out.flush()
            code = subprocess.run(debootstrap_command(spec, rootfs), stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=3600, check=False).returncode
        if code != 0:
            raise LabError(f"debootstrap failed (exit {code}){_last_error(log)}; full log: {log}")
        customise(rootfs)
        (tmp / "image.json").write_text(json.dumps({
            "id": spec.id, "suite": spec.suite, "arch": spec.arch, "packages": list(spec.packages),
            "mirror": spec.mirror, "revision": IMAGE_REVISION, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime()),
        }, indent=2) + "\n")
        shutil.move(str(log), tmp / "build.log")
        if final.exists():
            old = images / f".build-old-{spec.id}-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            remove_tree(old)
        else:
            tmp.rename(final)
    except BaseException:
        remove_tree(tmp)
        raise
    say(f"lab image {spec.id} built in {time.monotonic() - started:.0f} s: {final / 'rootfs'}")


def customise(rootfs: Path) -> None:
    """Turn a debootstrap'ed tree into a lab image: the kbuild user with sudo, sshd settings, units."""
    for relative, (content, mode) in image_files().items():
        path = rootfs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()  # write the file itself, never through a link into the build host
        path.write_text(content)
        os.chmod(path, mode)
    run(["chroot", str(rootfs), "/bin/sh", "-c", CHROOT_SCRIPT], timeout=300)
    # Host keys made by openssh-server's postinst would be shared by every machine.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def prune(cache: Path, keep: Path, in_use: set[Path]) -> list[Path]:
    """Delete cached images other than `keep` that no lab uses (left by older kbuild versions)."""
    removed: list[Path] = []
    images = cache / "images"
    with _locked(images / ".lock"):
        for image in sorted(images.iterdir()):
            if image.is_dir() and not image.name.startswith(".") and image != keep \
                    and image / "rootfs" not in in_use:
                remove_tree(image)
                removed.append(image)
    return removed


def _last_error(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("E:")]
    except OSError:
        return ""
    return f": {lines[-1][2:].strip()}" if lines else ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
