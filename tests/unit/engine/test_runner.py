"""The runner end to end on a local fake host: facts, diff, apply, handlers, check mode, failures."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
from pathlib import Path

from kbuild.engine.resources import Artifact, Command, Directory, File, Payload, Service
from kbuild.engine.runner import Gate, HostStatus, Plan

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def f(host, rel: str, content: str, **kw) -> File:
    return File(host.path(rel), content, owner=ME, group=MY_GROUP, **kw)


def plan_for(host, conf: str = "a=1\n") -> Plan:
    return Plan([
        Directory(host.path("etc/app"), mode=0o750, owner=ME, group=MY_GROUP),
        f(host, "etc/app/app.conf", conf, notify=("app",)),
        f(host, "etc/app/other.conf", "x\n", notify=("other",)),
        Service("app"),
        Service("other"),
    ])


def test_first_run_applies_everything_and_starts_without_restarting(host):
    runner, rec, pool = host.runner()
    out = runner.apply("deploy", {"h1": plan_for(host)})["h1"]
    assert out.status is HostStatus.CHANGED
    assert len(out.changed) == 5
    assert Path(host.path("etc/app/app.conf")).read_text() == "a=1\n"
    assert oct(Path(host.path("etc/app")).stat().st_mode & 0o777) == oct(0o750)
    # Freshly started services are not restarted again by their handlers.
    assert out.restarted == []
    assert "start app" in host.calls() and not any(c.startswith("restart") for c in host.calls())
    # One round trip for facts, one for the apply; one connection.
    assert pool.stats.round_trips == 2 and pool.stats.connections == 1


def test_second_run_changes_nothing_and_restarts_nothing(host):
    runner, _, _ = host.runner()
    runner.apply("deploy", {"h1": plan_for(host)})
    calls_before = len(host.calls())
    runner, rec, pool = host.runner()
    out = runner.apply("deploy", {"h1": plan_for(host)})["h1"]
    assert out.status is HostStatus.OK and out.changed == [] and len(out.ok) == 5
    assert pool.stats.round_trips == 1  # facts only
    mutating = [c for c in host.calls()[calls_before:] if not c.startswith(("is-", "show"))]
    assert mutating == []


def test_changing_one_file_restarts_only_its_service_once(host):
    runner, _, _ = host.runner()
    runner.apply("deploy", {"h1": plan_for(host)})
    before = len(host.calls())
    runner, rec, _ = host.runner()
    out = runner.apply("deploy", {"h1": plan_for(host, conf="a=2\n")})["h1"]
    assert out.changed == [f"file:{host.path('etc/app/app.conf')}"]
    assert out.restarted == ["app"]
    restarts = [c for c in host.calls()[before:] if c.startswith("restart")]
    assert restarts == ["restart app"]
    assert [e.resource for e in rec.of("handler", "restarted")] == ["service app"]


def test_two_changes_notifying_one_service_restart_it_once(host):
    runner, _, _ = host.runner()
    runner.apply("deploy", {"h1": plan_for(host)})
    before = len(host.calls())
    plan = plan_for(host, conf="a=3\n")
    plan.resources[2] = f(host, "etc/app/other.conf", "y\n", notify=("app",))
    runner, _, _ = host.runner()
    out = runner.apply("deploy", {"h1": plan})["h1"]
    assert out.restarted == ["app"]
    assert [c for c in host.calls()[before:] if c.startswith("restart")] == ["restart app"]


def test_check_mode_changes_nothing_and_reports_what_would(host):
    runner, rec, _ = host.runner(check=True, diff=True)
    out = runner.apply("deploy", {"h1": plan_for(host)})["h1"]
    assert out.status is HostStatus.CHANGED and len(out.changed) == 5
    assert not Path(host.path("etc/app")).exists()
    assert host.calls() == [] or all(c.startswith(("is-", "show")) for c in host.calls())
    assert {e.status for e in rec.of("resource")} == {"would-change"}
    assert any("+a=1" in (e.diff or "") for e in rec.of("diff"))


def test_check_mode_on_a_drifted_host_shows_the_diff_only(host):
    runner, _, _ = host.runner()
    runner.apply("deploy", {"h1": plan_for(host)})
    Path(host.path("etc/app/app.conf")).write_text("a=drift\n")
    runner, rec, _ = host.runner(check=True, diff=True)
    out = runner.apply("deploy", {"h1": plan_for(host)})["h1"]
    assert out.changed == [f"file:{host.path('etc/app/app.conf')}"]
    diff = out.diffs[f"file:{host.path('etc/app/app.conf')}"]
    assert "-a=drift" in diff and "+a=1" in diff
    assert Path(host.path("etc/app/app.conf")).read_text() == "a=drift\n"


def test_secret_file_diff_is_redacted(host):
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"
    runner, rec, _ = host.runner(check=True, diff=True)
    out = runner.apply("d", {"h1": Plan([f(host, "k.key", key, secret=True),
                                         f(host, "kubeconfig", "client-key-data: QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n")])})["h1"]
    text = "".join(out.diffs.values())
    assert "MIIEvQIBADANBg" not in text and "QUJDREVGR0hJSktM" not in text
    assert "secret content not shown" in text and "<redacted>" in text


def test_mode_only_change_does_not_resend_content(host):
    content = "hello\n" * 20_000
    runner, _, _ = host.runner()
    runner.apply("d", {"h1": Plan([f(host, "x", content, mode=0o644)])})
    runner, _, pool = host.runner()
    out = runner.apply("d", {"h1": Plan([f(host, "x", content, mode=0o600)])})["h1"]
    assert out.status is HostStatus.CHANGED
    assert oct(Path(host.path("x")).stat().st_mode & 0o777) == oct(0o600)
    assert pool.stats.bytes_sent < len(content) // 4  # scripts only, no payload


def test_failure_names_the_resource_and_stops_the_host(host):
    runner, rec, _ = host.runner()
    plan = Plan([
        f(host, "a", "1\n"),
        Command("boom", "echo 'disk on fire' >&2; exit 3", unless="false"),
        f(host, "b", "2\n"),
    ])
    out = runner.apply("d", {"h1": plan})["h1"]
    assert out.status is HostStatus.FAILED
    assert out.failed == "command:boom" and "disk on fire" in (out.message or "")
    assert Path(host.path("a")).exists() and not Path(host.path("b")).exists()
    # A failed host is out of the run: the next phase skips it.
    later = runner.apply("next", {"h1": Plan([f(host, "c", "3\n")])})["h1"]
    assert later.status is HostStatus.SKIPPED and not Path(host.path("c")).exists()


def test_failed_restart_is_reported_with_the_service(host):
    runner, _, _ = host.runner()
    runner.apply("deploy", {"h1": plan_for(host)})
    (host.shim / "broken-app").touch()
    runner, _, _ = host.runner()
    out = runner.apply("deploy", {"h1": plan_for(host, conf="a=9\n")})["h1"]
    assert out.status is HostStatus.FAILED
    assert out.failed == "restart of service app" and "failed" in (out.message or "")


def test_command_guards(host):
    marker = host.path("made")
    Path(marker).parent.mkdir(parents=True, exist_ok=True)
    runner, _, _ = host.runner()
    cmd = Command("make", f"touch {marker}", creates=marker)
    assert runner.apply("d", {"h1": Plan([cmd])})["h1"].status is HostStatus.CHANGED
    runner, _, _ = host.runner()
    assert runner.apply("d", {"h1": Plan([cmd])})["h1"].status is HostStatus.OK


def test_artifact_push_verifies_and_skips_when_same(host, tmp_path):
    blob = os.urandom(3 * 1024 * 1024)
    src = tmp_path / "blob"
    src.write_bytes(blob)
    sha = hashlib.sha256(blob).hexdigest()
    art = Artifact(host.path("usr/local/bin/tool"), sha, source=src, owner=ME, group=MY_GROUP, notify=("tool",))
    runner, _, pool = host.runner()
    assert runner.apply("d", {"h1": Plan([art])})["h1"].status is HostStatus.CHANGED
    assert Path(host.path("usr/local/bin/tool")).read_bytes() == blob
    assert pool.stats.bytes_sent > len(blob)
    runner, _, pool = host.runner()
    assert runner.apply("d", {"h1": Plan([art])})["h1"].status is HostStatus.OK
    assert pool.stats.bytes_sent < 10_000


def test_artifact_with_wrong_checksum_is_not_installed(host, tmp_path):
    src = tmp_path / "blob"
    src.write_bytes(b"real bytes")
    art = Artifact(host.path("bin/tool"), "0" * 64, source=src, owner=ME, group=MY_GROUP)
    runner, _, _ = host.runner()
    out = runner.apply("d", {"h1": Plan([art])})["h1"]
    assert out.status is HostStatus.FAILED and "checksum mismatch" in (out.message or "")
    assert not Path(host.path("bin/tool")).exists()


def test_artifact_modified_on_host_is_detected(host, tmp_path):
    src = tmp_path / "blob"
    src.write_bytes(b"v1" * 1000)
    art = Artifact(host.path("bin/tool"), hashlib.sha256(src.read_bytes()).hexdigest(), source=src,
                   owner=ME, group=MY_GROUP)
    runner, _, _ = host.runner()
    runner.apply("d", {"h1": Plan([art])})
    Path(host.path("bin/tool")).write_bytes(b"tampered")
    runner, _, _ = host.runner()
    out = runner.apply("d", {"h1": Plan([art])})["h1"]
    assert out.status is HostStatus.CHANGED
    assert Path(host.path("bin/tool")).read_bytes() == b"v1" * 1000


def test_serial_batches_stop_after_a_failed_batch(host):
    names = ("h1", "h2", "h3")
    runner, rec, _ = host.runner(names=names)
    plans = {n: Plan([Command(f"c-{n}", "exit 1" if n == "h1" else "true", unless="false")]) for n in names}
    out = runner.apply("roll", plans, serial=1)
    assert out["h1"].status is HostStatus.FAILED
    assert out["h2"].status is HostStatus.SKIPPED and out["h3"].status is HostStatus.SKIPPED


def test_gates_run_after_changes_and_fail_the_host(host):
    runner, rec, _ = host.runner()
    ok = Gate("ready", command="true", timeout=5, interval=0.1)
    bad = Gate("never", command="echo 'not yet'; false", timeout=1, interval=0.2)
    out = runner.apply("d", {"h1": Plan([f(host, "g", "1\n")], gates=[ok, bad])})["h1"]
    assert out.status is HostStatus.FAILED and out.failed == "gate never" and "not yet" in (out.message or "")
    # Nothing changed: gates are skipped unless marked always.
    runner, rec, _ = host.runner()
    out = runner.apply("d", {"h1": Plan([f(host, "g", "1\n")], gates=[bad])})["h1"]
    assert out.status is HostStatus.OK and rec.of("gate") == []


def test_a_failed_gate_of_a_unit_carries_the_units_last_log_lines(host):
    journalctl = host.root / "bin" / "journalctl"
    journalctl.write_text('#!/bin/sh\necho "journalctl $*"\necho \'E1202 "Failed to start cAdvisor" err="inotify_init: '
                          'too many open files"\'\n')
    journalctl.chmod(0o755)
    runner, _, _ = host.runner()
    gate = Gate("kubelet /healthz", command="echo 'connection refused'; false", timeout=1, interval=0.2,
                unit="kubelet", always=True)
    out = runner.apply("d", {"h1": Plan([], gates=[gate])})["h1"]
    message = out.message or ""
    assert out.status is HostStatus.FAILED and "connection refused" in message
    assert "last lines of kubelet's log (journalctl -u kubelet):" in message
    assert "journalctl -u kubelet.service -n 12 --no-pager -o cat" in message and "inotify_init" in message
    # A gate that names no unit reports only its own output.
    out = runner.apply("d", {"h1": Plan([], gates=[Gate("plain", command="false", timeout=1, always=True)])})["h1"]
    assert "journalctl" not in (out.message or "")


def test_local_gate_check(host):
    calls = []

    def check():
        calls.append(1)
        return None if len(calls) >= 3 else "warming up"

    runner, _, _ = host.runner()
    out = runner.apply("d", {"h1": Plan([], gates=[Gate("local", check=check, interval=0.01, always=True)])})["h1"]
    assert out.status is HostStatus.OK and len(calls) == 3


def test_payload_streaming_does_not_read_whole_file(tmp_path):
    from kbuild.engine.tarstream import tar_stream

    reads = []

    class Spy:
        def __init__(self):
            self.left = 5 * 1024 * 1024

        def read(self, n=-1):
            n = min(n, self.left)
            self.left -= n
            reads.append(n)
            return b"z" * n

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    stream = tar_stream([("p0", Payload(5 * 1024 * 1024, Spy))])
    total = 0
    while chunk := stream.read(64 * 1024):
        total += len(chunk)
    assert total >= 5 * 1024 * 1024 and max(reads) <= 256 * 1024


def test_restart_owed_to_a_service_of_a_later_phase_happens_there_once(host):
    # Phase 1 changes a file read by "app", which phase 1 does not manage: no restart yet.
    runner, rec, _ = host.runner()
    runner.apply("deploy", {"h1": plan_for(host)})  # app exists and runs
    before = len(host.calls())
    runner, rec, _ = host.runner()
    first = runner.apply("certs", {"h1": Plan([f(host, "shared.crt", "v2\n", notify=("app",))])})["h1"]
    assert first.restarted == [] and runner.deferred == {"h1": ["app"]}
    second = runner.apply("deploy", {"h1": plan_for(host)})["h1"]  # nothing else changed here
    assert second.status is HostStatus.CHANGED and second.restarted == ["app"]
    assert [c for c in host.calls()[before:] if c.startswith("restart")] == ["restart app"]
    assert runner.deferred == {}


def test_owed_restart_is_dropped_when_the_later_phase_starts_the_service(host):
    runner, _, _ = host.runner()
    runner.apply("certs", {"h1": Plan([f(host, "shared.crt", "v1\n", notify=("app",))])})
    out = runner.apply("deploy", {"h1": plan_for(host)})["h1"]  # first start of app
    assert out.restarted == [] and not any(c.startswith("restart") for c in host.calls())


def test_flush_handlers_try_restarts_what_no_phase_managed(host):
    runner, _, _ = host.runner()
    runner.apply("deploy", {"h1": plan_for(host)})
    runner, rec, _ = host.runner()
    runner.apply("certs", {"h1": Plan([f(host, "shared.crt", "v3\n", notify=("app", "ghost"))])})
    runner.flush_handlers()
    assert "try-restart app ghost" in host.calls() and "restart app" in host.calls()
    assert runner.deferred == {}
