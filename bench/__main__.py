"""`python -m bench engines|bootstrap|conformance|table`: run the benchmarks (as root, on lab machines) and print their tables."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import report
from bench.harness import EngineBench, RunRecord, Summary, summarize, to_json
from bench.hosts import BenchLab, held_while_running
from bench.plot import noop_plot
from bench.tools import TOOLS
from bench.workload import Workload
from kbuild.errors import KbuildError

RESULTS = Path(__file__).parent / "results"
DEFAULT_WORKDIR = Path("/var/tmp/kbuild-bench")
SHARED_NOTE = "The machine's 2 cores were shared with other engineers' work while this ran."


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: give host counts like 1,5,20,50") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("--sizes: every host count must be at least 1")
    return sizes


def _tools(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in TOOLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--tools: unknown {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(TOOLS)}")
    return names


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    eng = commands.add_parser("engines", help="kbuild's engine vs pyinfra vs Ansible on N lab hosts")
    eng.add_argument("--sizes", type=_sizes, default=_sizes("1,3,5,20,50"), help="host counts (default 1,3,5,20,50)")
    eng.add_argument("--runs", type=int, default=3, help="repetitions per tool, size and scenario (median reported)")
    eng.add_argument("--files", type=int, default=20, help="templated files per host (M)")
    eng.add_argument("--blob-mib", type=float, default=4, help="size of the binary in MiB")
    eng.add_argument("--tools", type=_tools, default=list(TOOLS), help="comma-separated: kbuild,pyinfra,ansible")
    eng.add_argument("--ansible-max", type=int, default=100,
                     help="run Ansible only up to this many hosts (default 100: it takes minutes a run beyond)")
    eng.add_argument("--lab", default="kb9bench", help="lab name (machines are reused if it exists)")
    eng.add_argument("--subnet", default="198.18.0.192/26", help="subnet for a new lab (room for the largest size)")
    eng.add_argument("--existing", action="store_true",
                     help="use an existing lab as it is (first N machines) and leave it as found; never create one")
    eng.add_argument("--keep-lab", action="store_true", help="leave the lab up afterwards")
    eng.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="run directories, logs, the binary")
    eng.add_argument("--out", type=Path, default=RESULTS / "engines.json", help="JSON results (Markdown next to it)")
    eng.add_argument("--note", default=SHARED_NOTE, help="a sentence about the conditions, printed with the table")

    boot = commands.add_parser("bootstrap", help="kbuild bootstrap of 1 master + 2 workers from the test mirror")
    boot.add_argument("--runs", type=int, default=3, help="first bootstraps, each on a fresh lab")
    boot.add_argument("--noop-runs", type=int, default=5, help="no-op re-runs after each first bootstrap")
    boot.add_argument("--lab", default="kb9boot", help="lab name (brought up fresh for every first bootstrap)")
    boot.add_argument("--subnet", default="198.18.0.240/28")
    boot.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "bootstrap")
    boot.add_argument("--out", type=Path, default=RESULTS / "bootstrap.json")
    boot.add_argument("--note", default=SHARED_NOTE)

    conf = commands.add_parser("conformance", help="upstream's [Conformance] e2e tests on a kbuild lab cluster")
    conf.add_argument("--lab", default="conf1", help="lab name (brought up fresh, taken down afterwards)")
    # Outside the integration tests' pool (198.18.0.32-255), which another session on the machine may be using.
    conf.add_argument("--subnet", default="198.18.0.16/28")
    conf.add_argument("--procs", type=int, default=4, help="ginkgo's parallel processes ([Serial] specs run alone)")
    conf.add_argument("--keep-lab", action="store_true", help="leave the lab up afterwards")
    conf.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "conformance")
    conf.add_argument("--out", type=Path, default=RESULTS / "conformance.json")
    conf.add_argument("--note", default=SHARED_NOTE)

    table = commands.add_parser("table", help="print the tables of results files again (engine results are merged)")
    table.add_argument("files", type=Path, nargs="+")
    table.add_argument("--out", type=Path, help="write the merged engine results here (JSON, Markdown next to it)")
    table.add_argument("--note", help="replace the note about the conditions (say, the load seen across merged runs)")
    table.add_argument("--newer", type=Path, action="append", default=[], metavar="FILE",
                       help="engine results whose tool and size cells replace those of FILES (repeatable)")
    return top


def engines(args: argparse.Namespace) -> int:
    tools = [TOOLS[name]() for name in args.tools]
    for tool in tools:
        why = tool.available()
        if why is not None:
            print(f"error: {tool.name}: {why}", file=sys.stderr)
            return 2
    lab = BenchLab(args.lab)
    if args.existing:
        if not lab.exists:
            print(f"error: --existing: no lab named {args.lab!r}", file=sys.stderr)
            return 2
    else:
        lab.ensure(max(args.sizes), args.subnet)
    hosts = lab.hosts()
    if len(hosts) < max(args.sizes):
        print(f"error: lab {args.lab!r} has {len(hosts)} machines, fewer than {max(args.sizes)}", file=sys.stderr)
        return 2
    workload = Workload(files=args.files, blob_bytes=int(args.blob_mib * 1024 * 1024))
    bench = EngineBench(lab, tools, args.workdir, workload=workload, runs=args.runs,
                        max_hosts={"ansible": args.ansible_max})
    payload: dict[str, object] = {
        "kind": "engines", "machine": report.machine_info(), "note": args.note,
        "settings": {"sizes": args.sizes, "runs": args.runs, "files": args.files, "blob_bytes": workload.blob_bytes,
                     "lab": args.lab, "ansible_max": args.ansible_max},
        "tools": {t.name: t.version() for t in tools},
    }
    try:
        for n in args.sizes:
            print(f"== {n} host{'s' if n > 1 else ''}")
            bench.run_size(hosts[:n], lab.access())
            summaries = summarize(bench.records)
            payload.update(records=to_json(bench.records), summary=summaries,
                           login_floor_ms={str(size): values for size, values in bench.login_floors.items()})
            report.write_json(args.out, payload)  # after every size, so a long run leaves partial results
    finally:
        if args.existing:
            lab.restore(hosts[:max(args.sizes)])
        elif not args.keep_lab:
            lab.down()
    text = engine_markdown(payload, summarize(bench.records))
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    png = noop_plot(summarize(bench.records), args.out.with_name(args.out.stem + "-noop.png"))
    print(f"\nresults: {args.out} and {args.out.with_suffix('.md')}" + (f", plot {png}" if png else ""))
    return 0 if all(r.valid for r in bench.records) else 1


def engine_markdown(payload: dict[str, object], summaries: list[Summary]) -> str:
    settings = payload["settings"]
    assert isinstance(settings, dict)
    tools = payload.get("tools", {})
    assert isinstance(tools, dict)
    lines = [
        f"Machine: {report.machine_line(payload['machine'], str(payload.get('note', '')))}",  # type: ignore[arg-type]
        f"Workload per host: {settings['files']} templated files, a directory, a "
        f"{settings['blob_bytes'] / 1048576:g} MiB binary, a systemd unit enabled and started, a sysctl. "
        f"Median of {_runs(summaries)}, seconds [min–max]. Versions: "
        + ", ".join(f"{k} {v}" for k, v in tools.items()) + ".",
        "",
        report.engine_tables(summaries),
        *report.login_floor_lines(payload.get("login_floor_ms", {})),  # type: ignore[arg-type]
        "",
        *[f"- {line}" for line in report.targets(summaries)],
    ]
    return "\n".join(lines)


def merge(payloads: list[dict[str, object]], newer: Sequence[dict[str, object]] = ()) -> tuple[dict[str, object],
                                                                                              list[Summary]]:
    """One engine result from several runs of the harness (say, N=50 run apart): records pooled, settings of the first.

    A tool's runs at a size in `newer` (say, after a change to the tool) replace all of its pooled runs at that size."""
    merged = dict(payloads[0])
    replacing = [RunRecord(**r) for p in newer for r in p.get("records", [])]  # type: ignore[union-attr]
    superseded = {(r.tool, r.hosts) for r in replacing}
    records = [record for record in (RunRecord(**r) for p in payloads for r in p.get("records", []))  # type: ignore[union-attr]
               if (record.tool, record.hosts) not in superseded] + replacing
    tools: dict[str, object] = {}
    floors: dict[str, list[float]] = {}  # every measurement of every payload, per size
    for p in [*payloads, *newer]:
        tools.update(p.get("tools", {}))  # type: ignore[arg-type]
        for size, values in p.get("login_floor_ms", {}).items():  # type: ignore[union-attr]
            # (results written before the measurements were kept hold their median alone)
            floors.setdefault(size, []).extend(values if isinstance(values, list) else [values])
    merged.update(tools=tools, records=to_json(records), login_floor_ms=floors)
    summaries = summarize(records)
    merged["summary"] = summaries
    return merged, summaries


