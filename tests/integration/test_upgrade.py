"""Rolling upgrades on lab hosts: etcd's previous minor -> kbuild's etcd (3.5 -> 3.6) under a steady stream of
writes, and Kubernetes' previous minor -> kbuild's default (1.36 -> 1.37), every component built from source,
on a lab of 3 masters (etcd + control plane) and 2 workers. The real kubectl drains the nodes.

One lab, in order: refusals that change nothing; then an upgrade stopped with Ctrl-C while the first
kube-apiserver is being upgraded, resumed by `kbuild upgrade apply`, stopped again at the first worker,
and finished by `kbuild bootstrap` (which must go through the same rolling order); the JSON event logs of
the three runs give the order of every restart.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kbuild.inventory.model import Versions
from kbuild.releases import minor_of
from tests.integration.conftest import LabHandle, inventory_with_mirror, parse_events, run_kbuild, wait_until
from tests.integration.kube import Kubectl, busybox_pod
from tests.mirror.releases import PREVIOUS_ETCD, PREVIOUS_KUBERNETES

pytestmark = pytest.mark.integration

OLD = {"kubernetes": PREVIOUS_KUBERNETES, "etcd": PREVIOUS_ETCD}
NEW = {"kubernetes": Versions().kubernetes, "etcd": Versions().etcd}
# An older Kubernetes minor kbuild still supports: a move there is a downgrade.
OLDER_KUBERNETES = f"{minor_of(PREVIOUS_KUBERNETES)[0]}.{minor_of(PREVIOUS_KUBERNETES)[1] - 1}.0"
OLDER_ETCD_PATCH = ".".join(PREVIOUS_ETCD.split(".")[:2] + [str(int(PREVIOUS_ETCD.split(".")[2]) - 1)])
BINARIES = ("etcd", "etcdctl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
            "containerd")
UNITS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet",
         "kube-proxy")


@dataclass
class UpgradeLab:
    lab: LabHandle
    mirror: Path
    base: Path
    test_image: str
    inventory: Path = field(init=False)

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    def write_inventory(self, versions: dict[str, str], name: str = "inventory.yaml") -> Path:
        """The lab's inventory with the test mirror and these versions; it becomes the one runs use."""
        self.inventory = inventory_with_mirror(self.lab.inventory, self.base / name, self.mirror,
                                               preload=[self.test_image], cluster={"versions": versions})
        return self.inventory

    def kbuild(self, *args: str, inventory: Path | None = None) -> tuple[int, list[dict], str]:
        return run_kbuild([*args, "-i", str(inventory or self.inventory), "--state-dir", str(self.state_dir)],
                          timeout=900)

    def machines(self, role: str) -> list:
        return [m for m in self.lab.machines if m.role == role]

    def version(self, machine: str, binary: str) -> str:
        out = self.lab.exec(machine, f"/usr/local/bin/{binary} --version").stdout
        return out.split()[2] if binary == "etcd" else out.split()[1].lstrip("v")


@pytest.fixture(scope="module")
def upgrade_lab(lab_factory, built_mirror, tmp_path_factory) -> Iterator[UpgradeLab]:
    handle = UpgradeLab(lab_factory("upg", masters=3, workers=2), built_mirror.root,
                        tmp_path_factory.mktemp("upgrade"), built_mirror.test_image)
    handle.write_inventory(OLD)
    code, events, stderr = handle.kbuild("bootstrap")
    assert code == 0, f"bootstrap at the old versions failed: {[e for e in events if e.get('status') == 'failed']}" \
                      f"\n{stderr[-2000:]}"
    yield handle
    lab_factory.release(handle.lab)


def host_state(ul: UpgradeLab) -> dict[str, str]:
    """Every binary's checksum and every unit's invocation: equal before and after means nothing changed."""
    state = {}
    for machine in ul.lab.machines:
        out = ul.lab.exec(machine.name, "cd /usr/local/bin && sha256sum " + " ".join(BINARIES) + " 2>/dev/null; "
                          + "; ".join(f"echo {u} $(systemctl show -p InvocationID --value {u})" for u in UNITS)).stdout
        state[machine.name] = out
    return state


