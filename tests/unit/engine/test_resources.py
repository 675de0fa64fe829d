"""Resources decide from facts what differs; only the difference is applied."""

import pytest

from kbuild.engine.facts import ArtifactFact, ModuleFact, PathFact, ServiceFact, SysctlFact
from kbuild.engine.resources import Absent, Artifact, Directory, File, KernelModule, ResourceError, Service, Sysctl

SHA_HELLO = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


def test_file_in_desired_state_has_no_changes():
    fact = PathFact("file", 0o644, "root", "root", 6, SHA_HELLO)
    assert File("/etc/x", "hello\n").changes(fact) == []


def test_file_changes_name_what_differs():
    fact = PathFact("file", 0o600, "nobody", "root", 6, "0" * 64)
    assert File("/etc/x", "hello\n").changes(fact) == ["content", "mode 0600 -> 0644", "owner nobody:root -> root:root"]
    assert File("/etc/x", "hello\n").changes(PathFact("absent")) == ["create"]


def test_file_refuses_to_replace_a_directory():
    resource = File("/etc/x", "hello\n")
    assert resource.changes(PathFact("directory", 0o755, "root", "root", 0)) == ["replace directory"]
    with pytest.raises(ResourceError, match="is a directory"):
        resource.action(PathFact("directory", 0o755, "root", "root", 0))


def test_unit_files_need_daemon_reload():
    assert File("/etc/systemd/system/etcd.service", "").changes_units
    assert not File("/etc/etcd.conf", "").changes_units


def test_directory():
    assert Directory("/d", mode=0o700).changes(PathFact("directory", 0o755, "root", "root", 0)) == ["mode 0755 -> 0700"]


def test_artifact_by_sha():
    art = Artifact("/usr/local/bin/etcd", "a" * 64, url="http://m/etcd")
    same = ArtifactFact(PathFact("file", 0o755, "root", "root", 1, "a" * 64), "a" * 64, "a" * 64)
    assert art.changes(same) == []
    other = ArtifactFact(PathFact("file", 0o755, "root", "root", 1, "b" * 64), None, None)
    assert art.changes(other) == ["sha256 bbbbbbbbbbbb -> aaaaaaaaaaaa"]


def test_artifact_from_archive_uses_provenance():
    art = Artifact("/usr/local/bin/etcd", None, url="http://m/etcd.tgz", archive_sha256="f" * 64, member="etcd-v3/etcd")
    installed = ArtifactFact(PathFact("file", 0o755, "root", "root", 1, "c" * 64), "c" * 64, "f" * 64 + ":etcd-v3/etcd")
    assert art.changes(installed) == []
    tampered = ArtifactFact(PathFact("file", 0o755, "root", "root", 1, "d" * 64), "c" * 64, "f" * 64 + ":etcd-v3/etcd")
    assert art.changes(tampered) == ["modified on the host"]
    upgraded = ArtifactFact(PathFact("file", 0o755, "root", "root", 1, "c" * 64), "c" * 64, "e" * 64 + ":etcd-v3/etcd")
    assert art.changes(upgraded) == ["different release"]


def test_artifact_needs_a_source():
    with pytest.raises(ValueError):
        Artifact("/x", "a" * 64)
    with pytest.raises(ValueError):
        Artifact("/x", None, url="http://m/x")


def test_service_states():
    svc = Service("etcd")
    assert svc.changes(ServiceFact("enabled", "active", "loaded")) == []
    assert svc.changes(ServiceFact("disabled", "inactive", "loaded")) == ["enable", "start"]
    assert svc.will_start(ServiceFact("enabled", "failed", "loaded"))
    stopped = Service("etcd", enabled=False, running=False)
    assert stopped.changes(ServiceFact("enabled", "active", "loaded")) == ["disable", "stop"]


def test_sysctl_and_module():
    s = Sysctl("net.ipv4.ip_forward", "1")
    assert s.changes(SysctlFact("1", "1")) == []
    assert s.changes(SysctlFact("0", None)) == ["0 -> 1", "persist"]
    assert s.changes(SysctlFact(None, None))[0] == "kernel has no such parameter"
    m = KernelModule("br_netfilter", probe="test -d /proc/sys/net/bridge")
    assert m.changes(ModuleFact(True, True)) == [] and m.changes(ModuleFact(False, False)) == ["load", "persist"]


def test_absent_removes_a_file_and_is_done_when_it_is_gone():
    retired = Absent("/etc/cni/net.d/10-bridge.conf")
    assert retired.changes(PathFact("absent")) == []
    assert retired.changes(PathFact("file", 0o644, "root", "root", 6, SHA_HELLO)) == ["remove file"]
    assert retired.action(PathFact("file", 0o644, "root", "root", 6, SHA_HELLO)).script == \
        "rm -f /etc/cni/net.d/10-bridge.conf"
    with pytest.raises(ResourceError, match="is a directory"):
        retired.action(PathFact("directory", 0o755, "root", "root", 0))
