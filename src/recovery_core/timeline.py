"""A run's history read back: its events as a timeline of entries people and
programs read, and the run's state as of any point of it.

The state as of a point is :func:`recovery_core.records.apply` folded over the
events up to that point, from the run's first event: the events are the only
source (no snapshot, no projection). A point is a *position* (the event's
version within the run: 1 is ``RunStarted``) or a *time* (the state after
every event recorded at or before it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from recovery_core.chain import json_native
from recovery_core.errors import UnknownPoint
from recovery_core.records import RunView, apply, failure_of
from recovery_core.tracebacks import first_line

__all__ = ["TimelineEntry", "as_utc", "state_at", "timeline", "timeline_entry"]

#: Fields every event has that are its place in the history, not its content.
_ENVELOPE: Final = frozenset(
    {"originator_id", "originator_version", "timestamp", "prev_digest", "digest"}
)


@attrs.frozen
class TimelineEntry:
    """One event of a run as the timeline shows it: its position (version
    within the run), when it was recorded (UTC), its name (the topic without
    ``recovery:``), the batch and attempt it is about (None for the run's own
    events), a one-line summary for people, its link in the hash chain, and
    its fields as stored."""

    position: int
    time: datetime
    event: str
    batch_id: str | None
    attempt: int | None
    summary: str
    digest: str
    prev_digest: str
    fields: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The entry as ``recovery history --json`` prints it: the event's
        fields, and ``position``, ``time``, ``event``, ``digest`` and
        ``prev_digest``."""
        return {
            **self.fields,
            "position": self.position,
            "time": self.time.isoformat(),
            "event": self.event,
            "digest": self.digest,
            "prev_digest": self.prev_digest,
        }


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware time; a time without a zone is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def timeline_entry(event: Any) -> TimelineEntry:
    """The timeline's entry for one run event."""
    fields = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    name = str(type(event).TOPIC).removeprefix("recovery:")
    attempt = fields.get("attempt")
    return TimelineEntry(
        position=event.originator_version,
        time=event.timestamp,
        event=name,
        batch_id=fields.get("batch_id"),
        attempt=attempt if isinstance(attempt, int) else None,
        summary=_SUMMARIES.get(name, _nothing)(event),
        digest=event.digest,
        prev_digest=event.prev_digest,
        fields=json_native(fields),
    )


def timeline(events: Iterable[Any]) -> list[TimelineEntry]:
    """The timeline of a run's events, in order."""
    return [timeline_entry(e) for e in events]


def state_at(
    events: Iterable[Any],
    *,
    position: int | None = None,
    time: datetime | None = None,
) -> RunView:
    """The run's state as of ``position`` (after the event of that version) or
    ``time`` (after every event recorded at or before it; a time without a
    zone is UTC), from the run's events in order. Exactly one of them is
    given. A point the history does not reach (a position below 1 or past
    the last event, a time before the run started) raises
    :class:`UnknownPoint` (exit code 2)."""
    if (position is None) == (time is None):
        raise TypeError("give exactly one of position and time")
    if position is not None and position < 1:
        raise UnknownPoint(
            f"position {position}: positions start at 1 (the run's RunStarted)"
        )
    until = None if time is None else as_utc(time)
    view: RunView | None = None
    first: datetime | None = None
    for event in events:
        if first is None:
            first = event.timestamp
        if until is not None and event.timestamp > until:
            break
        view = apply(view, event)
        if position is not None and event.originator_version == position:
            return view
    if view is None:
        if until is not None and first is not None:
            raise UnknownPoint(
                f"time {until.isoformat()} is before the run started "
                f"({first.isoformat()}): there is no state as of then"
            )
        raise UnknownPoint("the run has no events")
    if position is not None:
        raise UnknownPoint(
            f"position {position} is past the end of the run: it has "
            f"{view.version} event(s)"
        )
    return view


# -- one line per event, for people -------------------------------------------


def _nothing(event: Any) -> str:
    return ""


def _started(e: Any) -> str:
    return (
        f"plan {e.plan_id} ({len(e.plan.get('batches', []))} batches) in {e.workspace}"
    )


def _claimed(e: Any) -> str:
    return f"runner {e.runner_id} (process {e.pid} on {e.host})"


def _batch_started(e: Any) -> str:
    base = f" from {e.baseline[:10]}" if e.baseline else ""
    return f"attempt {e.attempt}{base}"


def _step_failed(e: Any) -> str:
    failure = failure_of(e.failure)
    where = f" in {failure.component}" if failure.component else ""
    return f"{failure.step_id} failed{where}: {failure.summary}"


def _recovery(e: Any) -> str:
    outcome = e.outcome
    said = "proposed a fix" if outcome.get("proposal") else "proposed no fix"
    analysis = first_line(str(outcome.get("analysis") or ""))
    return f"{e.strategy} {said}" + (f": {analysis}" if analysis else "")


def _notified(e: Any) -> str:
    return f"{e.channel}: " + ("delivered" if e.delivered else f"failed: {e.error}")


def _decided(e: Any) -> str:
    return f"{e.decision} by {e.operator}" + (f": {e.reason}" if e.reason else "")


def _completed(e: Any) -> str:
    s = e.summary
    return (
        f"{s.get('verified', 0)} verified, {s.get('skipped', 0)} skipped, "
        f"{s.get('attempts', 0)} attempt(s)"
    )


_SUMMARIES: Final[dict[str, Callable[[Any], str]]] = {
    "RunStarted": _started,
    "RunnerClaimed": _claimed,
    "RunnerReleased": lambda e: f"runner {e.runner_id} let go",
    "BatchStarted": _batch_started,
    "StepPassed": lambda e: f"{e.phase}.{e.step} passed ({e.duration_s:.2f}s)",
    "StepRetried": lambda e: (
        f"{e.phase}.{e.step} try {e.tries} failed: {first_line(e.error)}"
    ),
    "StepFailed": _step_failed,
    "BatchMarkedFailed": lambda e: e.failure_reason,
    "ChangesQuarantined": lambda e: (
        f"{len(e.files)} file(s) kept under {e.quarantine_ref}"
    ),
    "RecoveryAttempted": _recovery,
    "OperatorNotified": _notified,
    "OperatorDecided": _decided,
    "PolicyDecided": lambda e: f"{e.decision} by policy ({e.rule}): {e.reason}",
    "PolicyEscalated": lambda e: f"left to the operator: {e.reason}",
    "PlanAmended": lambda e: (
        f"plan amended by {e.operator} ({len(e.changes)} change(s))"
        + (f": {e.reason}" if e.reason else "")
    ),
    "BatchVerified": lambda e: "every step passed",
    "BatchCommitted": lambda e: f"commit {e.commit[:10]}",
    "BatchLeftUncommitted": lambda e: f"left uncommitted: {e.reason}",
    "BatchSkipped": lambda e: f"skipped by {e.operator}",
    "RunAborted": lambda e: f"aborted by {e.operator}: {e.reason}",
    "RunCompleted": _completed,
    "RefsRetired": lambda e: (
        f"{len(e.refs)} ref(s) retired by {e.operator}"
        + (f": {e.reason}" if e.reason else "")
    ),
}