def test_downgrades_are_refused_and_change_nothing(upgrade_lab: UpgradeLab):
    # (Skipping a minor needs a third Kubernetes or etcd minor in the mirror; the policy's unit tests cover it.)
    ul = upgrade_lab
    before = host_state(ul)
    backups = sorted((ul.state_dir / "backups").glob("*")) if (ul.state_dir / "backups").exists() else []

    code, events, stderr = ul.kbuild("upgrade", "apply", "--yes", "--to", OLDER_KUBERNETES)
    assert code == 2, stderr
    assert f"kubernetes {OLD['kubernetes']}" in stderr and f"-> {OLDER_KUBERNETES} is a downgrade" in stderr, stderr
    plan = next(e for e in events if e["event"] == "upgrade.plan")["data"]
    assert plan["refused"] and [f["rule"] for f in plan["findings"]] == ["downgrade"]

    older = ul.write_inventory({**OLD, "etcd": OLDER_ETCD_PATCH}, "older.yaml")
    code, _, stderr = ul.kbuild("upgrade", "apply", "--yes", inventory=older)
    assert code == 2 and f"etcd {PREVIOUS_ETCD}" in stderr and "is a downgrade" in stderr, stderr
    # `kbuild bootstrap` with that inventory is refused the same way, before any host changes.
    code, events, stderr = ul.kbuild("bootstrap", inventory=older)
    assert code == 2 and "is a downgrade" in stderr, stderr
    assert not [e for e in events if e["event"] in ("resource", "handler") and e.get("status") == "changed"]

    assert host_state(ul) == before
    after = sorted((ul.state_dir / "backups").glob("*")) if (ul.state_dir / "backups").exists() else []
    assert after == backups  # not even a snapshot
    ul.write_inventory(OLD)


