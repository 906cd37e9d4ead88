"""Projections: what the events say, in the forms people and tools read.

- the plan file's status keys (:func:`plan_status_fields`);
- the failure log, one JSON object per line (:func:`failure_log_lines`);
- ``status`` (:meth:`recovery_core.run.Run.view` and :meth:`RunView.as_json`).

Each is a pure function of events, so it can always be rebuilt from the store;
writing the failure log twice from the same events gives the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Final

import attrs

from recovery_core.plan import BatchStatusFields
from recovery_core.records import DecisionView, Failure, RunView, apply, failure_json
from recovery_core.run import Run

__all__ = [
    "FAILURE_LOG_TOPICS",
    "FailureLogEntry",
    "default_failure_log",
    "failure_log_entries",
    "failure_log_lines",
    "plan_status_fields",
]

#: The events the failure log is made of.
FAILURE_LOG_TOPICS: Final = (
    Run.Started.TOPIC,
    Run.BatchStarted.TOPIC,
    Run.StepFailed.TOPIC,
    Run.BatchMarkedFailed.TOPIC,
    Run.ChangesQuarantined.TOPIC,
    Run.OperatorDecided.TOPIC,
    Run.PolicyDecided.TOPIC,
)

#: The events that record a decision on a failure (an operator's or a policy's).
_DECIDED: Final = (Run.OperatorDecided, Run.PolicyDecided)


def default_failure_log(workspace: str | os.PathLike[str]) -> Path:
    """``<workspace>/.recovery/logs/bootstrap_errors.log``."""
    return Path(workspace) / ".recovery" / "logs" / "bootstrap_errors.log"


def plan_status_fields(view: RunView) -> dict[str, BatchStatusFields]:
    """The status keys of each batch, as the plan file gets them."""
    return {
        b.batch_id: BatchStatusFields(
            status=b.status, verified=b.verified, failure_reason=b.failure_reason
        )
        for b in view.batches
    }


@attrs.frozen
class FailureLogEntry:
    """One failed step, as the failure log holds it (one JSON object per line):
    when, in which run, the failure record, and the decision taken on it once
    one is recorded (an operator's, or a batch policy's)."""

    timestamp: str
    run_id: str
    plan_id: str
    failure: Failure
    decision: DecisionView | None = None

    #: The record's fields at the top of a log line; every other one is in ``state``.
    TOP: ClassVar = ("batch_id", "attempt", "step", "component", "error")

    def as_json(self) -> dict[str, Any]:
        """The entry as the JSON object written to the log."""
        record = failure_json(self.failure)
        top = {name: record.pop(name) for name in self.TOP}
        traceback = record.pop("traceback") or self.failure.output_tail
        reason = record.pop("failure_reason")
        where = {"timestamp": self.timestamp, "run_id": self.run_id}
        return {
            **where,
            "plan_id": self.plan_id,
            **top,
            "traceback": traceback,
            "failure_reason": reason,
            "decision": None
            if self.decision is None
            else _decision_json(self.decision),
            "state": record,
        }

    def to_line(self) -> str:
        """The entry as one line of the log (without the newline)."""
        return json.dumps(self.as_json(), ensure_ascii=False, separators=(", ", ": "))


def _decision_json(decision: DecisionView) -> dict[str, Any]:
    """A decision as a log line shows it: what, and who (an operator by name,
    or a policy by its rule)."""
    return {
        "decision": decision.decision,
        "decided_by": decision.decided_by,
        "operator": decision.operator,
        "rule": decision.rule,
        "reason": decision.reason,
    }


def failure_log_entries(
    events: Iterable[Run.Event], *, workspace: str | None = None
) -> list[FailureLogEntry]:
    """One entry per failed step, in the order the failures were recorded.

    ``events`` are the store's events of :data:`FAILURE_LOG_TOPICS` in
    notification order; with ``workspace``, only runs in that workspace count.
    Each entry's record is the run's state's (:func:`recovery_core.records.apply`).
    """
    views: dict[str, RunView] = {}
    entries: list[FailureLogEntry] = []
    where: dict[tuple[str, str, int], int] = {}
    for event in events:
        run_id = str(event.originator_id)
        view = views.get(run_id)
        if view is None and not isinstance(event, Run.Started):
            continue
        if isinstance(event, Run.Started) and workspace not in (None, event.workspace):
            continue
        view = views[run_id] = apply(view, event)
        key = (run_id, getattr(event, "batch_id", ""), getattr(event, "attempt", 0))
        if isinstance(event, Run.StepFailed):
            where[key] = len(entries)
            entries.append(
                FailureLogEntry(
                    timestamp=event.timestamp.isoformat(),
                    run_id=run_id,
                    plan_id=view.plan_id,
                    failure=_failure(view, event.batch_id),
                )
            )
        elif key in where:
            index = where[key]
            failure = _failure(view, event.batch_id)  # type: ignore[attr-defined]
            entries[index] = attrs.evolve(entries[index], failure=failure)
            if isinstance(event, _DECIDED):
                entries[index] = attrs.evolve(entries[index], decision=view.decision)
    return entries


def _failure(view: RunView, batch_id: str) -> Failure:
    failure = view.batch(batch_id).failure
    assert failure is not None
    return failure


def failure_log_lines(
    events: Iterable[Run.Event], *, workspace: str | None = None
) -> list[str]:
    """The failure log's lines (see :func:`failure_log_entries`)."""
    return [
        entry.to_line() for entry in failure_log_entries(events, workspace=workspace)
    ]
