"""The Run aggregate: one run of a plan, and the rules of its transitions.

Every change of a run is an event (:mod:`recovery_core.events`, each with an
explicit, stable topic, and named here too: ``Run.StepFailed``). Each event
carries ``prev_digest`` and ``digest``: the digest is the SHA-256 of the
event's content and the previous event's digest, so the stored events form a
hash chain in which any change, removal, insertion or reordering shows
(:func:`verify_chain`). The run's state is :func:`recovery_core.records.apply`
of its events.

Every command checks its rule first (:mod:`recovery_core.rules`) and raises
before anything is triggered, so that a refused command leaves no pending event
behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID, uuid4

import attrs
from eventsourcing.domain import BaseAggregate
from eventsourcing.domain import Snapshot as _Snapshot
from eventsourcing.utils import register_topic

from recovery_core import events, rules
from recovery_core.chain import (
    GENESIS_DIGEST,
    StoredRecord,
    event_digest,
    json_native,
    payload_of,
    verify_chain,
)
from recovery_core.errors import IllegalTransition
from recovery_core.plan import ExecutionPlan
from recovery_core.records import Failure, RunView

__all__ = [
    "GENESIS_DIGEST",
    "Run",
    "StoredRecord",
    "event_digest",
    "new_runner_id",
    "payload_of",
    "verify_chain",
]


def new_runner_id() -> str:
    """A fresh id for one runner process."""
    return uuid4().hex[:12]


class Run(BaseAggregate[UUID]):
    """One run of an execution plan."""

    TOPIC = "recovery:Run"

    if TYPE_CHECKING:  # set by the events' apply(); not constructor arguments
        plan: dict[str, Any]
        plan_path: str | None
        state_view: RunView

    @staticmethod
    def create_id() -> UUID:
        """A new random run id."""
        return uuid4()

    def __deepcopy__(self, memo: dict[int, Any]) -> Run:
        # What eventsourcing's repository cache hands out: the state is frozen
        # and the plan never changes once recorded, so a copy shares them and
        # only the pending events are its own.
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied.__dict__["_pending_events"] = []
        return copied

    class Snapshot(_Snapshot):
        """The run as of one event, so that reading a long run starts there."""

        TOPIC = "recovery:RunSnapshot"

    # The events (recovery_core.events) by the names they have here too. At
    # run time they are set below the class: eventsourcing would take type
    # aliases in the class body for fields of the aggregate.
    if TYPE_CHECKING:
        Event: TypeAlias = events.Event
        Started: TypeAlias = events.Started
        RunnerClaimed: TypeAlias = events.RunnerClaimed
        RunnerReleased: TypeAlias = events.RunnerReleased
        BatchStarted: TypeAlias = events.BatchStarted
        StepPassed: TypeAlias = events.StepPassed
        StepRetried: TypeAlias = events.StepRetried
        StepFailed: TypeAlias = events.StepFailed
        BatchMarkedFailed: TypeAlias = events.BatchMarkedFailed
        ChangesQuarantined: TypeAlias = events.ChangesQuarantined
        RecoveryAttempted: TypeAlias = events.RecoveryAttempted
        OperatorNotified: TypeAlias = events.OperatorNotified
        OperatorDecided: TypeAlias = events.OperatorDecided
        PolicyDecided: TypeAlias = events.PolicyDecided
        PolicyEscalated: TypeAlias = events.PolicyEscalated
        PlanAmended: TypeAlias = events.PlanAmended
        BatchVerified: TypeAlias = events.BatchVerified
        BatchCommitted: TypeAlias = events.BatchCommitted
        BatchLeftUncommitted: TypeAlias = events.BatchLeftUncommitted
        BatchSkipped: TypeAlias = events.BatchSkipped
        RunAborted: TypeAlias = events.RunAborted
        RunCompleted: TypeAlias = events.RunCompleted
        RefsRetired: TypeAlias = events.RefsRetired
    else:
        Event, Started = events.Event, events.Started

    # -- construction -------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        plan: Mapping[str, Any],
        plan_id: str,
        plan_digest: str,
        workspace: str,
        store: str,
        host: str,
        runner_id: str,
        plan_path: str | None = None,
        run_id: UUID | None = None,
    ) -> Run:
        """A new run of ``plan`` (the plan's JSON, as loaded)."""
        run_id = run_id or cls.create_id()
        payload = json_native(
            {
                "plan_id": plan_id,
                "plan_digest": plan_digest,
                "plan": plan,
                "plan_path": plan_path,
                "workspace": workspace,
                "store": store,
                "host": host,
                "runner_id": runner_id,
            }
        )
        hashed = {**payload, "originator_topic": cls.TOPIC}
        timestamp = cls.Started.create_timestamp()
        digest = event_digest(
            cls.Started.TOPIC, run_id, 1, timestamp, hashed, GENESIS_DIGEST
        )
        return cls._create(
            cls.Started,
            id=run_id,
            timestamp=timestamp,
            prev_digest=GENESIS_DIGEST,
            digest=digest,
            **payload,
        )

    def _trigger(self, event_class: type[Run.Event], **payload: Any) -> None:
        native = json_native(payload)
        version = getattr(event_class, "class_version", 1)
        hashed = {**native, "class_version": version} if version > 1 else native
        timestamp = event_class.create_timestamp()
        head = self.state_view.head_digest
        digest = event_digest(
            event_class.TOPIC, self.id, self.version + 1, timestamp, hashed, head
        )
        self.trigger_event(
            event_class, timestamp=timestamp, prev_digest=head, digest=digest, **native
        )

    def view(self) -> RunView:
        """The run's state as plain, frozen values."""
        return self.state_view

    # -- commands: each checks its rule (recovery_core.rules), then triggers ----

    def claim_runner(
        self, *, host: str, pid: int, runner_id: str, take_over: bool = False
    ) -> None:
        """Records that this runner now drives the run. Another runner's claim is
        refused with :class:`ConflictError` unless ``take_over`` (its process is
        known to be gone)."""
        if rules.require_claimable(self.state_view, runner_id, take_over):
            self._trigger(self.RunnerClaimed, host=host, pid=pid, runner_id=runner_id)

    def release_runner(self, runner_id: str) -> None:
        """Records that this runner stopped driving the run (nothing, when another
        runner holds it)."""
        rules.require_live(self.state_view)
        held = self.state_view.claim
        if held is not None and held.runner_id == runner_id:
            self._trigger(self.RunnerReleased, runner_id=runner_id)

    def start_batch(self, batch_id: str, baseline: str | None) -> int:
        """Starts the next attempt of ``batch_id``; returns the attempt number
        (for a ``recover`` decision, the runner's strategy applies its proposed
        fix as the attempt's change)."""
        attempt = rules.require_startable(self.state_view, batch_id).attempts + 1
        self._trigger(
            self.BatchStarted, batch_id=batch_id, attempt=attempt, baseline=baseline
        )
        return attempt

    def step_passed(
        self, batch_id: str, attempt: int, *, step: str, phase: str, duration_s: float
    ) -> None:
        """Records a passed step of the running attempt."""
        rules.require_running_attempt(self.state_view, batch_id, attempt)
        self._trigger(
            self.StepPassed,
            batch_id=batch_id,
            attempt=attempt,
            step=step,
            phase=phase,
            duration_s=duration_s,
        )

    def step_retried(
        self,
        batch_id: str,
        attempt: int,
        *,
        step: str,
        phase: str,
        tries: int,
        error: str,
        exit_code: int | None,
        timed_out: bool,
        duration_s: float,
    ) -> None:
        """Records a failed try of a step that is run again."""
        rules.require_running_attempt(self.state_view, batch_id, attempt)
        self._trigger(
            self.StepRetried,
            batch_id=batch_id,
            attempt=attempt,
            step=step,
            phase=phase,
            tries=tries,
            error=json_native({"error": error})["error"],
            exit_code=exit_code,
            timed_out=timed_out,
            duration_s=round(duration_s, 6),
        )

    def step_failed(self, failure: Failure) -> None:
        """Records the failed step of the running attempt."""
        batch_id, attempt = failure.batch_id, failure.attempt
        batch = rules.require_running_attempt(self.state_view, batch_id, attempt)
        if batch.failure is not None:
            raise IllegalTransition(
                f"batch {batch_id} attempt {attempt} already failed"
            )
        if failure.baseline is None:  # the attempt's, as BatchStarted has it
            failure = attrs.evolve(failure, baseline=batch.baseline)
        self._trigger(
            self.StepFailed,
            batch_id=batch_id,
            attempt=attempt,
            failure=failure.as_data(),
        )

    def mark_failed(self, batch_id: str, attempt: int, failure_reason: str) -> None:
        """Marks the running attempt failed after its failed step; the run halts."""
        batch = rules.require_running_attempt(self.state_view, batch_id, attempt)
        if batch.failure is None:
            raise IllegalTransition(
                f"batch {batch_id} attempt {attempt} has no failed step to mark"
            )
        self._trigger(
            self.BatchMarkedFailed,
            batch_id=batch_id,
            attempt=attempt,
            failure_reason=failure_reason,
        )

    def changes_quarantined(
        self,
        batch_id: str,
        attempt: int,
        *,
        quarantine_ref: str,
        files: Iterable[str],
        tree_id: str,
    ) -> None:
        """Records where the faulty change of a failed attempt was kept."""
        rules.require_awaiting(self.state_view, batch_id, attempt)
        self._trigger(
            self.ChangesQuarantined,
            batch_id=batch_id,
            attempt=attempt,
            quarantine_ref=quarantine_ref,
            files=list(files),
            tree_id=tree_id,
        )

    def recovery_attempted(
        self,
        batch_id: str,
        attempt: int,
        *,
        strategy: str,
        outcome: Mapping[str, Any],
        strategy_package: str | None = None,
        strategy_version: str | None = None,
    ) -> None:
        """Records the recovery strategy's answer to the failure, with the
        package and version that ship the strategy."""
        rules.require_awaiting(self.state_view, batch_id, attempt)
        self._trigger(
            self.RecoveryAttempted,
            batch_id=batch_id,
            attempt=attempt,
            strategy=strategy,
            strategy_package=strategy_package,
            strategy_version=strategy_version,
            outcome=dict(outcome),
        )

    def operator_notified(
        self,
        batch_id: str,
        attempt: int,
        *,
        channel: str,
        delivered: bool,
        error: str | None = None,
    ) -> None:
        """Records a notification sent about the failure, or its delivery error."""
        rules.require_live(self.state_view)
        self._trigger(
            self.OperatorNotified,
            batch_id=batch_id,
            attempt=attempt,
            channel=channel,
            delivered=delivered,
            error=error,
        )

    def decide(
        self,
        batch_id: str,
        decision: str,
        *,
        operator: str,
        reason: str = "",
        attempt: int | None = None,
        plan: ExecutionPlan | None = None,
        plan_path: str | None = None,
    ) -> None:
        """Records an operator's decision on the failure awaiting one. ``abort``
        ends the run at once; the others are carried out by the runner. With
        ``plan`` (only with ``retry``), the run follows that amended plan from
        now on (``PlanAmended`` first, with what changed)."""
        decided = rules.require_decidable(self.state_view, batch_id, decision, attempt)
        if plan is not None:
            if decision != "retry":
                raise IllegalTransition(
                    f"a plan is amended with a retry decision, not with {decision}"
                )
            changes = rules.require_amendable(
                self.state_view, self.plan, plan.raw, batch_id
            )
            self._trigger(
                self.PlanAmended,
                plan_digest=plan.digest,
                previous_digest=self.state_view.plan_digest,
                plan=dict(plan.raw),
                plan_path=plan_path,
                changes=changes,
                operator=operator,
                reason=reason,
            )
        self._trigger(
            self.OperatorDecided,
            batch_id=batch_id,
            attempt=decided,
            decision=decision,
            operator=operator,
            reason=reason,
        )
        if decision == "abort":
            self._trigger(
                self.RunAborted,
                operator=operator,
                reason=reason or f"operator aborted at batch {batch_id}",
            )

    def policy_decided(
        self, batch_id: str, attempt: int, decision: str, *, rule: str, reason: str
    ) -> None:
        """Records a decision a batch's policy took on the failure awaiting
        one (``retry`` or ``recover``), under the same rules as an operator's."""
        if decision not in ("retry", "recover"):
            raise IllegalTransition(
                f"a policy decides retry or recover, not {decision!r}"
            )
        decided = rules.require_decidable(self.state_view, batch_id, decision, attempt)
        self._trigger(
            self.PolicyDecided,
            batch_id=batch_id,
            attempt=decided,
            decision=decision,
            rule=rule,
            reason=reason,
        )

    def policy_escalated(self, batch_id: str, attempt: int, *, reason: str) -> None:
        """Records that a batch's policy left the failure awaiting a decision
        to the operator, and why."""
        rules.require_awaiting(self.state_view, batch_id, attempt)
        if self.state_view.decision is not None:
            raise IllegalTransition(
                f"batch {batch_id} attempt {attempt} is decided already"
            )
        self._trigger(
            self.PolicyEscalated, batch_id=batch_id, attempt=attempt, reason=reason
        )

    def skip_batch(self) -> str:
        """Carries out a recorded ``skip`` decision; returns the batch skipped."""
        decision = rules.require_skip(self.state_view)
        self._trigger(
            self.BatchSkipped, batch_id=decision.batch_id, operator=decision.operator
        )
        return decision.batch_id

    def verify_batch(self, batch_id: str, attempt: int) -> None:
        """Marks the running attempt verified: every step passed."""
        batch = rules.require_running_attempt(self.state_view, batch_id, attempt)
        if batch.failure is not None:
            raise IllegalTransition(f"batch {batch_id} attempt {attempt} failed")
        self._trigger(self.BatchVerified, batch_id=batch_id, attempt=attempt)

    def batch_committed(self, batch_id: str, attempt: int, commit: str) -> None:
        """Records the commit that a verified batch became."""
        rules.require_verified(self.state_view, batch_id, attempt)
        self._trigger(
            self.BatchCommitted, batch_id=batch_id, attempt=attempt, commit=commit
        )

    def batch_left_uncommitted(self, batch_id: str, attempt: int, reason: str) -> None:
        """Records that a verified batch was left uncommitted, and why."""
        rules.require_verified(self.state_view, batch_id, attempt)
        self._trigger(
            self.BatchLeftUncommitted, batch_id=batch_id, attempt=attempt, reason=reason
        )

    def abort(self, *, operator: str, reason: str) -> None:
        """Ends the run without completing it."""
        rules.require_live(self.state_view)
        self._trigger(self.RunAborted, operator=operator, reason=reason)

    def retire_refs(
        self, refs: Iterable[Mapping[str, str]], *, operator: str, reason: str
    ) -> None:
        """Records that the git refs ``refs`` (each ``{"ref", "target"}``) of
        this finished run are retired: deleted from its workspace next."""
        retired = [{"ref": r["ref"], "target": r["target"]} for r in refs]
        rules.require_retirable(self.state_view, retired)
        self._trigger(self.RefsRetired, refs=retired, operator=operator, reason=reason)

    def complete(self) -> None:
        """Ends the run: every batch is verified or skipped."""
        rules.require_completable(self.state_view)
        batches = self.state_view.batches
        statuses = [b.status for b in batches]
        self._trigger(
            self.RunCompleted,
            summary={
                "batches": len(batches),
                "verified": statuses.count("verified"),
                "skipped": statuses.count("skipped"),
                "attempts": sum(b.attempts for b in batches),
            },
        )


# eventsourcing registers the explicit topics of an aggregate's events when the
# class is made, but not its snapshot class's: without this, a process that has
# taken no snapshot itself cannot read a run of 100 events or more.
register_topic(Run.Snapshot.TOPIC, Run.Snapshot)
# The events by their names on the aggregate (Run.StepFailed), as documented.
for _name in events.__all__:
    setattr(Run, _name, getattr(events, _name))
