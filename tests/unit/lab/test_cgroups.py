"""Finding this process's cgroups in every hierarchy, and giving each machine its own."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from kbuild.lab import cgroups
from kbuild.lab.cgroups import Hierarchy, machine_cgroups, parse_hierarchies

HYBRID_CGROUP = """\
9:name=systemd:/
4:memory:/process_api/4b9f
3:cpuset:/
2:cpu,cpuacct:/user.slice
0::/
"""
HYBRID_MOUNTS = """\
40 30 0:40 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
41 30 0:41 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset
42 30 0:42 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
43 30 0:43 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
44 30 0:44 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""


def test_hybrid_hierarchies():
    found = {h.controllers: (str(h.path), h.is_v1, h.is_cpuset) for h in parse_hierarchies(HYBRID_CGROUP,
                                                                                           HYBRID_MOUNTS)}
    assert found == {
        "name=systemd": ("/sys/fs/cgroup/systemd", True, False),
        "memory": ("/sys/fs/cgroup/memory/process_api/4b9f", True, False),
        "cpuset": ("/sys/fs/cgroup/cpuset", True, True),
        "cpu,cpuacct": ("/sys/fs/cgroup/cpu,cpuacct/user.slice", True, False),
        "": ("/sys/fs/cgroup/unified", False, False),
    }


def test_unified_hierarchy_with_a_namespaced_root():
    found = parse_hierarchies("0::/ci/job-7\n", "50 30 0:50 /ci /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert [(h.controllers, str(h.path)) for h in found] == [("", "/sys/fs/cgroup/job-7")]


def test_each_machine_gets_a_cgroup_under_the_lab():
    hierarchies = parse_hierarchies(HYBRID_CGROUP, HYBRID_MOUNTS)
    dirs = {h.controllers: str(d) for h, d in machine_cgroups(hierarchies, "lab", "lab-worker-1")}
    assert dirs["memory"] == "/sys/fs/cgroup/memory/process_api/4b9f/kbuild-lab-lab/lab-worker-1"
    assert dirs[""] == "/sys/fs/cgroup/unified/kbuild-lab-lab/lab-worker-1"


def test_prepare_seeds_cpuset_and_remove_cleans_up(tmp_path):
    cpuset = tmp_path / "cpuset"
    cpuset.mkdir()
    (cpuset / "cpuset.cpus").write_text("0-1\n")
    (cpuset / "cpuset.mems").write_text("0\n")
    hierarchies = [Hierarchy("cpuset", cpuset, PurePosixPath("/"))]
    # a plain directory stands in for cgroupfs, which creates the knob files itself
    group = cpuset / "kbuild-lab-lab"
    group.mkdir()
    for name in ("cpuset.cpus", "cpuset.mems"):
        (group / name).write_text("")
    created = cgroups.prepare("lab", "lab-master-1", hierarchies)
    assert created == [group / "lab-master-1"]
    assert (group / "cpuset.cpus").read_text() == "0-1"
    assert (group / "cgroup.clone_children").read_text() == "1"
    # on a real cgroupfs the knob files vanish with the directory; here remove what rmdir cannot
    for directory in (group / "lab-master-1", group):
        for knob in directory.iterdir():
            if knob.is_file():
                knob.unlink()
    (group / "lab-master-1" / "payload").mkdir()
    assert cgroups.remove(created) == []
    assert not group.exists()
    assert cgroups.remove([Path(tmp_path / "never-made")]) == []