def _runs(summaries: list[Summary]) -> str:
    counts = sorted({s.runs for s in summaries}) or [0]
    return f"{counts[0]} runs" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} runs per cell"


def table(args: argparse.Namespace) -> int:
    payloads = [json.loads(f.read_text()) for f in args.files]
    newer = [json.loads(f.read_text()) for f in args.newer]
    if all(p.get("kind") == "engines" for p in [*payloads, *newer]):
        merged, summaries = merge(payloads, newer)
        if args.note:
            merged["note"] = args.note
        text = engine_markdown(merged, summaries)
        if args.out is not None:
            report.write_json(args.out, merged)
            args.out.with_suffix(".md").write_text(text + "\n")
            noop_plot(summaries, args.out.with_name(args.out.stem + "-noop.png"))
        print(text)
        return 0
    from bench.bootstrap import bootstrap_markdown

    for payload in payloads:
        print(bootstrap_markdown(payload))
    return 0


def run_command(args: argparse.Namespace) -> int:
    if args.command == "engines":
        return engines(args)
    if args.command == "bootstrap":
        from bench.bootstrap import run as run_bootstrap

        return run_bootstrap(args)
    if args.command == "conformance":
        from bench.conformance import run as run_conformance

        return run_conformance(args)
    return table(args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Commands that bring a lab up hold its subnet while they run (a reused lab's own machines are
    # kept clear of by their addresses); with --existing the lab is the user's and is left alone.
    brings_up_a_lab = args.command != "table" and not getattr(args, "existing", False)
    try:
        with held_while_running(args.lab, args.subnet) if brings_up_a_lab else contextlib.nullcontext():
            return run_command(args)
    except KbuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
