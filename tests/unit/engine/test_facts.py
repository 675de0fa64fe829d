"""Facts: recorded host output in, parsed facts out; and the generated script run by a real shell.

The script is also run with every program it may start wrapped by a logging shim, so a change that
brings back a process per file (or per service, sysctl, module) fails here, not on a 200-host fleet.
"""

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from kbuild.engine.facts import (ArtifactFact, FactError, GuardFact, GuardQuery, ModuleFact, ModuleQuery, PathFact,
                                 PathQuery, ServiceFact, ServiceQuery, ShellQuery, SysctlFact, SysctlQuery,
                                 fact_script, parse_facts)

M = "@@kb-test"
SHA_A, SHA_B = "a" * 64, "b" * 64


def answer(queries, body: str) -> list:
    return parse_facts(body + f"{M} end\n", M, queries)


def test_recorded_paths_file_directory_absent_link():
    queries = [PathQuery("/etc/a", content=True), PathQuery("/etc/d"), PathQuery("/etc/gone"), PathQuery("/etc/l")]
    out = (f"{M} path.types\nfile\ndirectory\nabsent\nlink\n"
           f"{M} path.stat\n5 1700000000 81a4 root root\n4096 1700000000 41c0 etcd etcd\n"
           f"{M} path.stamps\n"  # upload stamps are read for artifacts only
           f"{M} path.sums\n{SHA_A}  /etc/a\n"
           f"{M} path.content\n{base64.b64encode(b'hello').decode()}\n")
    a, d, gone, link = answer(queries, out)
    assert a == PathFact("file", 0o644, "root", "root", 5, SHA_A, b"hello")
    assert d == PathFact("directory", 0o700, "etcd", "etcd", 4096)
    assert gone == PathFact("absent") and link == PathFact("link")


def test_recorded_artifact_stamps_fresh_and_stale():
    queries = [PathQuery("/usr/bin/x", artifact=True), PathQuery("/usr/bin/y", artifact=True)]
    out = (f"{M} path.types\nfile\nfile\n"
           f"{M} path.stat\n9 1 81ed root root\n9 2 89ed root root\n"
           f"{M} path.stamps\nfresh\n{SHA_A}\ndeadbeef:etcd/etcd\nstale\n{SHA_A}\nsome source\n"
           # sha256sum escapes a name with a newline and marks the line with a backslash
           f"{M} path.sums\n\\{SHA_B}  /usr/bin/y\\nz\n")
    x, y = answer(queries, out)
    assert x == ArtifactFact(PathFact("file", 0o755, "root", "root", 9, SHA_A), SHA_A, "deadbeef:etcd/etcd")
    assert y.path.sha256 == SHA_B and y.path.mode == 0o4755 and y.stamped_sha256 == SHA_A and y.source == "some source"


def test_recorded_output_cut_short_or_raced_is_an_error():
    queries = [PathQuery("/a"), PathQuery("/b")]
    with pytest.raises(FactError, match="cut short"):
        answer(queries, f"{M} path.types\nfile\n")
    with pytest.raises(FactError, match="changed on the host"):
        answer(queries, f"{M} path.types\nfile\nfile\n{M} path.stat\n{M} path.race\n")
    with pytest.raises(FactError, match="before its end"):
        parse_facts(f"{M} path.types\nabsent\nabsent\n", M, queries)


def test_recorded_services_one_block_each():
    queries = [ServiceQuery("kubelet"), ServiceQuery("nope"), ServiceQuery("etcd")]
    out = (f"{M} service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n"
           "LoadState=not-found\nActiveState=inactive\nUnitFileState=\n\n"
           "LoadState=loaded\nActiveState=failed\nUnitFileState=enabled\n")
    kubelet, nope, etcd = answer(queries, out)
    assert kubelet.running and kubelet.is_enabled
    assert nope == ServiceFact("", "inactive", "not-found") and not nope.is_enabled
    assert not etcd.running and etcd.is_enabled
    # systemd not answering at all: every service unknown, nothing mis-assigned
    assert answer(queries[:2], f"{M} service\n") == [ServiceFact("", "", "")] * 2