class Writer(threading.Thread):
    """Puts keys through etcd's gRPC gateway (mTLS, the healthcheck client certificate from the state dir)
    as fast as one at a time allows, failing over to the next member when one does not answer; remembers
    every put etcd acknowledged and when."""

    def __init__(self, state_dir: Path, addresses: list[str]) -> None:
        super().__init__(daemon=True)
        pki = state_dir / "pki" / "etcd"
        self.tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.tls.load_cert_chain(str(pki / "healthcheck-client.crt"), str(pki / "healthcheck-client.key"))
        self.addresses = addresses
        self.acked: list[tuple[str, str, float]] = []
        self.failures = 0
        self.halt = threading.Event()

    def request(self, conn: http.client.HTTPSConnection, path: str, body: dict) -> dict:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise OSError(f"HTTP {response.status}: {data[:200]!r}")
        return json.loads(data)

    def run(self) -> None:
        current, conn, n = 0, None, 0
        while not self.halt.is_set():
            key, value = f"/kbuild-upgrade-test/{n:07d}", f"value-{n}"
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection(self.addresses[current], 2379, context=self.tls, timeout=2)
                self.request(conn, "/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
                self.acked.append((key, value, time.monotonic()))
                n += 1
                time.sleep(0.01)
            except (OSError, http.client.HTTPException, ValueError):
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn, current = None, (current + 1) % len(self.addresses)
                time.sleep(0.05)

    def longest_gap(self, since: float) -> float:
        times = [since] + [t for _, _, t in self.acked if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def stored(self) -> dict[str, str]:
        conn = http.client.HTTPSConnection(self.addresses[0], 2379, context=self.tls, timeout=10)
        data = self.request(conn, "/v3/kv/range", {"key": _b64("/kbuild-upgrade-test/"),
                                                   "range_end": _b64("/kbuild-upgrade-test0")})
        return {_unb64(kv["key"]): _unb64(kv["value"]) for kv in data.get("kvs", [])}


class Poller(threading.Thread):
    """A client of a NodePort Service through every worker (as a load balancer in front of them would be):
    each request goes to the next worker that answers within a second; a request no worker answers is lost."""

    def __init__(self, addresses: list[str], port: int) -> None:
        super().__init__(daemon=True)
        self.urls = [f"http://{a}:{port}/" for a in addresses]
        self.answered: list[float] = []
        self.lost_at: list[float] = []  # wall-clock times, to set against the events of kbuild's runs
        self.halt = threading.Event()

    def run(self) -> None:
        turn = 0
        while not self.halt.is_set():
            for attempt in range(len(self.urls)):
                url = self.urls[(turn + attempt) % len(self.urls)]
                try:
                    with urllib.request.urlopen(url, timeout=1) as response:
                        if response.read().startswith(b"served-by-"):
                            self.answered.append(time.monotonic())
                            break
                except OSError:
                    continue
            else:
                self.lost_at.append(time.time())
            turn += 1
            time.sleep(0.05)

    @property
    def lost(self) -> int:
        return len(self.lost_at)

    def longest_gap(self) -> float:
        return max((b - a for a, b in itertools.pairwise(self.answered)), default=0.0)


def when_in_the_runs(events: list[dict], moments: list[float]) -> list[str]:
    """Each moment as the upgrade step or restart that came last before it, e.g. '+1.2s after drained w1'."""
    marks = sorted((e["time"], e.get("message") or f"restarted {e.get('resource')} on {e.get('host')}")
                   for e in events if e.get("event") == "handler" and e.get("status") == "restarted"
                   or e.get("event") == "message" and "upgrade" in (e.get("data") or {}))
    said = []
    for moment in moments:
        before = [m for m in marks if m[0] <= moment]
        said.append(f"+{moment - before[-1][0]:.1f}s after {before[-1][1]!r}" if before else "before the upgrade")
    return said


def serve_behind_a_pdb(ul: UpgradeLab, kubectl: Path) -> int:
    """A Deployment of 2 web replicas with a PodDisruptionBudget and a NodePort Service; its node port."""
    kube = Kubectl(kubectl, ul.state_dir / "admin.conf")
    pod = busybox_pod("web", ul.test_image, command="mkdir -p /www && echo served-by-$(hostname) > /www/index.html "
                                                    "&& exec httpd -f -p 8080 -h /www")
    pod["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    # As a web server meant to survive drains is written: a pod being evicted keeps serving for a few
    # seconds (preStop sleep) while kube-proxy on every node drops it from the Service's rules; httpd
    # exiting at once on SIGTERM would refuse the requests still routed to it in that window.
    pod["spec"]["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
    pod["spec"]["terminationGracePeriodSeconds"] = 15
    pod["spec"]["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                                           "topologyKey": "kubernetes.io/hostname"}}]}}
    kube.apply(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod["spec"]}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    kube.wait_for("condition=Available", "deployment/web")
    port = kube.json("get", "service", "web")["spec"]["ports"][0]["nodePort"]
    # Available is the pods' readiness; kube-proxy writes the new Service's rules up to a sync period later, and
    # until then the node ports refuse. A client is pointed at a Service once it answers, so the poll starts then.
    for worker in ul.machines("worker"):
        url = f"http://{worker.address}:{port}/"
        assert wait_until(lambda url=url: _serves(url), timeout=60, interval=0.2), \
            f"the web Service does not answer through {worker.name}:{port}"
    return port


def _serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.read().startswith(b"served-by-")
    except OSError:
        return False


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def interrupted(ul: UpgradeLab, args: list[str], when) -> tuple[int, list[dict], str]:  # noqa: ANN001
    """Run kbuild with --json and send it SIGINT (Ctrl-C) at the first event `when` accepts."""
    argv = [sys.executable, "-m", "kbuild", *args, "-i", str(ul.inventory), "--state-dir", str(ul.state_dir), "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events, sent = [], False
    assert proc.stdout is not None
    for line in proc.stdout:
        events += parse_events(line)
        if not sent and events and when(events[-1]):
            proc.send_signal(signal.SIGINT)
            sent = True
    stderr = proc.stderr.read() if proc.stderr else ""
    return proc.wait(timeout=600), events, stderr


def step_event(kind: str, status: str):  # noqa: ANN201
    return lambda e: e.get("event") == "message" and (e.get("data") or {}).get("step") == kind \
        and e.get("status") == status


def marks(events: list[dict], status: str, kind: str | None = None) -> list[tuple[float, str]]:
    return [(e["time"], e.get("host") or ",".join(e["data"]["hosts"])) for e in events
            if e.get("event") == "message" and (e.get("data") or {}).get("upgrade") == status
            and (kind is None or e["data"]["step"] == kind)]


def restarts(events: list[dict]) -> list[tuple[float, str, str, str]]:
    return [(e["time"], e["phase"], e["host"], e["resource"].removeprefix("service "))
            for e in events if e["event"] == "handler" and e["status"] == "restarted"]


def test_rolling_upgrade_under_writes_stops_on_ctrl_c_and_resumes(upgrade_lab: UpgradeLab, kubectl,
                                                                    record_property):
    ul = upgrade_lab
    masters, workers = ul.machines("master"), ul.machines("worker")
    poller = Poller([w.address for w in workers], serve_behind_a_pdb(ul, kubectl))
    poller.start()
    writer = Writer(ul.state_dir, [m.address for m in masters])
    writer.start()
    time.sleep(1.0)
    started = time.monotonic()
    ul.write_inventory(NEW)

    # Run A: Ctrl-C while the first kube-apiserver is being upgraded: that host is finished, then it stops.
    code, run_a, stderr = interrupted(ul, ["upgrade", "apply", "--yes"], step_event("apiserver", "start"))
    assert code == 130, stderr
    assert "stop requested" in stderr and "run the same command again" in stderr
    first = masters[0].name
    assert [h for _, h in marks(run_a, "done", "apiserver")] == [first]
    stopped = [e for e in run_a if (e.get("data") or {}).get("upgrade") == "stopped"]
    assert len(stopped) == 1 and f"after apiserver on {first}" in stopped[0]["message"]
    assert ul.version(first, "kube-apiserver") == NEW["kubernetes"]
    assert all(ul.version(m.name, "kube-apiserver") == OLD["kubernetes"] for m in masters[1:])
    assert all(ul.version(m.name, "etcd") == NEW["etcd"] for m in masters)
    assert all(ul.version(w.name, "kubelet") == OLD["kubernetes"] for w in workers)
    snapshot = [e for e in run_a if (e.get("data") or {}).get("step") == "snapshot"
                and e["status"] in ("done", "skipped")]
    assert len(snapshot) == 1 and (snapshot[0]["status"] == "skipped" and "SKIPPED" in snapshot[0]["message"]
                                   or Path(snapshot[0]["data"]["path"]).is_file())

    # Run B, the same command: what is done is skipped; Ctrl-C as the first worker batch starts.
    code, run_b, stderr = interrupted(ul, ["upgrade", "apply", "--yes"], step_event("workers", "start"))
    assert code == 130, stderr
    skipped = {(e["data"]["step"], e.get("host")) for e in run_b if (e.get("data") or {}).get("upgrade") == "skipped"}
    assert {("etcd", m.name) for m in masters} | {("apiserver", first)} <= skipped
    assert not [r for r in restarts(run_b) if r[3] == "etcd" or r[2] == first and r[3] == "kube-apiserver"]
    assert [h for _, h in marks(run_b, "done", "workers")] == [workers[0].name]

    # Run C: `kbuild bootstrap` with the same inventory finishes through the same rolling order, and its
    # own phases after it find nothing to restart (no parallel replace).
    code, run_c, stderr = ul.kbuild("bootstrap")
    assert code == 0, stderr[-3000:]
    writer.halt.set()
    writer.join(timeout=10)
    poller.halt.set()
    poller.join(timeout=10)
    # Workers drained one at a time behind the PodDisruptionBudget: the Service never stopped answering.
    print(f"\n[upgrade] the Service answered {len(poller.answered)} requests, lost {poller.lost}; longest gap "
          f"between answers {poller.longest_gap():.2f}s")
    record_property("service_requests", len(poller.answered) + poller.lost)
    record_property("service_requests_lost", poller.lost)
    record_property("service_longest_gap_s", round(poller.longest_gap(), 2))
    assert poller.answered
    assert [h for _, h in marks(run_c, "done", "workers")] == [workers[1].name]
    assert all(phase.startswith("upgrade-") for _, phase, _, _ in restarts(run_c))
    assert all(ul.version(w.name, "kubelet") == NEW["kubernetes"] for w in workers)

    # The order of every restart over the three runs, from the JSON event logs.
    events = run_a + run_b + run_c
    check_restart_order(events, masters, workers)

    # Every write etcd acknowledged is there, and writes never stopped for longer than one member's restart.
    stored = writer.stored()
    missing = [k for k, v, _ in writer.acked if stored.get(k) != v]
    assert writer.acked and not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    gap = writer.longest_gap(started)
    etcd_steps = step_durations(run_a, "etcd")
    etcd_part = marks(run_a, "done", "etcd")[-1][0] - marks(run_a, "start", "etcd")[0][0]
    print(f"\n[upgrade] {len(writer.acked)} acknowledged writes, {writer.failures} failed attempts; longest gap "
          f"{gap:.2f}s; etcd member steps took {', '.join(f'{d:.1f}s' for d in etcd_steps)}; whole etcd part "
          f"{etcd_part:.1f}s")
    # A correctness bound, not a benchmark: one member down at a time leaves a quorum, so a client that fails
    # over keeps writing; two down at once would stall writes until one came back, for longer than the
    # restart of a single member. The margin covers a leader election and the client's reconnect.
    assert gap < max(etcd_steps) + 3.0
    # And now there is nothing left to do.
    plan = subprocess.run([sys.executable, "-m", "kbuild", "upgrade", "plan", "-i", str(ul.inventory),
                           "--state-dir", str(ul.state_dir), "--json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert not data["refused"] and [s for s in data["steps"] if not s["skip"]] == []
    # Every request answered: the drains start only once a controller-manager leads again after its restart,
    # so each evicted pod leaves the Service's EndpointSlice (and kube-proxy's rules) while it still serves.
    assert poller.lost == 0, (f"{poller.lost} of {poller.lost + len(poller.answered)} Service requests got no "
                              f"answer from any worker (longest gap {poller.longest_gap():.2f}s): "
                              f"{when_in_the_runs(events, poller.lost_at)}")


def step_durations(events: list[dict], kind: str) -> list[float]:
    starts = {h: t for t, h in marks(events, "start", kind)}
    return [t - starts[h] for t, h in marks(events, "done", kind) if h in starts]


def check_restart_order(events: list[dict], masters: list, workers: list) -> None:
    order = restarts(events)
    phases = [phase for _, phase, _, _ in order]
    # etcd, then apiservers, then controller-manager/scheduler, then workers: phases never go back.
    rank = {"upgrade-etcd": 0, "upgrade-apiserver": 1, "upgrade-controllers": 2, "upgrade-workers": 3}
    assert [rank[p] for p in phases] == sorted(rank[p] for p in phases), phases
    by_phase = {p: [(h, s) for _, ph, h, s in order if ph == p] for p in rank}
    assert sorted(h for h, _ in by_phase["upgrade-etcd"]) == sorted(m.name for m in masters)
    assert {s for _, s in by_phase["upgrade-etcd"]} == {"etcd"}
    assert [h for h, _ in by_phase["upgrade-apiserver"]] == [m.name for m in masters]  # one by one
    assert {s for _, s in by_phase["upgrade-controllers"]} == {"kube-controller-manager", "kube-scheduler"}
    # The etcd member restarted last was the leader when it was picked.
    etcd_starts = [e for e in events if step_event("etcd", "start")(e)]
    assert "leader" in etcd_starts[-1]["message"] and all("leader" not in e["message"] for e in etcd_starts[:-1])
    # Each etcd member and each apiserver: started, restarted and healthy before the next one starts.
    for kind in ("etcd", "apiserver"):
        spans = list(zip(marks(events, "start", kind), marks(events, "done", kind), strict=True))
        for (s1, d1), (s2, _) in itertools.pairwise(spans):
            assert s1[0] <= d1[0] <= s2[0] and s1[1] == d1[1]
    # Workers in batches of one: cordon, then its restarts, then uncordon, before the next is cordoned.
    timeline = []
    for name in (w.name for w in workers):
        cordon = [t for t, h in marks(events, "cordoned", "workers") if h == name]
        uncordon = [t for t, h in marks(events, "uncordoned", "workers") if h == name]
        worker_restarts = [t for t, p, h, _ in order if h == name]
        assert len(cordon) == 1 and len(uncordon) == 1 and worker_restarts, name
        assert cordon[0] < min(worker_restarts) <= max(worker_restarts) < uncordon[0], name
        timeline.append((cordon[0], uncordon[0]))
    assert timeline[0][1] < timeline[1][0]
    last_control_plane = max(t for t, p, _, _ in order if p != "upgrade-workers")
    assert last_control_plane < timeline[0][0]
