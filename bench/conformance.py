"""Upstream's conformance tests on a kbuild cluster: `python -m bench conformance`.

Brings up a lab (1 master + 2 workers), bootstraps it from the test mirror with the e2e images imported
through kbuild's images feature (artifacts.images.files), runs ginkgo with e2e.test built from
k8s.io/kubernetes at the cluster's version (`python -m tests.mirror build --conformance`), and writes
bench/results/conformance.json and .md. The selection is the [Conformance] specs of SIGS, less those that
need an image this machine cannot build (SKIPPED, each with its reason). Ginkgo runs specs in parallel
processes; those marked [Serial] run alone at the end, as upstream's own runs do.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench import report
from bench.bootstrap import check_cluster, fresh_lab, mirror_command

SIGS = ("api-machinery", "network", "node")
FOCUS = r"\[sig-(" + "|".join(re.escape(s) for s in SIGS) + r")\].*\[Conformance\]"
# Conformance specs of those SIGs that run an image no one can build here (registry.k8s.io/e2e-test-images
# ships them; this machine reaches no image registry): spec text -> why.
SKIPPED = {
    "Should be able to support the 1.17 Sample API Server using the current Aggregator":
        "runs the sample-apiserver image (k8s.io/sample-apiserver, not built here)",
    "should create Endpoints for Pods matching a Service": "runs nginx pods",
    "should create Endpoints and EndpointSlices for Pods matching a Service": "runs nginx pods",
    "should run through the lifecycle of Pods and PodStatus": "runs agnhost 2.55 (the previous agnhost tag)",
    "pod generation should start at 1 and increment per update": "updates a pod to the nginx image",
    "should not allow privilege escalation when false": "runs the nonewprivs image",
    "should succeed with pod and pull policy of Always":
        "mounts the kitten image as a volume with pullPolicy Always: needs a registry",
}
SKIP = "|".join(re.escape(text) for text in SKIPPED)
# Failures seen here whose cause is known and is not kbuild's: spec text -> why (shown beside the failure).
EXPLAINED = {
    "via the environment": "the busybox image's ash drops environment variables with names that are not shell "
                           "identifiers, as Debian's busybox-static does (Debian reverts busybox commit 9c143ce, "
                           "which keeps them); the test's `sh -c env` then misses data-1=value-1. The mirror's "
                           "busybox is built to keep them (tests/mirror/busybox.py): this failure means that regressed",
    "as environment variable names": "as above: envFrom prefixes such as 1-, $_-, #@! make names ash drops",
    "should not allow privilege escalation when false": "runs the nonewprivs image, not built here (now left out)",
    "should succeed with pod and pull policy of Always": "pulls the kitten image from registry.k8s.io, which this "
                                                         "machine cannot reach (now left out)",
}


def explain(spec: str) -> str:
    return next((why for text, why in EXPLAINED.items() if text in spec), "not explained")


def run(args: argparse.Namespace) -> int:
    mirror = mirror_command("build")
    kubectl = mirror_command("tool", "kubectl")
    test_image = mirror_command("test-image")
    e2e = Path(mirror_command("build", "--conformance"))
    built = json.loads((e2e / "CONFORMANCE.json").read_text())
    args.workdir.mkdir(parents=True, exist_ok=True)
    lab = fresh_lab(args.lab, args.subnet)
    try:
        data = yaml.safe_load(Path(lab.status(probe=False).inventory).read_text())
        data["artifacts"] = {**(data.get("artifacts") or {}), "mirror": mirror, "images": {
            "preload": [test_image, *built["images"]],
            "files": {ref: str(e2e / path) for ref, path in built["images"].items()}}}
        inventory = args.workdir / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        state = args.workdir / "state"
        subprocess.run(["rm", "-rf", str(state)], check=True)
        boot = subprocess.run([sys.executable, "-m", "kbuild", "bootstrap", "-i", str(inventory), "--state-dir",
                               str(state)], capture_output=True, text=True, timeout=1800, check=False)
        (args.workdir / "bootstrap.log").write_text(boot.stdout + boot.stderr)
        problems = check_cluster(lab, state, kubectl)
        if boot.returncode != 0 or problems:
            print(f"error: the cluster did not come up (exit {boot.returncode}; {problems}); "
                  f"see {args.workdir / 'bootstrap.log'}", file=sys.stderr)
            return 1
        version = json.loads(subprocess.run([kubectl, f"--kubeconfig={state / 'admin.conf'}", "version", "-o", "json"],
                                            capture_output=True, text=True, timeout=60, check=True).stdout)
        started = time.monotonic()
        results = args.workdir / "report"
        subprocess.run(["rm", "-rf", str(results)], check=True)
        results.mkdir()
        argv = [str(e2e / "bin" / "ginkgo"), f"--procs={args.procs}", f"--focus={FOCUS}", f"--skip={SKIP}",
                "--timeout=3h", "--no-color", f"--output-dir={results}", "--json-report=report.json",
                str(e2e / "bin" / "e2e.test"), "--", f"--kubeconfig={state / 'admin.conf'}", "--provider=skeleton",
                f"--report-dir={results}"]
        with (args.workdir / "ginkgo.log").open("w") as log:
            code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        seconds = time.monotonic() - started
    finally:
        if not args.keep_lab:
            lab.down()
    payload = summarize(json.loads((results / "report.json").read_text()), seconds)
    payload["version"] = version["serverVersion"]["gitVersion"]
    # What e2e.test says it is (its version stamp), beside what the cluster says.
    payload["e2e_test_version"] = subprocess.run([str(e2e / "bin" / "e2e.test"), "--version"], capture_output=True,
                                                 text=True, timeout=60, check=False).stdout.strip()
    payload.update(machine=report.machine_info(), note=args.note, ginkgo_exit=code, ginkgo_version=built["ginkgo"],
                   command=" ".join(argv[:7] + ["e2e.test", "--", "--provider=skeleton"]))
    report.write_json(args.out, payload)
    text = markdown(payload)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"\nresults: {args.out} and {args.out.with_suffix('.md')}; ginkgo's log: {args.workdir / 'ginkgo.log'}")
    return 0 if payload["failed"] == 0 and code == 0 else 1


def spec_name(spec: dict) -> str:
    return " ".join([*(spec.get("ContainerHierarchyTexts") or []), spec.get("LeafNodeText", "")]).strip()


def summarize(suites: list[dict], seconds: float) -> dict:
    """Counts over the selected specs (what the focus and skip let through) from ginkgo's JSON report."""
    focus, skip = re.compile(FOCUS), re.compile(SKIP)
    selected = [s for suite in suites for s in suite.get("SpecReports") or []
                if s.get("LeafNodeType") == "It" and focus.search(spec_name(s)) and not skip.search(spec_name(s))]
    by_state: dict[str, list[dict]] = {}
    for spec in selected:
        by_state.setdefault(spec.get("State", ""), []).append(spec)
    failed = [s for state, specs in by_state.items() if state not in ("passed", "skipped") for s in specs]
    suite = next((s.get("SuiteDescription", "") for s in suites), "")
    per_sig = {}
    for sig in SIGS:
        mine = [s for s in selected if f"[sig-{sig}]" in spec_name(s)]
        per_sig[sig] = {"selected": len(mine), "passed": sum(s.get("State") == "passed" for s in mine),
                        "failed": sum(s in failed for s in mine),
                        "skipped": sum(s.get("State") == "skipped" for s in mine)}
    return {
        "kind": "conformance", "suite": suite,
        "selection": {"focus": FOCUS, "skip": SKIP, "sigs": list(SIGS), "left_out": SKIPPED},
        "selected": len(selected), "passed": len(by_state.get("passed", [])), "failed": len(failed),
        "skipped": len(by_state.get("skipped", [])), "seconds": round(seconds, 1), "per_sig": per_sig,
        "failures": [{"spec": spec_name(s), "state": s.get("State"), "explanation": explain(spec_name(s)),
                      "message": ((s.get("Failure") or {}).get("Message") or "")[:600]} for s in failed],
    }


