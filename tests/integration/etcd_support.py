"""Helpers for the etcd snapshot/restore tests: a bootstrapped lab, and etcd read from inside the hosts.

Real parts: systemd-nspawn machines with systemd and sshd; etcd, etcdctl and etcdutl and the control plane
built from source (through the test mirror), the apiserver storing in that etcd over mTLS. Checks read etcd
on each host with the real etcdctl (lab exec, no SSH, no kbuild).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kbuild import layout
from kbuild.inventory import load_cluster
from kbuild.pki.certlist import remote_path
from kbuild.plays.components import apiserver_get
from tests.integration.conftest import LabHandle, inventory_with_mirror, run_kbuild

PREFIX = "/kbuild-test/"
ETCDCTL = (f"ETCDCTL_API=3 {layout.binary_path('etcdctl')} --endpoints=https://127.0.0.1:2379 "
           f"--cacert={remote_path('etcd-ca.crt')} --cert={remote_path('etcd-healthcheck-client.crt')} "
           f"--key={remote_path('etcd-healthcheck-client.key')} --command-timeout=10s")


@dataclass
class EtcdLab:
    lab: LabHandle
    inventory: Path
    state_dir: Path

    mirror: Path

    @classmethod
    def bootstrapped(cls, lab: LabHandle, mirror: Path, base: Path, **changes: object) -> EtcdLab:
        handle = cls(lab, base / "inventory.yaml", base / "state", mirror)
        return handle.variant("inventory.yaml", **changes)

    def variant(self, name: str, **changes: object) -> EtcdLab:
        """The same cluster (same state dir and PKI) with inventory sections changed, bootstrapped."""
        # Fast SSH failure: the unreachable-member test should not wait through the default retries.
        changes.setdefault("ssh", {"connect_timeout": 3, "retries": 0})
        inventory = inventory_with_mirror(self.lab.inventory, self.inventory.parent / name, self.mirror, **changes)
        handle = EtcdLab(self.lab, inventory, self.state_dir, self.mirror)
        code, _, stderr = handle.kbuild("bootstrap")
        assert code == 0, f"bootstrap failed ({code}): {stderr[-3000:]}"
        return handle

    @property
    def masters(self) -> list[str]:
        return [m.name for m in self.lab.machines if m.role == "master"]

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        # Options go before a `--` (after it, everything is etcdctl's).
        cut = args.index("--") if "--" in args else len(args)
        return [*args[:cut], "-i", str(self.inventory), "--state-dir", str(self.state_dir), *args[cut:]]

    def kbuild(self, *args: str, json_events: bool = True, timeout: float = 900) -> tuple[int, list[dict], str]:
        return run_kbuild(self._argv(args), timeout=timeout, json_events=json_events)

    def kbuild_output(self, *args: str) -> subprocess.CompletedProcess[str]:
        """kbuild's own stdout (a command's result, not events)."""
        argv = [sys.executable, "-m", "kbuild", *self._argv(args)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)

    def sh(self, machine: str, command: str, *, check: bool = True, timeout: float = 120) -> str:
        result = self.lab.exec(machine, ["sh", "-c", command], timeout=timeout)
        if check:
            assert result.returncode == 0, f"{machine}: {command[:200]}: {result.stderr or result.stdout}"
        return result.stdout

    def etcdctl(self, machine: str, args: str, *, check: bool = True) -> str:
        return self.sh(machine, f"{ETCDCTL} {args}", check=check)

    def put_keys(self, machine: str, names: list[str], value: str = "v") -> None:
        self.sh(machine, "; ".join(f"{ETCDCTL} put {PREFIX}{n} {value}-{n} >/dev/null || exit 1" for n in names))

    def delete_keys(self, machine: str, names: list[str]) -> None:
        self.sh(machine, "; ".join(f"{ETCDCTL} del {PREFIX}{n} >/dev/null || exit 1" for n in names))

    def keys(self, machine: str) -> dict[str, tuple[str, int]]:
        """This member's own copy (a serializable read) of the test keys: key -> (value, mod revision)."""
        data = json.loads(self.etcdctl(machine, f"get {PREFIX} --prefix --consistency=s --write-out=json"))
        return {base64.b64decode(kv["key"]).decode(): (base64.b64decode(kv["value"]).decode(), int(kv["mod_revision"]))
                for kv in data.get("kvs", [])}

    def endpoint_status(self, machine: str) -> dict:
        return json.loads(self.etcdctl(machine, "endpoint status --write-out=json"))[0]["Status"]

    def cluster_id(self, machine: str) -> int:
        return int(self.endpoint_status(machine)["header"]["cluster_id"])

    def main_pid(self, machine: str, unit: str) -> str:
        return self.sh(machine, f"systemctl show -p MainPID --value {unit}").strip()

    def active(self, machine: str, *units: str) -> list[str]:
        return self.sh(machine, f"systemctl is-active {' '.join(units)}", check=False).split()

    def etcd_dirs(self, machine: str) -> list[str]:
        """Everything next to the data directory: moved-aside copies, leftover uploads."""
        return sorted(self.sh(machine, "ls -d /var/lib/etcd* 2>/dev/null", check=False).split())

    def member_inode(self, machine: str) -> str:
        return self.sh(machine, "stat -c %i /var/lib/etcd/member/snap/db").strip()

    def apiserver_ready(self, machine: str) -> bool:
        cluster = load_cluster(self.inventory, state_dir=self.state_dir)
        return self.lab.exec(machine, ["sh", "-c", apiserver_get(cluster, "/readyz")]).returncode == 0

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code, _, stderr = self.kbuild("etcd", "status", json_events=False)
            if code == 0:
                return
            assert time.monotonic() < deadline, f"etcd not healthy after {timeout}s: {stderr[-1000:]}"
            time.sleep(3)


