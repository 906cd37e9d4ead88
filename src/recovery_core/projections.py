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
from typing import Any, Final

import attrs

from recovery_core.plan import BatchStatusFields, atomic_write
from recovery_core.run import Run, RunView

__all__ = [
    "FAILURE_LOG_TOPICS",
    "FailureLogEntry",
    "FailureState",
    "default_failure_log",
    "failure_log_entries",
    "failure_log_lines",
    "plan_status_fields",
    "write_failure_log",
]

#: The events the failure log is made of.
FAILURE_LOG_TOPICS: Final = (
    Run.Started.TOPIC,
    Run.BatchStarted.TOPIC,
    Run.StepFailed.TOPIC,
    Run.BatchMarkedFailed.TOPIC,
    Run.ChangesQuarantined.TOPIC,
)


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
class FailureState:
    """The ``state`` of a failure log entry: where the attempt stood."""

    baseline: str | None
    changed_files: tuple[str, ...]
    quarantine_ref: str | None
    exit_code: int | None
    duration_s: float
    timed_out: bool
    kind: str
    output_tail: str


@attrs.frozen
class FailureLogEntry:
    """One failed step, as the failure log holds it (one JSON object per line)."""

    timestamp: str
    run_id: str
    plan_id: str
    batch_id: str
    attempt: int
    step: str
    component: str
    error: str
    traceback: str
    failure_reason: str | None
    state: FailureState

    def as_json(self) -> dict[str, Any]:
        """The entry as the JSON object written to the log."""
        data: dict[str, Any] = attrs.asdict(self)
        return data

    def to_line(self) -> str:
        """The entry as one line of the log (without the newline)."""
        return json.dumps(self.as_json(), ensure_ascii=False, separators=(", ", ": "))


def failure_log_entries(
    events: Iterable[Run.Event], *, workspace: str | None = None
) -> list[FailureLogEntry]:
    """One entry per failed step, in the order the failures were recorded.

    ``events`` are the store's events of :data:`FAILURE_LOG_TOPICS` in
    notification order; with ``workspace``, only runs in that workspace count.
    """
    runs: dict[str, Run.Started] = {}
    baselines: dict[tuple[str, str, int], str | None] = {}
    entries: list[FailureLogEntry] = []
    by_attempt: dict[tuple[str, str, int], int] = {}
    for event in events:
        run_id = str(event.originator_id)
        if isinstance(event, Run.Started):
            runs[run_id] = event
            continue
        started = runs.get(run_id)
        if started is None or (
            workspace is not None and started.workspace != workspace
        ):
            continue
        key = (run_id, getattr(event, "batch_id", ""), getattr(event, "attempt", 0))
        if isinstance(event, Run.BatchStarted):
            baselines[key] = event.baseline
        elif isinstance(event, Run.StepFailed):
            by_attempt[key] = len(entries)
            entries.append(
                FailureLogEntry(
                    timestamp=event.timestamp.isoformat(),
                    run_id=run_id,
                    plan_id=started.plan_id,
                    batch_id=event.batch_id,
                    attempt=event.attempt,
                    step=f"{event.phase}.{event.step}",
                    component=event.component,
                    error=event.error,
                    traceback=event.traceback or event.output_tail,
                    failure_reason=None,
                    state=FailureState(
                        baseline=baselines.get(key),
                        changed_files=tuple(event.changed_files),
                        quarantine_ref=None,
                        exit_code=event.exit_code,
                        duration_s=event.duration_s,
                        timed_out=event.timed_out,
                        kind=event.kind,
                        output_tail=event.output_tail,
                    ),
                )
            )
        elif key in by_attempt and isinstance(event, Run.BatchMarkedFailed):
            index = by_attempt[key]
            entries[index] = attrs.evolve(
                entries[index], failure_reason=event.failure_reason
            )
        elif key in by_attempt and isinstance(event, Run.ChangesQuarantined):
            index = by_attempt[key]
            state = attrs.evolve(
                entries[index].state, quarantine_ref=event.quarantine_ref
            )
            entries[index] = attrs.evolve(entries[index], state=state)
    return entries


def failure_log_lines(
    events: Iterable[Run.Event], *, workspace: str | None = None
) -> list[str]:
    """The failure log's lines (see :func:`failure_log_entries`)."""
    return [
        entry.to_line() for entry in failure_log_entries(events, workspace=workspace)
    ]


def write_failure_log(path: Path, lines: list[str], *, create: bool = True) -> bool:
    """Writes the failure log atomically; returns whether its bytes changed.

    With ``create`` false, a missing log with nothing to say is left missing.
    """
    text = "".join(line + "\n" for line in lines)
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            return False
    elif not lines and not create:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)
    return True
