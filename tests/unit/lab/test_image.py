"""The image: what it contains, its cache key, and that a build becomes visible only when complete."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kbuild.lab import image
from kbuild.lab.errors import LabError
from kbuild.lab.image import ImageSpec, debootstrap_command, ensure_image, image_files, is_built


def test_packages_cover_what_lab_hosts_run():
    for package in ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2",
                    "sudo", "ca-certificates", "kmod", "procps", "iptables", "nftables", "curl"):
        assert package in image.PACKAGES
    assert "python3-minimal" not in image.PACKAGES
    assert "python3-yaml" not in image.PACKAGES  # only the stand-ins needed it: a plain server has no PyYAML


def test_key_depends_on_content_not_on_the_mirror():
    base = ImageSpec(arch="amd64")
    assert base.key == ImageSpec(arch="amd64", mirror="http://mirror.example/debian").key
    assert base.key != ImageSpec(arch="amd64", packages=(*image.PACKAGES, "less")).key
    assert base.key != ImageSpec(arch="amd64", suite="trixie").key
    assert base.key == ImageSpec(arch="amd64", packages=tuple(reversed(image.PACKAGES))).key  # order is irrelevant
    assert base.rootfs(Path("/c")) == Path(f"/c/images/bookworm-amd64-{base.key}/rootfs")


def test_debootstrap_command():
    spec = ImageSpec(arch="amd64", packages=("systemd", "sudo"), mirror="http://deb.debian.org/debian")
    assert debootstrap_command(spec, Path("/tmp/x/rootfs")) == [
        "debootstrap", "--variant=minbase", "--arch=amd64", "--components=main", "--include=systemd,sudo",
        "bookworm", "/tmp/x/rootfs", "http://deb.debian.org/debian"]


def test_mirror_comes_from_option_then_environment(monkeypatch):
    monkeypatch.delenv(image.MIRROR_ENV, raising=False)
    assert image.mirror_from_env() == "http://deb.debian.org/debian"
    monkeypatch.setenv(image.MIRROR_ENV, "http://env.example/debian")
    assert image.mirror_from_env() == "http://env.example/debian"
    assert image.mirror_from_env("http://opt.example/debian") == "http://opt.example/debian"


def test_customisation_files():
    files = image_files()
    assert files["etc/sudoers.d/kbuild"] == ("kbuild ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)
    assert files["etc/machine-id"][0] == ""  # each machine writes its own
    assert "nameserver" not in files["etc/resolv.conf"][0]
    sshd = files["etc/ssh/sshd_config.d/10-kbuild-lab.conf"][0]
    assert "HostKey /etc/ssh/ssh_host_ed25519_key" in sshd and "PasswordAuthentication no" in sshd
    assert "remount,bind,rw" in files["usr/local/sbin/kbuild-lab-cgroups"][0]
    assert "useradd" in image.CHROOT_SCRIPT and "kbuild-lab-cgroups.service" in image.CHROOT_SCRIPT


class FakeDebootstrap:
    """Stands in for debootstrap: makes a tiny tree, or fails like a mirror that cannot be reached."""

    def __init__(self, code: int = 0) -> None:
        self.code = code
        self.targets: list[Path] = []

    def __call__(self, argv, **kwargs):
        target = Path(argv[-2])
        self.targets.append(target)
        (target / "etc").mkdir(parents=True)
        kwargs["stdout"].write("I: Retrieving InRelease\n")
        if self.code:
            kwargs["stdout"].write("E: Failed getting release file http://deb.example/dists/bookworm/Release\n")
        return subprocess.CompletedProcess(argv, self.code)


@pytest.fixture
def fake_build(monkeypatch):
    def install(code: int = 0) -> FakeDebootstrap:
        fake = FakeDebootstrap(code)
        monkeypatch.setattr(image.subprocess, "run", fake)
        monkeypatch.setattr(image, "customise", lambda rootfs: (rootfs / "etc/customised").write_text("yes"))
        return fake
    return install


def test_build_appears_only_when_complete(tmp_path, fake_build):
    fake = fake_build()
    spec = ImageSpec(arch="amd64")
    rootfs = ensure_image(spec, tmp_path, say=lambda message: None)
    assert rootfs == spec.rootfs(tmp_path)
    assert (rootfs / "etc/customised").read_text() == "yes"
    assert ".build-" in str(fake.targets[0])  # debootstrap wrote into a temporary directory
    assert is_built(spec, tmp_path)
    assert (spec.dir(tmp_path) / "build.log").exists()
    assert not list((tmp_path / "images").glob(".build-*"))
    # cached: no second build
    ensure_image(spec, tmp_path, say=lambda message: None)
    assert len(fake.targets) == 1
    # an explicit rebuild replaces it, but not while a lab uses it
    with pytest.raises(LabError, match="in use by lab kbtest"):
        ensure_image(spec, tmp_path, rebuild=True, in_use=["kbtest"], say=lambda message: None)
    ensure_image(spec, tmp_path, rebuild=True, say=lambda message: None)
    assert len(fake.targets) == 2 and is_built(spec, tmp_path)


def test_failed_build_leaves_no_image(tmp_path, fake_build):
    fake_build(code=1)
    spec = ImageSpec(arch="amd64")
    with pytest.raises(LabError, match=r"debootstrap failed \(exit 1\): Failed getting release file .*full log"):
        ensure_image(spec, tmp_path, say=lambda message: None)
    assert not spec.dir(tmp_path).exists()
    assert not list((tmp_path / "images").glob(".build-*"))
    assert (tmp_path / "images" / f"{spec.id}.build.log").exists()


def test_stale_half_builds_are_removed_and_old_images_pruned(tmp_path, fake_build):
    fake_build()
    stale = tmp_path / "images" / ".build-bookworm-amd64-0123456789ab-999" / "rootfs"
    stale.mkdir(parents=True)
    old = tmp_path / "images" / "bookworm-amd64-0123456789ab"
    (old / "rootfs").mkdir(parents=True)
    used = tmp_path / "images" / "bookworm-amd64-ba9876543210"
    (used / "rootfs").mkdir(parents=True)
    spec = ImageSpec(arch="amd64")
    ensure_image(spec, tmp_path, say=lambda message: None)
    assert not stale.parent.exists()
    assert image.prune(tmp_path, spec.dir(tmp_path), in_use={used / "rootfs"}) == [old]
    assert used.exists() and spec.dir(tmp_path).exists()
