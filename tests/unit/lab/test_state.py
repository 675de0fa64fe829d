"""The lab's record of itself survives a round trip and recognises its own shape."""

from __future__ import annotations

import stat

import pytest

from kbuild.lab.errors import LabError
from kbuild.lab.topology import make_plan
from kbuild.lab.state import LabState


def test_round_trip_and_shape(tmp_path):
    state = LabState("lab", 1, 2, "198.18.0.0/24", "kb-lab", "/c/images/x/rootfs", "2026-01-01T00:00:00Z")
    path = tmp_path / "lab.json"
    state.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = LabState.load(path)
    assert loaded == state
    assert loaded.same_shape(make_plan("lab", 1, 2))
    assert not loaded.same_shape(make_plan("lab", 1, 3))
    assert loaded.describe() == "1 master and 2 workers on 198.18.0.0/24"
    assert [m.name for m in loaded.plan.machines] == ["lab-master-1", "lab-worker-1", "lab-worker-2"]


def test_missing_and_damaged_state(tmp_path):
    assert LabState.load(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LabError, match="`kbuild lab down` still cleans up"):
        LabState.load(tmp_path / "bad.json")
