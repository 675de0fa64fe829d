"""Hostile inventories, generated: wrong types, aliases, depth, tags, sizes, encodings, IPv6 and CIDR edges,
injection strings in every string field; and a runner that classifies what kbuild makes of each.

Each case is run in a forked child with an alarm and a memory limit, so a hang or a runaway allocation is
counted, not suffered. `python -m tests.unit.inventory.hostile_corpus` prints the counts (run it with
PYTHONPATH pointing at another kbuild checkout to compare).
"""

from __future__ import annotations

import copy
import json
import os
import re
import resource
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CASE_SECONDS = 10
CASE_MEMORY = 1536 * 1024 * 1024

BASE: dict[str, Any] = {
    "cluster": {"name": "t", "pod_cidr": "10.200.0.0/16", "service_cidr": "10.32.0.0/24",
                "node_monitor_period": "5s", "api_endpoint": "lb.example:6443", "extra_sans": ["api.example"],
                "extra_flags": {"kubelet": {"v": "2"}}, "versions": {"kubernetes": "1.37.2"},
                "addons": {"coredns": {"forward": ["/etc/resolv.conf"]}}},
    "ssh": {"user": "root", "port": 22, "connect_timeout": 10, "retries": 2, "persist": 60},
    "etcd": {"data_dir": "/var/lib/etcd", "backup": {"enabled": True, "dir": "/var/backups/etcd",
                                                     "schedule": "daily", "keep": 7}},
    "artifacts": {"checksums": {"etcd-v3.6.16-linux-amd64.tar.gz": "a" * 64}},
    "hosts": {
        "m1": {"address": "198.18.0.1", "roles": ["etcd", "control-plane"]},
        "w1": {"address": "198.18.0.2", "roles": ["worker"], "labels": {"disk": "ssd"},
               "taints": ["dedicated=gpu:NoSchedule"], "ssh": {"host": "w1.example", "port": 22}},
    },
}

# Every string field of BASE a value from the inventory reaches a host, a unit or the terminal through.
STRING_FIELDS = [
    "cluster.name", "cluster.node_monitor_period", "cluster.api_endpoint", "cluster.extra_sans.0",
    "cluster.extra_flags.kubelet.v", "cluster.versions.kubernetes", "cluster.addons.coredns.forward.0",
    "ssh.user", "etcd.data_dir", "etcd.backup.dir", "etcd.backup.schedule",
    "artifacts.checksums.etcd-v3.6.16-linux-amd64.tar.gz", "hosts.m1.address", "hosts.w1.labels.disk",
    "hosts.w1.taints.0", "hosts.w1.ssh.host",
]
NUMBER_FIELDS = ["ssh.port", "ssh.connect_timeout", "ssh.retries", "ssh.persist", "etcd.backup.keep",
                 "hosts.w1.ssh.port"]
SWITCH_FIELDS = ["etcd.backup.enabled"]
INJECTIONS = ["$(touch /tmp/kbpwn)", "`touch /tmp/kbpwn`", "'; touch /tmp/kbpwn #", '"; touch /tmp/kbpwn #',
              "x\ntouch /tmp/kbpwn", "x\r\ny", "x\x00y", "x\x1b[2Jy", "x\u202ey", "x\u2028y", "../../etc",
              "%n%s%x", "${IFS}", "x y", "１２３", "ﬁ", "\t", "*", "-rf /"]
WRONG_TYPES: list[Any] = [None, True, False, 0, -1, 2 ** 70, 1.5, float("inf"), "", [], {}, ["a"], {"a": 1},
                          "x" * 5000, "007", "22:00", "0x1f", "1e3", "2026-01-01", "yes", "~"]


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes | None  # None: `path` is used as it is (a device, a FIFO)
    expect: str | None  # the key path a rejection must name (or a path below it); None: a file-level problem
    path: str | None = None


def _set(tree: dict[str, Any], dotted_path: str, value: Any) -> dict[str, Any]:
    """A copy of `tree` with the value at `dotted_path` replaced (keys like checksum names contain dots)."""
    out = copy.deepcopy(tree)
    node: Any = out
    parts = _split(out, dotted_path)
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def _split(tree: Any, dotted_path: str) -> list[str]:
    parts, node, rest = [], tree, dotted_path
    while rest:
        if isinstance(node, dict):
            key = next((k for k in sorted(node, key=len, reverse=True)
                        if rest == k or rest.startswith(k + ".")), rest.split(".")[0])
        else:
            key = rest.split(".")[0]
        parts.append(key)
        node = node[int(key)] if isinstance(node, list) else node.get(key) if isinstance(node, dict) else None
        rest = rest[len(key) + 1:]
    return parts


