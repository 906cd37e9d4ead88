"""The failure record is one class: what the StepFailed event carries is what
the run's state, the failure log, the notification and ``status --json`` show,
field for field, so that a field added to the record reaches all of them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs

from recovery_adapters import GitWorkspace
from recovery_adapters.stores import store_for_workspace
from recovery_core import (
    Failure,
    Halted,
    Notification,
    OpenDecision,
    parse_plan,
)
from recovery_core.records import failure_json
from recovery_core.run import Run
from support import cli_json, make_repo

PLAN: dict[str, Any] = {
    "plan_id": "record",
    "batches": [
        {
            "batch_id": "b1",
            "component": "app/calc.py",
            "actions": [],
            "validation": [
                {
                    "name": "unit_tests",
                    "kind": "command",
                    "run": [sys.executable, "-c", "raise SystemExit('no, 3')"],
                }
            ],
        }
    ],
}


class Inbox:
    """A notifier that keeps what it is told."""

    channel = "inbox"

    def __init__(self) -> None:
        self.received: list[Notification] = []

    def notify(self, notification: Notification) -> None:
        self.received.append(notification)


def test_the_record_reaches_the_event_the_log_the_notification_and_status(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    app = store_for_workspace(repo)
    inbox = Inbox()
    runner = app.runner(
        parse_plan(PLAN), workspace=GitWorkspace(repo), notifiers=[inbox]
    )
    with runner.batch("b1") as session:
        (repo / "app" / "calc.py").write_text("def add(a, b):\n    return 3\n")
    halted = session.outcome
    assert isinstance(halted, Halted)
    failure = halted.failure
    assert isinstance(failure, Failure)
    assert failure.step_id == "post_build_validation.unit_tests"
    assert failure.error.endswith("exited with code 1: no, 3")
    assert failure.failure_reason and failure.quarantine_ref
    names = [f.name for f in attrs.fields(Failure)]
    # A field added to the record (here `summary`, added in one edit of the
    # class) reaches every place below with no other change.
    gist = failure.error.splitlines()[0]
    assert failure.summary == gist

    # The event carries the record as it stood when the step failed.
    (event,) = [e for e in app.history(halted.run_id) if isinstance(e, Run.StepFailed)]
    assert event.record == attrs.evolve(
        failure, failure_reason=None, quarantine_ref=None
    )
    assert sorted(event.failure) == sorted(names)
    assert event.failure["summary"] == gist

    # The notification and the decision open now.
    (note,) = inbox.received
    assert note.failure == failure
    assert note.open == OpenDecision("b1", 1, ("retry", "skip", "abort"))
    assert note.as_json()["failure"] == failure_json(failure)
    assert note.as_json()["failure"]["summary"] == gist

    # The failure log: every field of the record, at the top or in `state`.
    (entry,) = app.failure_log(run_id=halted.run_id)
    assert entry.failure == failure
    line = entry.as_json()
    logged = {**line["state"], **{k: line[k] for k in line if k != "state"}}
    assert set(names) <= set(logged)
    assert logged["step"] == failure.step_id
    assert line["state"]["summary"] == gist
    runner.workspace.close()  # type: ignore[attr-defined]

    # `status --json` and `log --json` from the command line.
    status = cli_json("status", halted.run_id, cwd=repo)
    shown = status["batches"][0]["failure"]
    assert shown == failure_json(failure)
    assert shown["summary"] == gist
    (logged_cli,) = cli_json("log", halted.run_id, cwd=repo)
    assert logged_cli == line
