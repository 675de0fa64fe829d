"""Fact parsers: recorded host output in, parsed fact out."""

from kbuild.engine.facts import ArtifactFact, ModuleFact, PathFact, ServiceFact, SysctlFact, GuardFact


def test_path_fact_file():
    fact = PathFact.parse("type file\nstat 644 root root 12\nsha256 " + "a" * 64 + "\ncontent aGVsbG8K\n")
    assert (fact.type, fact.mode, fact.owner, fact.group, fact.size) == ("file", 0o644, "root", "root", 12)
    assert fact.sha256 == "a" * 64 and fact.content == b"hello\n"


def test_path_fact_directory_and_absent():
    assert PathFact.parse("type directory\nstat 700 etcd etcd 4096").mode == 0o700
    absent = PathFact.parse("type absent")
    assert absent.type == "absent" and absent.mode is None and absent.sha256 is None


def test_path_fact_ignores_noise():
    fact = PathFact.parse("warning: something\ntype file\nstat 600 root root 1\nsha256 " + "b" * 64)
    assert fact.type == "file" and fact.mode == 0o600


def test_artifact_fact_with_stamp():
    fact = ArtifactFact.parse("type file\nstat 755 root root 9\nsha256 abc\nstamped abc\nsource deadbeef:etcd/etcd")
    assert fact.path.sha256 == "abc" and fact.stamped_sha256 == "abc" and fact.source == "deadbeef:etcd/etcd"


def test_service_fact():
    running = ServiceFact.parse("enabled enabled\nactive active\nunit loaded")
    assert running.running and running.is_enabled
    missing = ServiceFact.parse("enabled \nactive inactive\nunit not-found")
    assert not missing.running and not missing.is_enabled and missing.load_state == "not-found"
    failed = ServiceFact.parse("enabled enabled\nactive failed\nunit loaded")
    assert not failed.running


def test_sysctl_fact():
    assert SysctlFact.parse("value 1\npersisted 1") == SysctlFact("1", "1")
    assert SysctlFact.parse("value -").value is None


def test_module_and_test_facts():
    assert ModuleFact.parse("loaded yes\npersisted no") == ModuleFact(True, False)
    assert GuardFact.parse("ok yes").ok and not GuardFact.parse("ok no").ok
