"""`molecule test` on molecule/default, end to end: lab up, bootstrap, idempotence, kbuild status, lab down.

Real parts: molecule and ansible-core (PyPI, the test extra) with the scenario's "default" (delegated)
driver; kbuild's lab (systemd-nspawn machines with systemd and sshd); kbuild bootstrap and status
over SSH; every cluster component from the test mirror (built from source).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def test_molecule_scenario(lab_factory, built_mirror, tmp_path):
    molecule = VENV_BIN / "molecule"
    if not molecule.exists():
        pytest.fail("molecule is missing: install the test extra (pip install -e '.[test]')", pytrace=False)
    # A copy of the scenario in its own project directory: molecule keys its ephemeral directory
    # (state, inventory, kbuild's state dir) by project, so parallel sessions never share one.
    project = tmp_path / "project"
    shutil.copytree(REPO / "molecule", project / "molecule")
    name, subnet = lab_factory.reserve("mol", 3)  # molecule's `kbuild lab up` makes it: clear of every other lab
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KBUILD_MOLECULE_", "ANSIBLE_", "MOLECULE_"))}
    env.update(
        KBUILD=str(VENV_BIN / "kbuild"), KBUILD_MOLECULE_LAB=name, KBUILD_MOLECULE_SUBNET=subnet,
        KBUILD_MOLECULE_MIRROR=str(built_mirror.root), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1", NO_COLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable, HOME=str(tmp_path / "home"),
    )
    try:
        result = subprocess.run([str(molecule), "test"], cwd=project, env=env, capture_output=True, text=True,
                                timeout=900, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([str(VENV_BIN / "kbuild"), "lab", "down", "--name", name], capture_output=True, timeout=120)
        lab_factory.forget(name)
    log = result.stdout + result.stderr
    # kbuild's own failure (its events are JSON lines inside Ansible's output) first, then the tail.
    failures = re.findall(r"(?:failed at gate|failed at|error:)[^\"\\]{0,600}", log)
    assert result.returncode == 0, "\n".join(failures[-5:]) + "\n---\n" + log[-4000:]
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert re.search(rf"{step}\W+Executed: Successful", log), f"{step} did not succeed:\n{log[-4000:]}"
    recaps = re.findall(r"^localhost\s*:\s*ok=\d+\s+changed=(\d+)", log, re.M)
    # destroy (nothing there), create, converge (changes), idempotence (none), verify (none), destroy
    assert [int(c) for c in recaps[2:5]] == [1, 0, 0], recaps
    assert "healthy: every unit active" in log
    assert not (Path("/var/lib/kbuild/lab") / name).exists()
