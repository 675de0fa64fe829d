"""Reading /proc/self/mountinfo and the overlay mount command."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.lab.errors import LabError
from kbuild.lab.mounts import mounts_under, overlay_command, parse_mountinfo

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /var/lib/kbuild/lab/lab/machines/lab-master-1/rootfs rw,relatime - overlay overlay rw,lowerdir=/x
31 30 0:26 / /var/lib/kbuild/lab/lab/machines/lab-master-1/rootfs/proc rw - proc proc rw
32 22 0:27 / /var/lib/kbuild/lab/lab2/machines/m/rootfs rw - overlay overlay rw
33 22 0:28 / /mnt/with\\040space rw - tmpfs tmpfs rw
34 22 0:29 /payload /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
"""


def test_parse_mountinfo_unescapes_and_keeps_root_and_options():
    mounts = parse_mountinfo(MOUNTINFO)
    assert mounts[4].target == Path("/mnt/with space")
    assert (mounts[5].fstype, mounts[5].root, mounts[5].options) == ("cgroup", "/payload", "rw,name=systemd")


def test_mounts_under_a_lab_deepest_first_and_not_its_neighbours():
    found = [str(m.target) for m in mounts_under(Path("/var/lib/kbuild/lab/lab"), MOUNTINFO)]
    assert found == ["/var/lib/kbuild/lab/lab/machines/lab-master-1/rootfs/proc",
                     "/var/lib/kbuild/lab/lab/machines/lab-master-1/rootfs"]
    assert mounts_under(Path("/var/lib/kbuild/lab/la"), MOUNTINFO) == []


def test_overlay_command():
    assert overlay_command(Path("/img/rootfs"), Path("/m/upper"), Path("/m/work"), Path("/m/rootfs")) == [
        "mount", "-t", "overlay", "overlay", "-o", "lowerdir=/img/rootfs,upperdir=/m/upper,workdir=/m/work",
        "/m/rootfs"]
    with pytest.raises(LabError, match="cannot contain"):
        overlay_command(Path("/img,x"), Path("/u"), Path("/w"), Path("/m"))
