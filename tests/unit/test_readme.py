"""The README's two set-up commands are there, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def quick_start_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", quick_start, re.S)


def test_quick_start_brings_up_a_lab_and_bootstraps_it():
    main_job = quick_start_blocks()[0]
    assert "kbuild lab up" in main_job and "kbuild bootstrap -i" in main_job
    assert "apt-get install" in main_job and "pip install" in main_job  # it installs what it needs


def test_ci_runs_the_readmes_test_command():
    test_command = next(b.strip() for b in quick_start_blocks() if "tests/run.sh" in b)
    assert test_command == "sudo tests/run.sh"
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^exec tests/run\.sh\s*$", ci, re.M), ci
    assert (REPO / ".ci" / "run").stat().st_mode & 0o111 and (REPO / "tests" / "run.sh").stat().st_mode & 0o111
