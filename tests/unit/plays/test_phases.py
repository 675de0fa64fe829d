"""Phases declare what they need and provide: a --skip-phases that leaves a phase without its input is refused
(exit 2) naming that phase, before anything runs (issue 12: `--skip-phases artifacts` was KeyError('inputs'))."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.cli import run
from kbuild.errors import ExitCode, KbuildError, UsageError
from kbuild.plays import bootstrap
from kbuild.plays.desired import INPUTS
from kbuild.plays.phases import Context, Phase, Slot, State, check_skip, run_phases
from tests.unit.fakes import FakeSession

NEEDING_INPUTS = ["etcd", "control-plane", "cluster-objects", "nodes", "addons"]


def test_every_need_of_bootstrap_is_provided_by_an_earlier_phase() -> None:
    provided: set[Slot] = set()
    for phase in bootstrap.PHASES:
        assert set(phase.needs) <= provided, f"{phase.name} needs what no earlier phase provides"
        provided |= set(phase.provides)
    assert [p.name for p in bootstrap.PHASES if INPUTS in p.needs] == NEEDING_INPUTS


def test_skipping_artifacts_is_refused_naming_every_phase_that_needs_it() -> None:
    with pytest.raises(UsageError) as refused:
        check_skip(bootstrap.PHASES, {"artifacts"})
    assert refused.value.exit_code == ExitCode.BAD_INPUT
    text = str(refused.value)
    assert (f"phases {', '.join(NEEDING_INPUTS)} need every host's binaries, image archives and rendered files "
            "(fetched and verified), which phase artifacts provides") in text
    assert f"skip {', '.join(NEEDING_INPUTS)} as well, or do not skip artifacts" in text


def test_skipping_a_provider_with_everything_that_needs_it_is_fine() -> None:
    check_skip(bootstrap.PHASES, {"artifacts", *NEEDING_INPUTS})
    check_skip(bootstrap.PHASES, {"preflight", "upgrade", "addons"})  # nothing needs those
    with pytest.raises(UsageError, match="phase addons needs"):
        check_skip(bootstrap.PHASES, {"artifacts", "etcd", "control-plane", "cluster-objects", "nodes"})


def test_an_unknown_phase_is_bad_input_listing_the_phases() -> None:
    with pytest.raises(UsageError, match="unknown phase artefacts; phases are preflight, pki, upgrade, artifacts"):
        check_skip(bootstrap.PHASES, {"artefacts"})


def test_run_phases_refuses_before_running_any_phase() -> None:
    ran: list[str] = []
    built: Slot[int] = Slot("built", "the built thing")
    phases = [Phase("first", "makes it", lambda ctx: ran.append("first"), provides=(built,)),
              Phase("second", "uses it", lambda ctx: ran.append("second"), needs=(built,))]
    session = FakeSession([])
    ctx = Context(cluster=None, session=session)  # type: ignore[arg-type]  # no phase gets to use it
    with pytest.raises(UsageError, match="phase second needs the built thing, which phase first provides"):
        run_phases(ctx, phases, skip={"first"})
    assert ran == [] and session.events == []


def test_state_hands_a_value_on_and_names_a_missing_one() -> None:
    built: Slot[list[str]] = Slot("built", "the built thing")
    state = State()
    assert state.find(built) is None
    with pytest.raises(KbuildError, match=r"the built thing \(built\) was needed before a phase provided it"):
        state.get(built)
    state.put(built, ["x"])
    assert state.get(built) == ["x"] and state.find(built) == ["x"]


def test_bootstrap_skip_phases_artifacts_exits_2_with_the_need(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("cluster: {name: t}\nhosts:\n  m1: {address: 198.18.0.10, roles: [etcd, control-plane]}\n")
    assert run(["bootstrap", "-i", str(inventory), "--skip-phases", "artifacts"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "internal error" not in err
    assert "phases etcd, control-plane, cluster-objects, nodes, addons need every host's binaries" in err
    assert not (tmp_path / ".kbuild").exists()  # refused before a state directory or a host was touched