def saved_snapshot(events: list[dict]) -> tuple[Path, dict]:
    """The snapshot a `kbuild etcd snapshot save --json` run reports, with its metadata."""
    done = [e for e in events if e.get("event") == "message" and (e.get("data") or {}).get("metadata")]
    assert done, f"no saved-snapshot event in {events[-5:]}"
    return Path(done[-1]["data"]["path"]), done[-1]["data"]["metadata"]


def changed_or_restarted(events: list[dict]) -> list[tuple[str, str, str]]:
    return [(e.get("host"), e.get("resource"), e.get("status")) for e in events
            if (e["event"] == "resource" and e.get("status") not in ("ok", None)) or e["event"] == "handler"]


def round_trip(lab: EtcdLab, *, keys: int = 40) -> dict:
    """Write keys, save, change them, restore: exactly the saved keys on every member, at the saved revisions,
    the cluster healthy and the apiserver ready. Returns what the test may check further."""
    first = lab.masters[0]
    saved_names = [f"k{i:03d}" for i in range(keys)]
    lab.put_keys(first, saved_names)
    code, events, stderr = lab.kbuild("etcd", "snapshot", "save")
    assert code == 0, stderr
    path, metadata = saved_snapshot(events)
    expected = lab.keys(first)
    assert sorted(expected) == [PREFIX + n for n in saved_names]
    # Change the cluster after the snapshot: some keys gone, some new, one rewritten.
    lab.delete_keys(first, saved_names[:10])
    lab.put_keys(first, ["new1", "new2", "new3"])
    lab.put_keys(first, [saved_names[-1]], value="changed")
    ids_before = {m: lab.cluster_id(m) for m in lab.masters}

    code, events, stderr = lab.kbuild("etcd", "snapshot", "restore", str(path), "--yes")
    assert code == 0, stderr[-3000:]
    complete = next(e for e in events if e.get("message") == "restore complete")
    assert complete["data"]["revision"] == metadata["revision"]
    for member in lab.masters:
        assert lab.keys(member) == expected, member  # same keys, values and mod revisions on every member
        assert lab.active(member, "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler") == \
            ["active"] * 4, member
        assert lab.apiserver_ready(member), member
        # The old data directory is kept aside, named with the restore's time; nothing else is left.
        dirs = lab.etcd_dirs(member)
        assert [d for d in dirs if d.startswith("/var/lib/etcd.before-restore-")], dirs
        assert not [d for d in dirs if ".restore-" in d and d.endswith(".db")], dirs
    ids_after = {lab.cluster_id(m) for m in lab.masters}
    assert len(ids_after) == 1 and ids_after.isdisjoint(ids_before.values())  # one new cluster
    code, _, stderr = lab.kbuild("etcd", "status", json_events=False)
    assert code == 0, stderr
    return {"path": path, "metadata": metadata, "expected": expected, "events": events}


def assert_no_op_bootstrap_and_members_rejoin(lab: EtcdLab) -> None:
    """After a restore: a bootstrap re-run changes and restarts nothing, and a restarted member (the unit's
    --initial-cluster-token/state flags are ignored once the data directory exists) rejoins the same cluster."""
    pids = {m: lab.main_pid(m, "etcd") for m in lab.masters}
    code, events, stderr = lab.kbuild("bootstrap")
    assert code == 0, stderr[-2000:]
    assert changed_or_restarted(events) == []
    assert {m: lab.main_pid(m, "etcd") for m in lab.masters} == pids
    member = lab.masters[-1]
    cluster_id = lab.cluster_id(lab.masters[0])
    lab.sh(member, "systemctl restart etcd")
    lab.wait_healthy()
    assert lab.cluster_id(member) == cluster_id
    # etcd saw its data directory and started as the existing member it holds.
    log = lab.sh(member, f"journalctl _PID={lab.main_pid(member, 'etcd')} --no-pager -q -o cat")
    assert "restarting local member" in log, log[-2000:]