def test_recorded_sysctls_modules_guards():
    sysctls = [SysctlQuery("net.ipv4.ip_forward", "/etc/sysctl.d/a.conf"), SysctlQuery("no.such", "/x"),
               SysctlQuery("net.ipv4.ip_local_port_range", "/y")]
    out = (f"{M} sysctl.values\n==> /proc/sys/net/ipv4/ip_forward <==\n1\n\n"
           "==> /proc/sys/net/ipv4/ip_local_port_range <==\n32768\t60999\n"
           f"{M} sysctl.persisted\np 1\n-\np32768 60999\n")
    assert answer(sysctls, out) == [SysctlFact("1", "1"), SysctlFact(None, None),
                                    SysctlFact("32768 60999", "32768 60999")]
    modules = [ModuleQuery("br_netfilter", None, "/a"), ModuleQuery("overlay", None, "/b")]
    assert answer(modules, f"{M} module\nyes\nno\nno\nyes\n") == [ModuleFact(True, False), ModuleFact(False, True)]
    guards = [GuardQuery("test -e /x"), GuardQuery(None)]
    assert answer(guards, f"{M} guard\nyes\nno\n") == [GuardFact(True), GuardFact(False)]


def test_kinds_mixed_come_back_in_the_order_asked():
    queries = [SysctlQuery("a.b", "/f"), PathQuery("/p"), GuardQuery(None)]
    out = f"{M} guard\nno\n{M} path.types\nabsent\n{M} sysctl.values\n{M} sysctl.persisted\n-\n"
    assert answer(queries, out) == [SysctlFact(None, None), PathFact("absent"), GuardFact(False)]


# -- the script itself, run by /bin/sh on a temporary directory -----------------------------------------

HOSTILE_NAMES = ["plain.conf", "with space.conf", "new\nline.conf", "quote'd\".conf", "-dash.conf", "back\\slash",
                 "tab\there", "@@kb-test fake marker"]
PROGRAMS = ("stat", "head", "sha256sum", "cat", "base64", "tr", "sed", "cut", "grep", "sh", "dash", "bash",
            "systemctl", "test", "printf", "echo")