def _dump(tree: Any) -> bytes:
    return yaml.safe_dump(tree, allow_unicode=True, sort_keys=False).encode()


def cases() -> Iterator[Case]:
    base = _dump(BASE)
    yield Case("base", base, None)
    for field in STRING_FIELDS + NUMBER_FIELDS + SWITCH_FIELDS:
        for i, value in enumerate(WRONG_TYPES):
            yield Case(f"type {field} #{i}", _dump(_set(BASE, field, value)), field)
    for field in STRING_FIELDS:
        for i, value in enumerate(INJECTIONS):
            yield Case(f"inject {field} #{i}", _dump(_set(BASE, field, value)), field)
            yield Case(f"inject {field} #{i} suffix", _dump(_set(BASE, field, f"{_get(BASE, field)}{value}")), field)
    yield from _yaml_shapes(base)
    yield from _network_edges()
    yield from _host_names()
    yield from _files()


def _get(tree: Any, dotted_path: str) -> Any:
    node = tree
    for part in _split(tree, dotted_path):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _yaml_shapes(base: bytes) -> Iterator[Case]:
    text = base.decode()
    hosts_line = "hosts:\n"
    head, _, tail = text.partition(hosts_line)
    yield Case("recursive alias list", f"{head}x: &a [*a]\n{hosts_line}{tail}".encode(), "x.0")
    yield Case("recursive alias map", f"{head}x: &a {{b: *a}}\n{hosts_line}{tail}".encode(), "x.b")
    laughs = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        laughs.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    yield Case("billion laughs", ("\n".join(laughs) + "\n" + text).encode(), "a5")
    yield Case("billion laughs in a host", (text + "  w2:\n    labels: &l {a: b}\n    taints: ["
                                            + ", ".join(["*l"] * 50) + "]\n").encode(), "hosts.w2")
    merge = text.replace("  w1:\n", "  w1: &w\n", 1) + "  w3:\n    <<: *w\n    address: 198.18.0.3\n"
    yield Case("merge key", merge.encode(), None)
    for depth in (40, 1000, 5000):
        yield Case(f"deep flow list {depth}", (text + "x: " + "[" * depth + "]" * depth + "\n").encode(), "x")
        yield Case(f"deep flow map {depth}", (text + "x: " + "{a: " * depth + "1" + "}" * depth + "\n").encode(), "x")
        block = "".join("  " * i + "a:\n" for i in range(depth)) + "  " * depth + "b: 1\n"
        yield Case(f"deep block map {depth}", (text + "x:\n" + "".join("  " + line + "\n" for line in
                                                                    block.splitlines())).encode(),
                   "x" if depth < 5000 else None)  # 5000 levels of indentation: over the size bound
    for tag in ("!!int abc", "!!bool maybe", "!!float x", "!!python/object:os.system ls", "!!binary AAAA",
                "!custom x", "!!set {a}", "!!omap [a: 1]", "!!timestamp x", "!!str 22", "!!null x", "! x"):
        yield Case(f"tag {tag}", text.replace("port: 22\n", f"port: {tag}\n", 1).encode(), "ssh.port")
        yield Case(f"tag {tag} as key", text.replace("  m1:\n", f"  {tag}:\n", 1).encode(), "hosts")
    for name, body, expect in [
        ("top-level list", "- a\n- b\n", None), ("top-level scalar", "hello\n", None), ("empty", "", None),
        ("only comment", "# nothing\n", None), ("two documents", text + "---\n" + text, None),
        ("hosts as list", head + "hosts: [m1, w1]\n", "hosts"), ("cluster as string", "cluster: x\n" + hosts_line
                                                                    + tail, "cluster"),
        ("host as list", head + "hosts:\n  m1: [a]\n", "hosts.m1"), ("roles as string", text.replace(
            "roles:\n    - worker", "roles: worker", 1), "hosts.w1.roles"),
        ("complex key", head + "hosts:\n  ? [a, b]\n  : {address: 198.18.0.3}\n", "hosts"),
        ("duplicate key", text + "cluster: {name: u}\n", "cluster"),
        ("unknown key", text.replace("ssh:\n", "shh: 1\nssh:\n", 1), "shh"),
        ("syntax error", text + "x: [\n", None), ("tabs", text + "x:\n\t- a\n", None),
        ("anchor undefined", text + "x: *nowhere\n", None),
    ]:
        yield Case(name, body.encode(), expect)
    yield Case("huge ssh.host", _dump(_set(BASE, "hosts.w1.ssh.host", "a" * 200_000)), "hosts.w1.ssh.host")
    yield Case("huge label", _dump(_set(BASE, "hosts.w1.labels.disk", "a" * 200_000)), "hosts.w1.labels.disk")
    many = copy.deepcopy(BASE)
    many["hosts"].update({f"w{i}": {"address": f"198.18.{i // 250}.{i % 250 + 2}", "roles": ["worker"]}
                          for i in range(2, 502)})
    yield Case("500 hosts", _dump(many), None)
    yield Case("9 MiB file", text.encode() + b"# " + b"x" * (9 * 1024 * 1024) + b"\n", None)


