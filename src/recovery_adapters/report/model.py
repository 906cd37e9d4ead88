"""What the report shows, read from a run's events: every attempt of every
batch with its steps and times, every failure, the strategy's answer to it,
every decision and who took it. Plain frozen values, so the page is a pure
function of them (:func:`recovery_adapters.report.html.render_html`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

import attrs

from recovery_core.records import Failure, RunView
from recovery_core.run import Run

__all__ = [
    "AttemptEntry",
    "DecisionEntry",
    "QuarantinedDiff",
    "RecoveryAnswer",
    "RunReport",
    "StepEntry",
    "report_of",
]

AttemptStatus = Literal["running", "verified", "failed", "unfinished"]


@attrs.frozen
class StepEntry:
    """One step of an attempt: ``passed``, ``failed``, or ``retried`` (a try
    that failed and was run again)."""

    phase: str
    step: str
    outcome: Literal["passed", "failed", "retried"]
    duration_s: float
    error: str = ""


@attrs.frozen
class RecoveryAnswer:
    """The strategy's answer to one failure (``RecoveryAttempted``): its
    analysis and, when it proposes a fix, the proposal's patch, digest and
    pre-validation."""

    batch_id: str
    attempt: int
    strategy: str
    strategy_package: str | None
    strategy_version: str | None
    analysis: str
    proposal: bool
    patch_digest: str | None
    prevalidation: str | None
    details: dict[str, Any]
    at: datetime

    @property
    def patch(self) -> str:
        """The proposed patch, as the strategy recorded it (may be cut)."""
        value = self.details.get("patch")
        return value if isinstance(value, str) else ""

    @property
    def agent_analysis(self) -> str:
        """What the agent said of its patch, if it said anything."""
        value = self.details.get("agent_analysis")
        return value if isinstance(value, str) else ""

    @property
    def checks(self) -> list[dict[str, Any]]:
        """The checks the proposed patch went through, in order."""
        found = self.details.get("checks")
        if not isinstance(found, list):
            return []
        return [c for c in found if isinstance(c, dict)]

    @property
    def prevalidation_steps(self) -> list[dict[str, Any]]:
        """The batch's steps as they ran on the proposal in a sandbox."""
        found = self.details.get("prevalidation")
        steps = found.get("steps") if isinstance(found, dict) else None
        if not isinstance(steps, list):
            return []
        return [s for s in steps if isinstance(s, dict)]


@attrs.frozen
class DecisionEntry:
    """A decision on a failure: what, who (an operator by name, or a batch's
    policy by its rule) and why; ``amended_plan`` when a retry came with an
    amended plan."""

    batch_id: str
    attempt: int
    decision: str
    decided_by: Literal["operator", "policy"]
    who: str
    reason: str
    at: datetime
    amended_plan: bool = False


@attrs.frozen
class AttemptEntry:
    """One attempt at a batch: when it started and ended, its steps, and, if
    it failed, the failure record, where its change was quarantined, the
    strategy's answer and what the policy said."""

    batch_id: str
    attempt: int
    started: datetime
    ended: datetime | None = None
    status: AttemptStatus = "unfinished"
    steps: tuple[StepEntry, ...] = ()
    failure: Failure | None = None
    quarantine_ref: str | None = None
    quarantined_files: tuple[str, ...] = ()
    answer: RecoveryAnswer | None = None
    policy_notes: tuple[str, ...] = ()
    commit: str | None = None
    uncommitted_reason: str | None = None

    @property
    def duration_s(self) -> float | None:
        """From its start to its end (None while it has not ended)."""
        if self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())


@attrs.frozen
class QuarantinedDiff:
    """A failed attempt's quarantined change, as the report shows it: the
    diff text, or why it cannot be shown (``missing``: the workspace or the
    ref is gone)."""

    batch_id: str
    attempt: int
    quarantine_ref: str
    files: tuple[str, ...] = ()
    diff: str | None = None
    missing: str | None = None
    truncated: bool = False


@attrs.frozen
class RunReport:
    """Everything the report shows of one run."""

    view: RunView
    started: datetime
    last_event: datetime
    events: int
    attempts: tuple[AttemptEntry, ...]
    decisions: tuple[DecisionEntry, ...]
    answers: tuple[RecoveryAnswer, ...]
    ended: datetime | None = None

    def attempts_of(self, batch_id: str) -> list[AttemptEntry]:
        """The batch's attempts, in order."""
        return [a for a in self.attempts if a.batch_id == batch_id]

    @property
    def failures(self) -> list[AttemptEntry]:
        """The attempts that failed, in the order they ran."""
        return [a for a in self.attempts if a.failure is not None]

    @property
    def proposals(self) -> list[RecoveryAnswer]:
        """The strategy's answers that proposed a fix."""
        return [a for a in self.answers if a.proposal]


