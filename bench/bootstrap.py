"""The bootstrap benchmark: `kbuild bootstrap` of 1 master + 2 workers from the test mirror, per-phase timings, and
no-op re-runs; every run checked on the hosts (units active, nodes Ready through kubectl), not through kbuild."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from bench import report
from bench.hosts import check
from kbuild.lab.lab import Lab

KBUILD = Path(sys.executable).parent / "kbuild"
UNITS = {"master": ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kbuild-pod-routes"],
         "worker": ["containerd", "kubelet", "kube-proxy", "kbuild-pod-routes"]}


@dataclass
class BootRun:
    kind: str  # "first" | "noop"
    rep: int
    wall: float
    exit_code: int
    phases: dict[str, float] = field(default_factory=dict)
    connections: int = 0
    round_trips: int = 0
    changed: int = 0
    restarted: int = 0
    dns_seconds: float | None = None  # first runs: from the start of `kbuild bootstrap` to CoreDNS answering a pod
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.exit_code == 0 and not self.problems


def mirror_command(*args: str) -> str:
    """`python -m tests.mirror ARGS`'s last line: the mirror is built from source (cached) on first use."""
    out = subprocess.run([sys.executable, "-m", "tests.mirror", *args], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, timeout=3600, check=False)
    if out.returncode != 0:
        raise SystemExit(f"error: python -m tests.mirror {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


def bootstrap_once(inventory: Path, state: Path, kind: str, rep: int, log: Path) -> BootRun:
    started = time.perf_counter()
    proc = subprocess.run([str(KBUILD), "bootstrap", "-i", str(inventory), "--state-dir", str(state), "--json"],
                          capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    run = BootRun(kind, rep, round(wall, 3), proc.returncode)
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        name, status = event.get("event"), event.get("status")
        if name == "timings":
            run.phases = event.get("data") or {}
        elif name == "run.end":
            data = event.get("data") or {}
            run.connections, run.round_trips = data.get("connections", 0), data.get("round_trips", 0)
        elif name == "resource" and status == "changed":
            run.changed += 1
        elif name == "handler" and status == "restarted":
            run.restarted += 1
    if proc.returncode != 0:
        run.problems.append(f"exit code {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return run


def check_cluster(lab: Lab, state: Path, kubectl: str) -> list[str]:
    """Units active on every machine and every worker Ready, seen from outside kbuild."""
    problems = []
    plan = lab.state.plan  # type: ignore[union-attr]
    for machine in plan.machines:
        units = UNITS[machine.role]
        states = lab.exec(machine.name, ["systemctl", "is-active", *units]).stdout.split()
        for unit, st in zip(units, states):
            if st != "active":
                problems.append(f"{machine.name}: {unit} is {st}")
    workers = sorted(m.name for m in plan.machines if m.role == "worker")
    nodes = subprocess.run([kubectl, "--kubeconfig", str(state / "admin.conf"), "get", "nodes", "--no-headers"],
                           capture_output=True, text=True, timeout=60, check=False)
    ready = sorted(ln.split()[0] for ln in nodes.stdout.splitlines() if len(ln.split()) > 1 and ln.split()[1] == "Ready")
    if ready != workers:
        problems.append(f"nodes Ready: expected {workers}, kubectl says {ready} {nodes.stderr.strip()[-200:]}")
    return problems


def dns_answered(kubectl: str, state: Path, image: str, timeout: float = 120) -> bool:
    """A pod of the test image asks CoreDNS (through the kube-dns Service, by the pod's resolv.conf) for the
    kubernetes Service until it answers; True when the pod finished with an answer within `timeout`."""
    base = [kubectl, "--kubeconfig", str(state / "admin.conf")]
    script = "until nslookup kubernetes.default.svc.cluster.local >/dev/null 2>&1; do sleep 0.2; done"
    started = subprocess.run([*base, "run", "dns-probe", f"--image={image}", "--image-pull-policy=Never",
                              "--restart=Never", "--", "sh", "-c", script],
                             capture_output=True, text=True, timeout=60, check=False)
    if started.returncode != 0:
        return False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            phase = subprocess.run([*base, "get", "pod", "dns-probe", "-o", "jsonpath={.status.phase}"],
                                   capture_output=True, text=True, timeout=30, check=False).stdout
            if phase == "Succeeded":
                return True
            time.sleep(0.2)
        return False
    finally:
        subprocess.run([*base, "delete", "pod", "dns-probe", "--wait=false"], capture_output=True, timeout=30,
                       check=False)


def fresh_lab(name: str, subnet: str) -> Lab:
    lab = Lab(name, say=lambda message: None)
    if lab.state is not None:
        lab.down()
    lab.up(1, 2, subnet)
    plan = lab.state.plan  # type: ignore[union-attr]
    # Measure from a booted machine, as a user would: not while systemd still starts its units.
    results = {m.name: lab.exec(m.name, "systemctl is-system-running --wait >/dev/null 2>&1; true")
               for m in plan.machines}
    check(results, "waiting for boot")
    return lab


def run(args: argparse.Namespace) -> int:
    mirror = mirror_command("build")
    kubectl = mirror_command("tool", "kubectl")
    test_image = mirror_command("test-image")
    args.workdir.mkdir(parents=True, exist_ok=True)
    runs: list[BootRun] = []
    payload: dict[str, object] = {"kind": "bootstrap", "machine": report.machine_info(), "note": args.note,
                                  "settings": {"runs": args.runs, "noop_runs": args.noop_runs, "mirror": mirror}}
    lab = Lab(args.lab, say=lambda message: None)
    try:
        for rep in range(1, args.runs + 1):
            lab = fresh_lab(args.lab, args.subnet)
            data = yaml.safe_load(Path(lab.status(probe=False).inventory).read_text())
            # The test image is preloaded for the DNS probe's pod (one more image import per worker).
            data["artifacts"] = {**(data.get("artifacts") or {}), "mirror": mirror,
                                 "images": {"preload": [test_image]}}
            inventory = args.workdir / f"inventory-{rep}.yaml"
            inventory.write_text(yaml.safe_dump(data, sort_keys=False))
            state = args.workdir / f"state-{rep}"
            subprocess.run(["rm", "-rf", str(state)], check=True)
            started = time.monotonic()
            first = bootstrap_once(inventory, state, "first", rep, args.workdir / f"first-{rep}.log")
            if first.exit_code == 0:
                if dns_answered(kubectl, state, test_image):
                    first.dns_seconds = round(time.monotonic() - started, 3)
                else:
                    first.problems.append("no answer from CoreDNS to a pod within 120 s of the bootstrap")
            first.problems += check_cluster(lab, state, kubectl)
            runs.append(first)
            print(f"  bootstrap {rep}: first {first.wall:.2f} s {'ok' if first.valid else first.problems}")
            for i in range(1, args.noop_runs + 1):
                noop = bootstrap_once(inventory, state, "noop", rep, args.workdir / f"noop-{rep}-{i}.log")
                if noop.changed or noop.restarted:
                    noop.problems.append(f"a no-op re-run changed {noop.changed} and restarted {noop.restarted}")
                noop.problems += check_cluster(lab, state, kubectl)
                runs.append(noop)
                print(f"  bootstrap {rep}: no-op {noop.wall:.2f} s {noop.round_trips} round trips "
                      f"{'ok' if noop.valid else noop.problems}")
            payload["runs"] = [asdict(r) for r in runs]
            report.write_json(args.out, payload)
    finally:
        if lab.state is not None:
            lab.down()
    text = bootstrap_markdown(payload)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"\nresults: {args.out} and {args.out.with_suffix('.md')}")
    return 0 if all(r.valid for r in runs) else 1


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def bootstrap_markdown(payload: dict[str, object]) -> str:
    runs = [r for r in payload.get("runs", []) if r["exit_code"] == 0 and not r["problems"]]  # type: ignore[union-attr]
    total = len(payload.get("runs", []))  # type: ignore[arg-type]
    first = [r for r in runs if r["kind"] == "first"]
    noop = [r for r in runs if r["kind"] == "noop"]
    machine = report.machine_line(payload["machine"], str(payload.get("note", "")))  # type: ignore[arg-type]
    about = (f"1 master + 2 workers (lab machines), every component real (built from source) and installed from the "
             f"local test mirror; {len(runs)} of {total} "
             "runs verified (units active on every host, every worker Ready in kubectl); medians [min–max].")
    lines = [f"Machine: {machine}", about, ""]
    lines += ["| run | wall time (s) | connections | round trips (per host) | changed | restarted |",
              "|---|---|---|---|---|---|"]
    for kind, group in (("first bootstrap", first), ("no-op re-run", noop)):
        walls = [r["wall"] for r in group]
        if not walls:
            lines.append(f"| {kind} | — | — | — | — | — |")
            continue
        med = _median(walls)
        rts = _median([r["round_trips"] for r in group]) or 0
        lines.append(f"| {kind} | {med:.2f} [{min(walls):.2f}–{max(walls):.2f}] | "
                     f"{_median([r['connections'] for r in group]):g} | {rts:g} ({rts / 3:.1f}) | "
                     f"{_median([r['changed'] for r in group]):g} | {_median([r['restarted'] for r in group]):g} |")
    phases: dict[str, dict[str, list[float]]] = {"first": {}, "noop": {}}
    for r in runs:
        for phase, seconds in (r.get("phases") or {}).items():
            phases[r["kind"]].setdefault(phase, []).append(seconds)
    if phases["first"]:
        lines += ["", "Time per phase (median seconds):", "",
                  "| phase | first bootstrap | no-op re-run |", "|---|---|---|"]
        for phase, values in phases["first"].items():
            again = phases["noop"].get(phase, [])
            lines.append(f"| {phase} | {_median(values):.2f} | {(_median(again) or 0):.2f} |")
    dns = [r["dns_seconds"] for r in first if r.get("dns_seconds") is not None]
    if dns:
        lines += ["", f"From the start of the first `kbuild bootstrap` to CoreDNS answering a pod's query for "
                      f"kubernetes.default.svc.cluster.local (the pod's own start included): "
                      f"{_median(dns):.2f} s [{min(dns):.2f}–{max(dns):.2f}]."]
    f_med, n_med = _median([r["wall"] for r in first]), _median([r["wall"] for r in noop])
    lines += ["", _target("first bootstrap under 60 s", f_med, 60), _target("no-op re-run under 3 s", n_med, 3)]
    return "\n".join(lines)


def _target(what: str, value: float | None, limit: float) -> str:
    if value is None:
        return f"- {what}: not measured"
    return f"- {what}: {'met' if value < limit else 'MISSED'} ({value:.2f} s)"
