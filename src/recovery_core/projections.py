"""Projections: what the events say, in the forms people and tools read.

- the plan file's status keys (:func:`plan_status_fields`);
- the failure log, one JSON object per line (:func:`failure_log_lines`);
- ``status`` (:meth:`recovery_core.run.Run.view` and :func:`status_json`).

Each is a pure function of events, so it can always be rebuilt from the store;
writing the failure log twice from the same events gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from recovery_core.plan import BatchStatusFields, atomic_write
from recovery_core.run import Run, RunView

__all__ = [
    "FAILURE_LOG_TOPICS",
    "default_failure_log",
    "failure_log_lines",
    "plan_status_fields",
    "status_json",
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


def default_failure_log(workspace: str | Path) -> Path:
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


def failure_log_lines(
    events: Iterable[Run.Event], *, workspace: str | None = None
) -> list[str]:
    """One JSON line per failed step, in the order the failures were recorded.

    ``events`` are the store's events of :data:`FAILURE_LOG_TOPICS` in
    notification order; with ``workspace``, only runs in that workspace count.
    """
    runs: dict[str, Run.Started] = {}
    baselines: dict[tuple[str, str, int], str | None] = {}
    entries: list[dict[str, Any]] = []
    by_attempt: dict[tuple[str, str, int], dict[str, Any]] = {}
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
        if isinstance(event, Run.BatchStarted):
            baselines[(run_id, event.batch_id, event.attempt)] = event.baseline
        elif isinstance(event, Run.StepFailed):
            key = (run_id, event.batch_id, event.attempt)
            entry: dict[str, Any] = {
                "timestamp": event.timestamp.isoformat(),
                "run_id": run_id,
                "plan_id": started.plan_id,
                "batch_id": event.batch_id,
                "attempt": event.attempt,
                "step": f"{event.phase}.{event.step}",
                "component": event.component,
                "error": event.error,
                "traceback": event.traceback or event.output_tail,
                "failure_reason": None,
                "state": {
                    "baseline": baselines.get(key),
                    "changed_files": list(event.changed_files),
                    "quarantine_ref": None,
                    "exit_code": event.exit_code,
                    "duration_s": event.duration_s,
                    "timed_out": event.timed_out,
                    "kind": event.kind,
                    "output_tail": event.output_tail,
                },
            }
            entries.append(entry)
            by_attempt[key] = entry
        elif isinstance(event, Run.BatchMarkedFailed):
            found = by_attempt.get((run_id, event.batch_id, event.attempt))
            if found is not None:
                found["failure_reason"] = event.failure_reason
        elif isinstance(event, Run.ChangesQuarantined):
            found = by_attempt.get((run_id, event.batch_id, event.attempt))
            if found is not None:
                found["state"]["quarantine_ref"] = event.quarantine_ref
    return [json.dumps(e, ensure_ascii=False, separators=(", ", ": ")) for e in entries]


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


def _batch_json(batch: Any) -> dict[str, Any]:
    failure = batch.failure
    return {
        "batch_id": batch.batch_id,
        "status": batch.status,
        "verified": batch.verified,
        "attempts": batch.attempts,
        "failure_reason": batch.failure_reason,
        "commit": batch.commit,
        "baseline": batch.baseline,
        "failure": None
        if failure is None
        else {
            "attempt": failure.attempt,
            "step": f"{failure.phase}.{failure.step}",
            "kind": failure.kind,
            "component": failure.component,
            "error": failure.error,
            "exit_code": failure.exit_code,
            "timed_out": failure.timed_out,
            "changed_files": list(failure.changed_files),
        },
    }


def status_json(
    view: RunView, *, commands: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The object that ``status --json`` prints."""
    decision = view.decision
    return {
        "run_id": view.run_id,
        "plan_id": view.plan_id,
        "state": view.state,
        "workspace": view.workspace,
        "store": view.store,
        "started_at": view.started_at,
        "version": view.version,
        "head_digest": view.head_digest,
        "awaiting_decision": None
        if view.awaiting is None
        else {"batch_id": view.awaiting[0], "attempt": view.awaiting[1]},
        "decision": None
        if decision is None
        else {
            "batch_id": decision.batch_id,
            "attempt": decision.attempt,
            "decision": decision.decision,
            "operator": decision.operator,
            "reason": decision.reason,
            "carried_out": decision.carried_out,
        },
        "strategy": view.strategy,
        "abort_reason": view.abort_reason,
        "runner": None
        if view.claim is None
        else {
            "host": view.claim.host,
            "pid": view.claim.pid,
            "runner_id": view.claim.runner_id,
        },
        "batches": [_batch_json(b) for b in view.batches],
        "next_commands": dict(commands or {}),
    }
