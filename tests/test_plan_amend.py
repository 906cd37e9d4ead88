"""Fixing the plan without starting over: ``decide retry --plan PLAN``.

An intended surface change fails its batch; the operator adds it to the
batch's ``expected_surface_changes`` and decides ``retry`` with the amended
plan: the change is recorded (``PlanAmended``, with what differs) and the next
attempt runs the amended batch, so the run completes without an abort. Batches
already verified never change."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from recovery_core import RecoveryApp
from support import (
    cli_json,
    git,
    run_cli,
    waiting_runner,
    write_file_action,
    write_plan,
)

#: app/calc.py with ``add`` renamed: an intended change of the public surface.
RENAMED = "def plus(a: int, b: int) -> int:\n    return a + b\n"


def _plan(expected: list[str] | None = None) -> dict[str, Any]:
    second: dict[str, Any] = {
        "batch_id": "rename",
        "actions": [write_file_action("rename", "app/calc.py", RENAMED)],
        "validation": [{"name": "surface", "kind": "surface", "modules": ["app"]}],
        "commit_strategy": "commit",
    }
    if expected is not None:
        second["expected_surface_changes"] = expected
    return {
        "plan_id": "amend",
        "batches": [
            {
                "batch_id": "first",
                "actions": [write_file_action("one", "app/one.py", "ONE = 1\n")],
                "validation": [{"name": "syntax", "kind": "syntax"}],
                "commit_strategy": "commit",
            },
            second,
        ],
    }


def _store(repo: Path) -> RecoveryApp:
    return RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")


def test_an_intended_surface_change_is_accepted_by_retry_with_an_amended_plan(
    repo: Path,
) -> None:
    write_plan(repo / "plan.json", _plan())
    halted = run_cli("run", "plan.json", cwd=repo)
    assert halted.returncode == 3, halted.stderr
    assert "app.calc.add" in halted.stderr

    write_plan(repo / "amended.json", _plan(["app.calc.add"]))
    decided = run_cli(
        "decide", "latest", "rename", "retry", "--plan", "amended.json", cwd=repo
    )
    assert decided.returncode == 0, decided.stderr
    assert "amended plan amended.json" in decided.stdout
    done = run_cli("resume", "latest", cwd=repo)
    assert done.returncode == 0, done.stderr

    status = cli_json("status", cwd=repo)
    assert status["state"] == "completed"
    assert [b["status"] for b in status["batches"]] == ["verified", "verified"]
    assert git(repo, "show", "HEAD:app/calc.py") == RENAMED
    app = _store(repo)
    history = app.history(status["run_id"])
    names = [type(e).__name__ for e in history]
    assert "RunAborted" not in names
    amended = [e for e in history if type(e).__name__ == "PlanAmended"]
    assert len(amended) == 1
    event: Any = amended[0]
    assert event.changes == [
        {
            "batch_id": "rename",
            "change": "changed",
            "fields": ["expected_surface_changes"],
        }
    ]
    assert event.operator == "test-operator"
    assert event.plan_path == str((repo / "amended.json").resolve())
    assert names.index("PlanAmended") == names.index("OperatorDecided") - 1
    # The run's plan is the amended one: `run` with it finds nothing to do
    # anew, and `verify`-like reading of the chain still holds.
    assert app.recorded_plan(status["run_id"]).batch("rename").expected_surface_changes
    app.check_chain(status["run_id"])
    amended_file = json.loads((repo / "amended.json").read_text())
    assert amended_file["batches"][1]["status"] == "verified"


def test_a_verified_batch_cannot_be_amended_and_nothing_is_recorded(
    repo: Path,
) -> None:
    write_plan(repo / "plan.json", _plan())
    assert run_cli("run", "plan.json", cwd=repo).returncode == 3
    app = _store(repo)
    run_id = cli_json("status", cwd=repo)["run_id"]
    before = len(app.history(run_id))
    changed = _plan(["app.calc.add"])
    changed["batches"][0]["validation"] = []  # the verified batch, changed
    write_plan(repo / "bad.json", changed)
    refused = run_cli(
        "decide", "latest", "rename", "retry", "--plan", "bad.json", cwd=repo
    )
    assert refused.returncode == 2, refused.stderr
    assert "batch first is verified: it cannot change" in refused.stderr
    same = run_cli(
        "decide", "latest", "rename", "skip", "--plan", "plan.json", cwd=repo
    )
    assert same.returncode == 2, same.stderr
    assert "with a retry decision, not with skip" in same.stderr
    assert len(_store(repo).history(run_id)) == before
    assert cli_json("status", cwd=repo)["state"] == "halted"


def test_a_waiting_runner_follows_the_amended_plan(repo: Path) -> None:
    """``run --wait`` halts; the operator decides retry with an amended plan
    from another process; the waiting runner runs the amended batch."""
    write_plan(repo / "plan.json", _plan())
    runner = waiting_runner(repo)
    try:
        write_plan(repo / "plan.json", _plan(["app.calc.add"]))  # edited in place
        decided = run_cli(
            "decide", "latest", "rename", "retry", "--plan", "plan.json", cwd=repo
        )
        assert decided.returncode == 0, decided.stderr
        _, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 0, err
    assert "following the amended plan" in err
    assert cli_json("status", cwd=repo)["state"] == "completed"
