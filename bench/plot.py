"""The no-op plot: median no-op seconds (min-max bars) against host count, one line per tool (PNG, matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.harness import Summary

TOOL_ORDER = ("kbuild", "kbuild-kept", "pyinfra", "ansible")  # kbuild-kept: with ssh.persist


def noop_plot(summaries: Sequence[Summary], path: Path) -> Path | None:
    """Write the plot to `path`; None (and nothing written) when no no-op run was valid."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a lab host
    from matplotlib import pyplot

    rows = [s for s in summaries if s.scenario == "noop" and s.median is not None]
    if not rows:
        return None
    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=120)
    for tool in [t for t in TOOL_ORDER if any(s.tool == t for s in rows)]:
        points = sorted((s.hosts, s.median, s.low, s.high) for s in rows if s.tool == tool)
        hosts = [p[0] for p in points]
        medians = [p[1] for p in points]
        below = [p[1] - p[2] for p in points]
        above = [p[3] - p[1] for p in points]
        axes.errorbar(hosts, medians, yerr=[below, above], marker="o", capsize=3, label=tool)
    axes.set_xlabel("hosts")
    axes.set_ylabel("no-op run, seconds (median, min–max)")
    axes.set_title("No-op re-run time against host count")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
    return path