def report_of(view: RunView, events: Iterable[Run.Event]) -> RunReport:
    """The report of the run whose state is ``view``, from its events in order
    (:meth:`~recovery_core.RecoveryApp.history`)."""
    attempts: dict[tuple[str, int], AttemptEntry] = {}
    decisions: list[DecisionEntry] = []
    answers: list[RecoveryAnswer] = []
    amended_at: datetime | None = None
    started: datetime | None = None
    last: datetime | None = None
    ended: datetime | None = None
    count = 0

    def change(batch_id: str, attempt: int, **changes: Any) -> None:
        key = (batch_id, attempt)
        if key in attempts:
            attempts[key] = attrs.evolve(attempts[key], **changes)

    def step(batch_id: str, attempt: int, entry: StepEntry) -> None:
        key = (batch_id, attempt)
        if key in attempts:
            change(batch_id, attempt, steps=(*attempts[key].steps, entry))

    for event in events:
        count += 1
        at: datetime = event.timestamp
        started = at if started is None else started
        last = at
        if isinstance(event, Run.BatchStarted):
            attempts[(event.batch_id, event.attempt)] = AttemptEntry(
                event.batch_id, event.attempt, started=at, status="running"
            )
        elif isinstance(event, Run.StepPassed):
            entry = StepEntry(event.phase, event.step, "passed", event.duration_s)
            step(event.batch_id, event.attempt, entry)
        elif isinstance(event, Run.StepRetried):
            retried = StepEntry(
                event.phase, event.step, "retried", event.duration_s, event.error
            )
            step(event.batch_id, event.attempt, retried)
        elif isinstance(event, Run.StepFailed):
            record = event.record
            failed = StepEntry(
                record.phase, record.step, "failed", record.duration_s, record.error
            )
            step(event.batch_id, event.attempt, failed)
            change(event.batch_id, event.attempt, failure=record, ended=at)
        elif isinstance(event, Run.BatchMarkedFailed):
            key = (event.batch_id, event.attempt)
            known = attempts[key].failure if key in attempts else None
            if known is not None:
                known = attrs.evolve(known, failure_reason=event.failure_reason)
            change(*key, failure=known, status="failed", ended=at)
        elif isinstance(event, Run.ChangesQuarantined):
            change(
                event.batch_id,
                event.attempt,
                quarantine_ref=event.quarantine_ref,
                quarantined_files=tuple(event.files),
            )
        elif isinstance(event, Run.RecoveryAttempted):
            answer = _answer(event)
            answers.append(answer)
            change(event.batch_id, event.attempt, answer=answer)
        elif isinstance(event, Run.PolicyEscalated):
            key = (event.batch_id, event.attempt)
            if key in attempts:
                notes = (*attempts[key].policy_notes, event.reason)
                change(*key, policy_notes=notes)
        elif isinstance(event, Run.PlanAmended):
            amended_at = at
        elif isinstance(event, Run.OperatorDecided):
            decisions.append(
                DecisionEntry(
                    event.batch_id,
                    event.attempt,
                    event.decision,
                    "operator",
                    event.operator,
                    event.reason,
                    at,
                    amended_plan=amended_at is not None,
                )
            )
            amended_at = None
        elif isinstance(event, Run.PolicyDecided):
            decisions.append(
                DecisionEntry(
                    event.batch_id,
                    event.attempt,
                    event.decision,
                    "policy",
                    f"policy ({event.rule})",
                    event.reason,
                    at,
                )
            )
        elif isinstance(event, Run.BatchVerified):
            change(event.batch_id, event.attempt, status="verified", ended=at)
        elif isinstance(event, Run.BatchCommitted):
            change(event.batch_id, event.attempt, commit=event.commit)
        elif isinstance(event, Run.BatchLeftUncommitted):
            change(event.batch_id, event.attempt, uncommitted_reason=event.reason)
        elif isinstance(event, Run.RunCompleted | Run.RunAborted):
            ended = at
    if started is None or last is None:
        raise ValueError(f"run {view.run_id} has no events")
    running = view.running_batch
    under_way = (
        None
        if running is None or view.state != "running"
        else (running.batch_id, running.attempts)
    )
    finished = {
        key: attrs.evolve(entry, status="unfinished")
        if entry.status == "running" and key != under_way
        else entry
        for key, entry in attempts.items()
    }
    return RunReport(
        view=view,
        started=started,
        last_event=last,
        events=count,
        attempts=tuple(finished.values()),
        decisions=tuple(decisions),
        answers=tuple(answers),
        ended=ended,
    )


def _answer(event: Run.RecoveryAttempted) -> RecoveryAnswer:
    outcome = event.outcome
    details = outcome.get("details")
    return RecoveryAnswer(
        batch_id=event.batch_id,
        attempt=event.attempt,
        strategy=event.strategy,
        strategy_package=event.strategy_package,
        strategy_version=event.strategy_version,
        analysis=str(outcome.get("analysis") or ""),
        proposal=bool(outcome.get("proposal")),
        patch_digest=outcome.get("patch_digest"),
        prevalidation=outcome.get("prevalidation"),
        details=dict(details) if isinstance(details, dict) else {},
        at=event.timestamp,
    )