def _network_edges() -> Iterator[Case]:
    for value in ("10.32.0.0/8", "10.32.0.0/29", "10.32.0.1/24", "fd00::/128", "fd00::/64", "fd00::/107",
                  "fd00::/108", "fd00::/124", "fd00::/125", "fe80::%eth0/64", "::/0", "0.0.0.0/0", "10.200.0.0/16",
                  "1.2.3.4/33", "１０.0.0.0/8"):
        yield Case(f"service_cidr {value}", _dump(_set(BASE, "cluster.service_cidr", value)), "cluster.service_cidr")
    for value in ("fd00::/48", "fd00::/112", "fd00::/120", "fd00::/128", "10.200.0.0/30", "10.0.0.0/8"):
        # An overlap is reported at either network.
        yield Case(f"pod_cidr {value}", _dump(_set(BASE, "cluster.pod_cidr", value)), "cluster")
    for value in ("0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1", "::", "::1", "ff02::1",
                  "::ffff:198.18.0.1", "fe80::1%eth0", "fe80::1%$(x)", "fe80::1%a b", "198.18.0.1",
                  "2001:db8::1", "198.18.0.256", "10.32.0.5", "1.2.3", "٣.٣.٣.٣"):
        yield Case(f"address {value}", _dump(_set(BASE, "hosts.w1.address", value)), "hosts.w1.address")
    for value in ("1.37.2", "v1.37.2", "1.37", "１.37.2", "1.37.2 ", "1.37.2\n", "1.37.2-rc.0", "01.037.002"):
        yield Case(f"version {value!r}", _dump(_set(BASE, "cluster.versions.kubernetes", value)),
                   "cluster.versions.kubernetes")
    for value in ("b,c=d", "a" * 64, "-a", "a-", "", "a.b_c-d", "x=y"):
        yield Case(f"label value {value!r}", _dump(_set(BASE, "hosts.w1.labels.disk", value)), "hosts.w1.labels.disk")
    for value in ("g" * 64, "A" * 64, "sha256:" + "a" * 64, "a" * 63, "a" * 128):
        yield Case(f"checksum {value[:10]}x{len(value)}", _dump(_set(BASE, "artifacts.checksums.etcd-v3.6.16-linux-amd64.tar.gz",
                                                        value)), "artifacts.checksums.etcd-v3.6.16-linux-amd64.tar.gz")
    for value in ("/", "/etc", "/var", "/var/lib", "/usr/local", "/root", "/home/alice", "/tmp/etcd", "/proc/x",
                  "/var/lib/kubelet/etcd", "/etc/kubernetes", "relative/dir", "/var/lib/etcd/../..", "/srv/etcd"):
        for field in ("etcd.data_dir", "etcd.backup.dir"):
            yield Case(f"{field} {value}", _dump(_set(BASE, field, value)), field)
    yield Case("api_endpoint full-width port", _dump(_set(BASE, "cluster.api_endpoint", "lb.example:６４４３")),
               "cluster.api_endpoint")
    dup = _set(BASE, "hosts.w1.address", "::ffff:198.18.0.1")
    yield Case("IPv4-mapped duplicate", _dump(dup), "hosts.w1.address")


