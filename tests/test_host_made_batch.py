"""A batch the host application makes (no actions) is carried on by its host:
``recovery resume`` after a retry decision does not burn an attempt validating
a change nobody made, and the halt says how to go on."""

from __future__ import annotations

import sys
from pathlib import Path

from support import cli_json, run_cli, write_plan


def test_resume_of_a_host_made_batch_after_retry_does_not_burn_an_attempt(
    repo: Path,
) -> None:
    plan = write_plan(
        repo / "plan.json",
        {
            "plan_id": "hosted",
            "batches": [
                {
                    "batch_id": "made-by-host",
                    "validation": [
                        {
                            "name": "check",
                            "kind": "command",
                            "run": [sys.executable, "-c", "raise SystemExit(1)"],
                        }
                    ],
                }
            ],
        },
    )
    first = run_cli("run", plan, cwd=repo)
    assert first.returncode == 3, first.stderr
    assert "made by the host application" in first.stderr  # the notification
    run_id = cli_json("status", "latest", cwd=repo)["run_id"]
    decided = run_cli("decide", run_id, "made-by-host", "retry", cwd=repo)
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", run_id, cwd=repo)
    assert resumed.returncode == 3, resumed.stderr
    assert "carried out by the host" in resumed.stderr
    status = cli_json("status", run_id, cwd=repo)
    (batch,) = status["batches"]
    assert (batch["status"], batch["attempts"]) == ("failed", 1)
    assert status["decision"]["decision"] == "retry"
    assert not status["decision"]["carried_out"]
    # The recorded retry stands: one decision per failure.
    skipped = run_cli("decide", run_id, "made-by-host", "skip", cwd=repo)
    assert skipped.returncode == 5  # a decision is recorded already
