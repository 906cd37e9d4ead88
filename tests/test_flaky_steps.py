"""A flaky test suite, through the real command line: a command step with
``retries`` is run again alone when it fails; one that fails then passes is
recorded as passed and as flaky, with its failed try kept in the events."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from recovery_core import RecoveryApp
from support import cli_json, make_repo, run_cli, write_plan


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "work")


def flaky_step(marker: Path, *, fails: int, retries: int) -> dict[str, Any]:
    """A command step that fails its first ``fails`` runs (counted in
    ``marker``, outside the workspace), then passes."""
    code = (
        "import pathlib, sys; m = pathlib.Path(sys.argv[1]); "
        "n = int(m.read_text()) + 1 if m.exists() else 1; m.write_text(str(n)); "
        f"sys.exit(f'flaky failure {{n}}' if n <= {fails} else 0)"
    )
    return {
        "name": "unit_tests",
        "kind": "command",
        "run": [sys.executable, "-c", code, str(marker)],
        "retries": retries,
    }


def plan_with(step: dict[str, Any], action_marker: Path) -> dict[str, Any]:
    count = (
        "import pathlib, sys; m = pathlib.Path(sys.argv[1]); "
        "m.write_text(m.read_text() + 'x' if m.exists() else 'x')"
    )
    return {
        "plan_id": "flaky",
        "batches": [
            {
                "batch_id": "b1",
                "actions": [
                    {
                        "name": "gen",
                        "run": [sys.executable, "-c", count, str(action_marker)],
                    }
                ],
                "validation": [{"name": "syntax", "kind": "syntax"}, step],
            }
        ],
    }


def events(repo: Path, run_id: str) -> list[Any]:
    app = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    try:
        return list(app.history(run_id))
    finally:
        app.close()


def test_a_step_that_fails_then_passes_is_passed_and_flaky(
    repo: Path, tmp_path: Path
) -> None:
    marker, built = tmp_path / "tries", tmp_path / "built"
    plan = plan_with(flaky_step(marker, fails=1, retries=2), built)
    write_plan(tmp_path / "plan.json", plan)
    done = run_cli("run", tmp_path / "plan.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "post_build_validation.unit_tests failed on try 1" in done.stderr
    assert marker.read_text() == "2"  # the step ran twice
    assert built.read_text() == "x"  # the action once: only the step reran
    view = cli_json("status", cwd=repo)
    batch = view["batches"][0]
    assert (batch["status"], batch["attempts"]) == ("verified", 1)
    assert batch["flaky_steps"] == ["unit_tests"]
    history = events(repo, view["run_id"])
    retried = [e for e in history if type(e).__name__ == "StepRetried"]
    assert len(retried) == 1
    assert (retried[0].step, retried[0].tries, retried[0].exit_code) == (
        "unit_tests",
        1,
        1,
    )
    assert "flaky failure 1" in retried[0].error
    assert not [e for e in history if type(e).__name__ == "StepFailed"]


def test_a_step_that_fails_every_try_fails_the_attempt(
    repo: Path, tmp_path: Path
) -> None:
    marker, built = tmp_path / "tries", tmp_path / "built"
    plan = plan_with(flaky_step(marker, fails=99, retries=2), built)
    write_plan(tmp_path / "plan.json", plan)
    done = run_cli("run", tmp_path / "plan.json", cwd=repo)
    assert done.returncode == 3, done.stderr
    assert marker.read_text() == "3"  # 1 + 2 retries
    view = cli_json("status", cwd=repo)
    batch = view["batches"][0]
    assert batch["status"] == "failed"
    assert batch["flaky_steps"] == []
    assert "flaky failure 3" in batch["failure"]["error"]
    history = events(repo, view["run_id"])
    assert [e.tries for e in history if type(e).__name__ == "StepRetried"] == [1, 2]


def test_without_retries_a_step_runs_once(repo: Path, tmp_path: Path) -> None:
    marker, built = tmp_path / "tries", tmp_path / "built"
    plan = plan_with(flaky_step(marker, fails=1, retries=0), built)
    write_plan(tmp_path / "plan.json", plan)
    done = run_cli("run", tmp_path / "plan.json", cwd=repo)
    assert done.returncode == 3, done.stderr
    assert marker.read_text() == "1"


def test_retries_must_be_a_small_whole_number(repo: Path, tmp_path: Path) -> None:
    marker, built = tmp_path / "tries", tmp_path / "built"
    for bad, said in ((-1, "expected 0 to 10 retries, got -1"), (2.5, "whole number")):
        step = flaky_step(marker, fails=0, retries=0)
        step["retries"] = bad
        write_plan(tmp_path / "plan.json", plan_with(step, built))
        done = run_cli("run", tmp_path / "plan.json", cwd=repo)
        assert done.returncode == 2
        assert f"batches[0].validation[1].retries: {said}" in done.stderr or (
            said in done.stderr and "retries" in done.stderr
        ), done.stderr