def _host_names() -> Iterator[Case]:
    text = _dump(BASE).decode()
    for name in ("007", "12:30", "0x1f", "on", "null", "~", "''", "A1", "a_b", "a" * 64, "m1\\n", "\"w\\u202e1\"",
                 "-a", "1e3", "true"):
        yield Case(f"host name {name}", text.replace("  w1:\n", f"  {name}:\n", 1).encode(), "hosts")


def _files() -> Iterator[Case]:
    text = _dump(BASE).decode()
    yield Case("utf-16", text.encode("utf-16"), None)
    yield Case("utf-8 bom", b"\xef\xbb\xbf" + text.encode(), None)
    yield Case("latin-1", text.replace("ssd", "s\u00e9d").encode("latin-1"), None)
    yield Case("nul byte", text.encode() + b"x: \x00\n", None)
    yield Case("crlf", text.replace("\n", "\r\n").encode(), None)
    yield Case("/dev/zero", None, None, "/dev/zero")
    yield Case("/dev/null", None, None, "/dev/null")
    yield Case("a directory", None, None, "DIR")
    yield Case("a FIFO", None, None, "FIFO")


# -- running ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str  # accepted | clean | unlocated | crash | hang
    detail: str = ""


def run_case(case: Case, workdir: Path) -> Outcome:
    path = _materialise(case, workdir)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: bounded in time and memory, reports one JSON line
        os.close(read_end)
        code = 0
        try:
            resource.setrlimit(resource.RLIMIT_AS, (CASE_MEMORY, CASE_MEMORY))
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(CASE_SECONDS)
            result = _classify(case, path)
            os.write(write_end, json.dumps([result.kind, result.detail]).encode()[:60000])
        except BaseException:  # noqa: BLE001 - the child must never return into the test runner
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
        return Outcome("hang", f"no answer within {CASE_SECONDS}s")
    if not chunks:
        return Outcome("crash", f"the child died (status {status})")
    kind, detail = json.loads(b"".join(chunks))
    return Outcome(kind, detail)


def _materialise(case: Case, workdir: Path) -> Path:
    if case.data is not None:
        path = workdir / "inventory.yaml"
        path.write_bytes(case.data)
        return path
    if case.path == "DIR":
        path = workdir / "a-directory"
        path.mkdir(exist_ok=True)
        return path
    if case.path == "FIFO":
        path = workdir / "a-fifo"
        if not path.exists():
            os.mkfifo(path)
        return path
    return Path(str(case.path))


def _classify(case: Case, path: Path) -> Outcome:
    from kbuild.errors import InventoryError, KbuildError
    from kbuild.inventory import load_cluster

    try:
        load_cluster(path, state_dir=path.parent / "state")
    except InventoryError as exc:
        text = str(exc)
        if case.expect is not None and not _names(text, case.expect):
            return Outcome("unlocated", text[:2000])
        return Outcome("clean", text[:500])
    except KbuildError as exc:
        if case.expect is not None:
            return Outcome("unlocated", str(exc)[:2000])
        return Outcome("clean", str(exc)[:500])
    except RecursionError as exc:
        return Outcome("crash", f"RecursionError: {str(exc)[:200]}")
    except Exception as exc:  # noqa: BLE001 - exactly what is being counted
        return Outcome("crash", f"{type(exc).__name__}: {str(exc)[:300]}")
    return Outcome("accepted")


def _names(message: str, key: str) -> bool:
    """The message locates a problem at `key` or below it (`file:line: key.sub: ...`)."""
    return re.search(r"(?:^|: )" + re.escape(key) + r"(?:[.\[][^\s]*)?: ", message, re.MULTILINE) is not None


def run_all() -> tuple[Counter[str], dict[str, list[tuple[str, str]]]]:
    import kbuild.inventory  # noqa: F401 - imported once here, not in every forked child

    counts: Counter[str] = Counter()
    examples: dict[str, list[tuple[str, str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases():
            outcome = run_case(case, Path(tmp))
            counts[outcome.kind] += 1
            examples.setdefault(outcome.kind, []).append((case.name, outcome.detail))
    return counts, examples


if __name__ == "__main__":
    totals, found = run_all()
    print(f"{sum(totals.values())} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    for kind in ("crash", "hang", "unlocated", "accepted"):
        for name, detail in found.get(kind, [])[: int(sys.argv[1]) if len(sys.argv) > 1 else 15]:
            print(f"  {kind}: {name}: {detail[:300]!r}")