@pytest.fixture
def shimmed(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose every program logs its start to `log`, then runs the real one."""
    shims, log = tmp_path / "shims", tmp_path / "starts.log"
    shims.mkdir()
    real_path = os.environ["PATH"]
    for name in PROGRAMS:
        if name == "systemctl":
            body = ('echo systemctl >> "$KB_LOG"; while [ "$1" != -- ]; do shift; done; shift\n'
                    'for u; do printf "LoadState=loaded\\nActiveState=active\\nUnitFileState=enabled\\n\\n"; done\n')
        else:
            body = f'echo {name} >> "$KB_LOG"; PATH={real_path}; exec {name} "$@"\n'
        (shims / name).write_text("#!/bin/sh\n" + body)
        (shims / name).chmod(0o755)
    env = {"PATH": str(shims), "KB_LOG": str(log), "KB_STAMPS": str(tmp_path / "stamps")}
    return env, log


def _host_files(root: Path, count: int) -> list[Path]:
    root.mkdir(exist_ok=True)
    files = []
    for i in range(count):
        path = root / f"{i}-{HOSTILE_NAMES[i % len(HOSTILE_NAMES)]}"
        path.write_bytes(f"content {i}\n".encode())
        files.append(path)
    return files


def _run(queries, env: dict[str, str]) -> tuple[list, str]:
    script = fact_script(queries, M)
    proc = subprocess.run(["/bin/sh", "-s"], input=script.encode(), capture_output=True, env=env, check=True)
    return parse_facts(proc.stdout.decode(), M, queries), proc.stderr.decode()


def _queries(files: list[Path], tmp: Path) -> list:
    return [PathQuery(str(tmp)), *(PathQuery(str(f), content=True) for f in files),
            PathQuery(str(tmp / "absent")), PathQuery(str(files[0]), artifact=True),
            ServiceQuery("a"), ServiceQuery("b"),
            SysctlQuery("kernel.ostype", str(tmp / "sysctl.conf")), SysctlQuery("no.such.key", str(tmp / "none")),
            ModuleQuery("kbuild_no_such_module", "test -d /proc", str(tmp / "modules.conf")),
            GuardQuery(f"test -e {tmp}"), GuardQuery("false"),
            ShellQuery("echo hello", str.strip)]


def test_script_reads_hostile_names_exactly(tmp_path, shimmed):
    env, _ = shimmed
    files = _host_files(tmp_path / "fs", len(HOSTILE_NAMES))
    (tmp_path / "sysctl.conf").write_text("kernel.ostype =  Linux\n")
    os.symlink(files[0], tmp_path / "fs" / "link")
    queries = _queries(files, tmp_path) + [PathQuery(str(tmp_path / "fs" / "link"))]
    facts, _ = _run(queries, env)
    # A number sysctl answers only a read from its start (one byte at a time, as sh's `read`, saw "6" of 600).
    (pid_max,), _ = _run([SysctlQuery("kernel.pid_max", str(tmp_path / "none"))], env)
    assert pid_max.value == Path("/proc/sys/kernel/pid_max").read_text().strip() and len(pid_max.value) > 1
    directory, *on_disk = facts[:1 + len(files)]
    assert directory.type == "directory"
    for path, fact in zip(files, on_disk):
        data = path.read_bytes()
        assert fact == PathFact("file", 0o644, "root", "root", len(data), hashlib.sha256(data).hexdigest(), data), path
    rest = facts[1 + len(files):]
    absent, artifact, svc_a, svc_b, ostype, nokey, module, guard_yes, guard_no, shell, link = rest
    assert absent == PathFact("absent") and link == PathFact("link")
    assert artifact.path.sha256 == hashlib.sha256(files[0].read_bytes()).hexdigest() and artifact.stamped_sha256 is None
    assert svc_a.running and svc_b.is_enabled
    assert ostype == SysctlFact("Linux", "Linux") and nokey == SysctlFact(None, None)
    assert module == ModuleFact(True, False)  # the probe found the feature
    assert (guard_yes, guard_no) == (GuardFact(True), GuardFact(False)) and shell == "hello"


def test_script_trusts_a_fresh_stamp_and_rehashes_a_stale_one(tmp_path, shimmed):
    env, _ = shimmed
    fresh, stale = _host_files(tmp_path / "fs", 2)
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    for path, sha in ((fresh, SHA_A), (stale, SHA_B)):
        st = path.stat()
        size_mtime = f"{st.st_size} {int(st.st_mtime)}" if path == fresh else "0 0"
        (stamps / str(path).replace("/", "_")).write_text(f"{sha}\n{size_mtime}\nsrc:{path.name}\n")
    (f, s), _ = _run([PathQuery(str(fresh), artifact=True), PathQuery(str(stale), artifact=True)], env)
    assert f.path.sha256 == SHA_A and f.stamped_sha256 == SHA_A and f.source == f"src:{fresh.name}"
    assert s.path.sha256 == hashlib.sha256(stale.read_bytes()).hexdigest() and s.stamped_sha256 == SHA_B


def test_a_plain_file_is_hashed_even_with_a_fresh_stamp_and_artifacts_among_others_keep_theirs(tmp_path, shimmed):
    """Stamps stand for an artifact's sha256 only: a plain file's content is what its fact says, stamp or not."""
    env, log = shimmed
    plain, fresh, stale = _host_files(tmp_path / "fs", 3)
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    for path, sha, current in ((plain, SHA_A, True), (fresh, SHA_A, True), (stale, SHA_B, False)):
        st = path.stat()
        size_mtime = f"{st.st_size} {int(st.st_mtime)}" if current else "0 0"
        (stamps / str(path).replace("/", "_")).write_text(f"{sha}\n{size_mtime}\nsrc:{path.name}\n")
    queries = [PathQuery(str(tmp_path / "fs")), PathQuery(str(stale), artifact=True), PathQuery(str(plain)),
               PathQuery(str(tmp_path / "absent"), artifact=True), PathQuery(str(fresh), artifact=True)]
    directory, s, p, absent, f = _run(queries, env)[0]
    assert directory.type == "directory" and absent.path.type == "absent"
    assert p.sha256 == hashlib.sha256(plain.read_bytes()).hexdigest() != SHA_A
    assert s.path.sha256 == hashlib.sha256(stale.read_bytes()).hexdigest() and s.stamped_sha256 == SHA_B
    assert f.path.sha256 == SHA_A and f.stamped_sha256 == SHA_A and f.source == f"src:{fresh.name}"
    assert sorted(log.read_text().split()) == ["sha256sum", "stat"]


@pytest.mark.parametrize("count", [3, 60])
def test_process_starts_do_not_grow_with_the_number_of_files(tmp_path, shimmed, count):
    env, log = shimmed
    files = _host_files(tmp_path / "fs", count)
    services = [ServiceQuery(f"s{i}") for i in range(count)]
    sysctls = [SysctlQuery("kernel.ostype", str(tmp_path / f"s{i}.conf")) for i in range(count)]
    modules = [ModuleQuery(f"m{i}", None, str(tmp_path / f"m{i}.conf")) for i in range(count)]
    queries = [*(PathQuery(str(f)) for f in files), *(PathQuery(str(f), artifact=True) for f in files[:1]),
               *services, *sysctls, *modules]
    facts, _ = _run(queries, env)
    assert all(f.type == "file" for f in facts[:count])
    starts = log.read_text().split()
    # One stat, one sha256sum (nothing stamped yet), one systemctl, one head: whatever the number of resources.
    assert sorted(starts) == ["head", "sha256sum", "stat", "systemctl"], starts
    log.unlink()
    _run([PathQuery(str(f), content=True) for f in files], env)
    assert sorted(log.read_text().split()) == ["base64", "cat", "sha256sum", "stat", "tr"]  # --diff adds three