def markdown(payload: dict) -> str:
    lines = [f"Machine: {report.machine_line(payload['machine'], str(payload.get('note', '')))}",
             f"Kubernetes {payload['version']} (kbuild, 1 master + 2 workers on lab machines); upstream's e2e.test "
             f"and ginkgo {payload['ginkgo_version']} built from source; `[Conformance]` specs of "
             f"{', '.join('sig-' + s for s in SIGS)}, less {len(payload['selection']['left_out'])} that need images "
             "not built here. "
             f"{payload['seconds'] / 60:.1f} min.", "",
             "| SIG | selected | passed | failed | skipped |", "|---|---:|---:|---:|---:|"]
    for sig, row in payload["per_sig"].items():
        lines.append(f"| sig-{sig} | {row['selected']} | {row['passed']} | {row['failed']} | {row['skipped']} |")
    lines.append(f"| **all** | {payload['selected']} | {payload['passed']} | {payload['failed']} | "
                 f"{payload['skipped']} |")
    left_out = payload["selection"]["left_out"]
    lines += ["", "Left out (image not built here):", *[f"- {spec}: {why}" for spec, why in left_out.items()]]
    if payload["failures"]:
        lines += ["", "Failed, and why:", *[f"- {f['spec']}: {explain(f['spec'])}" for f in payload["failures"]]]
    return "\n".join(lines)
