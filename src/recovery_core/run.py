"""The Run aggregate: one run of a plan, its events, and the rules of its transitions.

Every change of a run is an event. Each event carries ``prev_digest`` and
``digest``: the digest is the SHA-256 of the event's content and the previous
event's digest, so the stored events form a hash chain in which any change,
removal, insertion or reordering shows (:func:`verify_chain`).

Event classes have explicit, stable topics (``recovery:<Name>``): moving or
renaming a class never breaks a stored history. Their meaning never changes once
released; a new meaning is a new event, or a new ``class_version`` with an
upcaster.

Every command checks the rules first and raises before anything is triggered, so
that a refused command leaves no pending event behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal
from uuid import UUID, uuid4

import attrs
from eventsourcing.domain import AggregateCreated, AggregateEvent, BaseAggregate

from recovery_core.errors import ConflictError, IllegalTransition, IntegrityError

__all__ = [
    "DECISIONS",
    "GENESIS_DIGEST",
    "BatchView",
    "Decision",
    "FailureView",
    "Run",
    "RunState",
    "RunView",
    "event_digest",
    "verify_chain",
]

GENESIS_DIGEST: Final = "0" * 64

RunState = Literal["running", "halted", "completed", "aborted"]
Decision = Literal["retry", "skip", "recover", "abort"]
DECISIONS: Final[tuple[Decision, ...]] = ("retry", "skip", "recover", "abort")

#: Fields every event has that are not its payload.
_ENVELOPE: Final = frozenset(
    {"originator_id", "originator_version", "timestamp", "prev_digest", "digest"}
)


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_native(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as it will read back from the store: tuples become lists, and
    anything that JSON cannot hold is refused now rather than after the save."""
    result: dict[str, Any] = json.loads(_canonical(payload))
    return result


def event_digest(
    topic: str,
    originator_id: UUID,
    originator_version: int,
    timestamp: datetime,
    payload: Mapping[str, Any],
    prev_digest: str,
) -> str:
    """The digest of one event: its topic, position, time, payload and the digest
    of the event before it."""
    content = _canonical(
        {
            "topic": topic,
            "originator_id": str(originator_id),
            "originator_version": originator_version,
            "timestamp": timestamp.isoformat(),
            "payload": payload,
            "prev_digest": prev_digest,
        }
    )
    return hashlib.sha256(content.encode()).hexdigest()


def payload_of(event: Run.Event) -> dict[str, Any]:
    """The fields of an event that are its content, not its envelope (the first
    event's aggregate topic is content: it says what the history is of)."""
    return {k: v for k, v in vars(event).items() if k not in _ENVELOPE}


def verify_chain(events: Iterable[Run.Event]) -> str:
    """Checks the hash chain of a run's events, in order; returns the head digest.

    Raises :class:`IntegrityError` naming the first event whose digest or link
    does not hold, or a gap in the versions.
    """
    prev = GENESIS_DIGEST
    expected_version = 1
    for event in events:
        where = f"event {event.originator_version} ({type(event).__name__})"
        if event.originator_version != expected_version:
            raise IntegrityError(
                f"{where}: expected version {expected_version}: an event is missing "
                "or out of order"
            )
        if event.prev_digest != prev:
            raise IntegrityError(f"{where}: does not link to the event before it")
        digest = event_digest(
            type(event).TOPIC,
            event.originator_id,
            event.originator_version,
            event.timestamp,
            payload_of(event),
            event.prev_digest,
        )
        if digest != event.digest:
            raise IntegrityError(f"{where}: content does not match its digest")
        prev = digest
        expected_version += 1
    return prev


@attrs.frozen
class FailureView:
    """The failure of one attempt of a batch, as recorded."""

    batch_id: str
    attempt: int
    step: str
    phase: str
    kind: str
    component: str
    error: str
    traceback: str
    output_tail: str
    exit_code: int | None
    duration_s: float
    changed_files: tuple[str, ...]
    timed_out: bool
    baseline: str | None
    failure_reason: str | None = None


@attrs.frozen
class BatchView:
    """One batch's status within a run.

    ``baseline`` is the snapshot taken before the current attempt; ``origin`` the
    one taken before the first, against which the batch's changes are measured
    (a strategy that leaves a failed change in the tree leaves it in the next
    attempt's baseline too)."""

    batch_id: str
    status: Literal["pending", "running", "verified", "failed", "skipped"] = "pending"
    verified: bool = False
    attempts: int = 0
    failure_reason: str | None = None
    commit: str | None = None
    uncommitted_reason: str | None = None
    baseline: str | None = None
    origin: str | None = None
    steps_passed: tuple[str, ...] = ()
    failure: FailureView | None = None


@attrs.frozen
class DecisionView:
    """An operator's decision on a failure."""

    batch_id: str
    attempt: int
    decision: Decision
    operator: str
    reason: str
    carried_out: bool = False


@attrs.frozen
class ClaimView:
    """Who drives the run."""

    host: str
    pid: int
    runner_id: str


@attrs.frozen
class RunView:
    """The state of a run, as plain values for queries and projections."""

    run_id: str
    plan_id: str
    plan_digest: str
    plan_path: str | None
    workspace: str
    store: str
    state: RunState
    batches: tuple[BatchView, ...]
    awaiting: tuple[str, int] | None
    decision: DecisionView | None
    claim: ClaimView | None
    version: int
    head_digest: str
    started_at: str
    proposal: bool = False
    strategy: str | None = None
    abort_reason: str | None = None

    def batch(self, batch_id: str) -> BatchView:
        """The view of one batch; :class:`KeyError` when the plan has none."""
        for batch in self.batches:
            if batch.batch_id == batch_id:
                return batch
        raise KeyError(batch_id)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """The decisions an operator may take now: none unless a failure awaits
        one; ``recover`` only when the strategy proposed a fix."""
        if self.awaiting is None:
            return ()
        return tuple(d for d in DECISIONS if d != "recover" or self.proposal)

    def commands(self, store: str | None = None) -> tuple[str, ...]:
        """The exact ``recovery`` commands an operator may run now: one
        ``decide`` per possible decision, then ``resume``. ``store`` is the
        ``--store`` to name, when the commands would not find it themselves."""
        if self.awaiting is None:
            return ()
        decided = self.decision is not None and not self.decision.carried_out
        commands = decision_commands(
            self.run_id, self.awaiting[0], () if decided else self.decisions, store
        )
        return commands

    def as_json(self, store: str | None = None) -> dict[str, Any]:
        """The run as the JSON object ``recovery status --json`` prints."""
        decision = self.decision
        claim = self.claim
        return {
            "run_id": self.run_id,
            "plan_id": self.plan_id,
            "state": self.state,
            "workspace": self.workspace,
            "store": self.store,
            "started_at": self.started_at,
            "version": self.version,
            "head_digest": self.head_digest,
            "awaiting_decision": None
            if self.awaiting is None
            else {"batch_id": self.awaiting[0], "attempt": self.awaiting[1]},
            "decision": None if decision is None else attrs.asdict(decision),
            "strategy": self.strategy,
            "abort_reason": self.abort_reason,
            "runner": None if claim is None else attrs.asdict(claim),
            "batches": [_batch_json(b) for b in self.batches],
            "next_commands": list(self.commands(store)),
        }


def decision_commands(
    run_id: str, batch_id: str, decisions: Sequence[str], store: str | None
) -> tuple[str, ...]:
    """The ``recovery decide`` command for each decision, then ``resume``."""
    store_arg = f" --store '{store}'" if store else ""
    commands = [
        f"recovery decide{store_arg} {run_id} {batch_id} {decision}"
        for decision in decisions
    ]
    commands.append(f"recovery resume{store_arg} {run_id}")
    return tuple(commands)


def _batch_json(batch: BatchView) -> dict[str, Any]:
    failure = batch.failure
    return {
        "batch_id": batch.batch_id,
        "status": batch.status,
        "verified": batch.verified,
        "attempts": batch.attempts,
        "failure_reason": batch.failure_reason,
        "commit": batch.commit,
        "uncommitted_reason": batch.uncommitted_reason,
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


class Run(BaseAggregate[UUID]):
    """One run of an execution plan."""

    TOPIC = "recovery:Run"

    if TYPE_CHECKING:  # set by the events' apply(); not constructor arguments
        plan_id: str
        plan_digest: str
        plan: dict[str, Any]
        plan_path: str | None
        workspace: str
        store: str
        state: RunState
        batch_order: list[str]
        batches: dict[str, BatchView]
        awaiting: tuple[str, int] | None
        decision: DecisionView | None
        claim: ClaimView | None
        head_digest: str
        proposal: bool
        strategy: str | None
        abort_reason: str | None

    @staticmethod
    def create_id() -> UUID:
        """A new random run id."""
        return uuid4()

    class Event(AggregateEvent):
        """The base of every run event: each carries its link in the hash chain."""

        TOPIC: ClassVar[str]
        prev_digest: str
        digest: str

        def apply(self, run: Any) -> None:
            run.head_digest = self.digest

    class Started(Event, AggregateCreated):
        """RunStarted: the plan as loaded and where it runs."""

        TOPIC = "recovery:RunStarted"
        plan_id: str
        plan_digest: str
        plan: dict[str, Any]
        plan_path: str | None
        workspace: str
        store: str
        host: str
        runner_id: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            run.plan_id = self.plan_id
            run.plan_digest = self.plan_digest
            run.plan = self.plan
            run.plan_path = self.plan_path
            run.workspace = self.workspace
            run.store = self.store
            run.state = "running"
            ids = [b["batch_id"] for b in self.plan["batches"]]
            run.batch_order = ids
            run.batches = {i: BatchView(batch_id=i) for i in ids}
            run.awaiting = None
            run.decision = None
            run.claim = None
            run.proposal = False
            run.strategy = None
            run.abort_reason = None

    class RunnerClaimed(Event):
        """Who now drives the run."""

        TOPIC = "recovery:RunnerClaimed"
        host: str
        pid: int
        runner_id: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            run.claim = ClaimView(self.host, self.pid, self.runner_id)

    class RunnerReleased(Event):
        """The runner stopped driving the run (it halted, ended, or was stopped)."""

        TOPIC = "recovery:RunnerReleased"
        runner_id: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            run.claim = None

    class BatchStarted(Event):
        """An attempt at a batch began, from this baseline."""

        TOPIC = "recovery:BatchStarted"
        batch_id: str
        attempt: int
        baseline: str | None

        def apply(self, run: Any) -> None:
            super().apply(run)
            origin = run.batches[self.batch_id].origin
            run._set_batch(
                self.batch_id,
                status="running",
                attempts=self.attempt,
                baseline=self.baseline,
                origin=self.baseline if self.attempt == 1 else origin,
                steps_passed=(),
                failure=None,
                failure_reason=None,
            )
            if run.decision is not None:
                run.decision = attrs.evolve(run.decision, carried_out=True)
            run.state = "running"
            run.awaiting = None
            run.proposal = False
            run.strategy = None

    class StepPassed(Event):
        """A step of the attempt passed."""

        TOPIC = "recovery:StepPassed"
        batch_id: str
        attempt: int
        step: str
        phase: str
        duration_s: float

        def apply(self, run: Any) -> None:
            super().apply(run)
            batch = run.batches[self.batch_id]
            run._set_batch(self.batch_id, steps_passed=(*batch.steps_passed, self.step))

    class StepFailed(Event):
        """A step of the attempt failed: everything known about why."""

        TOPIC = "recovery:StepFailed"
        batch_id: str
        attempt: int
        step: str
        phase: str
        kind: str
        component: str
        error: str
        traceback: str
        output_tail: str
        exit_code: int | None
        duration_s: float
        changed_files: list[str]
        timed_out: bool

        def apply(self, run: Any) -> None:
            super().apply(run)
            batch = run.batches[self.batch_id]
            failure = FailureView(
                batch_id=self.batch_id,
                attempt=self.attempt,
                step=self.step,
                phase=self.phase,
                kind=self.kind,
                component=self.component,
                error=self.error,
                traceback=self.traceback,
                output_tail=self.output_tail,
                exit_code=self.exit_code,
                duration_s=self.duration_s,
                changed_files=tuple(self.changed_files),
                timed_out=self.timed_out,
                baseline=batch.baseline,
            )
            run._set_batch(self.batch_id, failure=failure)

    class BatchMarkedFailed(Event):
        """The attempt failed; the run halts until an operator decides."""

        TOPIC = "recovery:BatchMarkedFailed"
        batch_id: str
        attempt: int
        failure_reason: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            batch = run.batches[self.batch_id]
            failure = batch.failure
            if failure is not None:
                failure = attrs.evolve(failure, failure_reason=self.failure_reason)
            run._set_batch(
                self.batch_id,
                status="failed",
                verified=False,
                failure_reason=self.failure_reason,
                failure=failure,
            )
            run.state = "halted"
            run.awaiting = (self.batch_id, self.attempt)
            run.decision = None

    class ChangesQuarantined(Event):
        """The faulty change was kept under a ref and taken out of the tree."""

        TOPIC = "recovery:ChangesQuarantined"
        batch_id: str
        attempt: int
        quarantine_ref: str
        files: list[str]
        tree_id: str

    class RecoveryAttempted(Event):
        """The recovery strategy answered the failure."""

        TOPIC = "recovery:RecoveryAttempted"
        batch_id: str
        attempt: int
        strategy: str
        outcome: dict[str, Any]

        def apply(self, run: Any) -> None:
            super().apply(run)
            run.strategy = self.strategy
            run.proposal = bool(self.outcome.get("proposal"))

    class OperatorNotified(Event):
        """A notification was sent on a channel, or failed to be."""

        TOPIC = "recovery:OperatorNotified"
        batch_id: str
        attempt: int
        channel: str
        delivered: bool
        error: str | None

    class OperatorDecided(Event):
        """An operator answered a failure."""

        TOPIC = "recovery:OperatorDecided"
        batch_id: str
        attempt: int
        decision: str
        operator: str
        reason: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            run.decision = DecisionView(
                batch_id=self.batch_id,
                attempt=self.attempt,
                decision=self.decision,  # type: ignore[arg-type]
                operator=self.operator,
                reason=self.reason,
            )

    class BatchVerified(Event):
        """Every step of the attempt passed."""

        TOPIC = "recovery:BatchVerified"
        batch_id: str
        attempt: int

        def apply(self, run: Any) -> None:
            super().apply(run)
            run._set_batch(
                self.batch_id, status="verified", verified=True, failure_reason=None
            )

    class BatchCommitted(Event):
        """The verified batch became a commit."""

        TOPIC = "recovery:BatchCommitted"
        batch_id: str
        attempt: int
        commit: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            run._set_batch(self.batch_id, commit=self.commit)

    class BatchLeftUncommitted(Event):
        """A verified batch with ``commit_strategy: "commit"`` was not committed
        (its change is left in the working tree), and why."""

        TOPIC = "recovery:BatchLeftUncommitted"
        batch_id: str
        attempt: int
        reason: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            run._set_batch(self.batch_id, uncommitted_reason=self.reason)

    class BatchSkipped(Event):
        """The operator's skip was carried out; the run goes on without the batch."""

        TOPIC = "recovery:BatchSkipped"
        batch_id: str
        operator: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            run._set_batch(self.batch_id, status="skipped", verified=False)
            if run.decision is not None:
                run.decision = attrs.evolve(run.decision, carried_out=True)
            run.state = "running"
            run.awaiting = None

    class RunAborted(Event):
        """The run ended without completing."""

        TOPIC = "recovery:RunAborted"
        operator: str
        reason: str

        def apply(self, run: Any) -> None:
            super().apply(run)
            if run.decision is not None:
                run.decision = attrs.evolve(run.decision, carried_out=True)
            run.state = "aborted"
            run.abort_reason = self.reason
            run.awaiting = None

    class RunCompleted(Event):
        """Every batch was verified or skipped."""

        TOPIC = "recovery:RunCompleted"
        summary: dict[str, Any]

        def apply(self, run: Any) -> None:
            super().apply(run)
            run.state = "completed"

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
        payload = _json_native(
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

    # -- helpers ------------------------------------------------------------

    def _trigger(self, event_class: type[Run.Event], **payload: Any) -> None:
        native = _json_native(payload)
        timestamp = event_class.create_timestamp()
        digest = event_digest(
            event_class.TOPIC,
            self.id,
            self.version + 1,
            timestamp,
            native,
            self.head_digest,
        )
        self.trigger_event(
            event_class,
            timestamp=timestamp,
            prev_digest=self.head_digest,
            digest=digest,
            **native,
        )

    def _set_batch(self, batch_id: str, **changes: Any) -> None:
        self.batches[batch_id] = attrs.evolve(self.batches[batch_id], **changes)

    def _require_live(self) -> None:
        if self.state in ("completed", "aborted"):
            raise IllegalTransition(
                f"run {self.id} is {self.state}: nothing more happens"
            )

    def _batch(self, batch_id: str) -> BatchView:
        try:
            return self.batches[batch_id]
        except KeyError:
            from recovery_core.errors import UnknownBatch

            raise UnknownBatch(
                f"run {self.id} (plan {self.plan_id}) has no batch {batch_id!r}; "
                f"its batches are {', '.join(self.batch_order)}"
            ) from None

    def _require_running_attempt(self, batch_id: str, attempt: int) -> BatchView:
        self._require_live()
        batch = self._batch(batch_id)
        if batch.status != "running" or batch.attempts != attempt:
            raise IllegalTransition(
                f"batch {batch_id} attempt {attempt} is not running "
                f"(status {batch.status}, attempt {batch.attempts})"
            )
        return batch

    # -- queries ------------------------------------------------------------

    @property
    def running_batch(self) -> BatchView | None:
        """The batch whose attempt is under way, if any."""
        for batch_id in self.batch_order:
            if self.batches[batch_id].status == "running":
                return self.batches[batch_id]
        return None

    def next_batch(self) -> str | None:
        """The first batch that is neither verified nor skipped."""
        for batch_id in self.batch_order:
            if self.batches[batch_id].status not in ("verified", "skipped"):
                return batch_id
        return None

    def view(self) -> RunView:
        """The run's state as plain, frozen values."""
        return RunView(
            run_id=str(self.id),
            plan_id=self.plan_id,
            plan_digest=self.plan_digest,
            plan_path=self.plan_path,
            workspace=self.workspace,
            store=self.store,
            state=self.state,
            batches=tuple(self.batches[i] for i in self.batch_order),
            awaiting=self.awaiting,
            decision=self.decision,
            claim=self.claim,
            version=self.version,
            head_digest=self.head_digest,
            started_at=self.created_on.isoformat(),
            proposal=self.proposal,
            strategy=self.strategy,
            abort_reason=self.abort_reason,
        )

    # -- commands -----------------------------------------------------------

    def claim_runner(
        self, *, host: str, pid: int, runner_id: str, take_over: bool = False
    ) -> None:
        """Records that this runner now drives the run. Another runner's claim is
        refused with :class:`ConflictError` unless ``take_over`` (its process is
        known to be gone)."""
        self._require_live()
        held = self.claim
        if held is not None and held.runner_id != runner_id and not take_over:
            raise ConflictError(
                f"run {self.id} is driven by runner {held.runner_id} "
                f"(pid {held.pid} on {held.host})"
            )
        if held is not None and held.runner_id == runner_id:
            return
        self._trigger(self.RunnerClaimed, host=host, pid=pid, runner_id=runner_id)

    def release_runner(self, runner_id: str) -> None:
        """Records that this runner stopped driving the run (nothing, when another
        runner holds it)."""
        self._require_live()
        if self.claim is not None and self.claim.runner_id == runner_id:
            self._trigger(self.RunnerReleased, runner_id=runner_id)

    def start_batch(self, batch_id: str, baseline: str | None) -> int:
        """Starts the next attempt of ``batch_id``; returns the attempt number.

        Only the first batch that is neither verified nor skipped may start, and
        only when no failure awaits a decision; after a failure, only a ``retry``
        or ``recover`` decision lets the same batch start again (for ``recover``,
        the runner's strategy applies its proposed fix as the attempt's change).
        """
        self._require_live()
        batch = self._batch(batch_id)
        if self.running_batch is not None:
            raise IllegalTransition(
                f"batch {self.running_batch.batch_id} is still running"
            )
        expected = self.next_batch()
        if batch_id != expected:
            raise IllegalTransition(
                f"batch {batch_id} cannot start: "
                + (
                    f"it is {batch.status}"
                    if batch.status in ("verified", "skipped")
                    else f"batch {expected} comes first"
                )
            )
        if self.state == "halted":
            decision = self.decision
            if decision is None:
                raise IllegalTransition(
                    f"batch {self.awaiting[0] if self.awaiting else batch_id} failed "
                    "and awaits an operator decision"
                )
            if decision.decision not in ("retry", "recover"):
                raise IllegalTransition(
                    f"the decision for batch {decision.batch_id} is "
                    f"{decision.decision}, not retry or recover"
                )
        attempt = batch.attempts + 1
        self._trigger(
            self.BatchStarted, batch_id=batch_id, attempt=attempt, baseline=baseline
        )
        return attempt

    def step_passed(
        self, batch_id: str, attempt: int, *, step: str, phase: str, duration_s: float
    ) -> None:
        """Records a passed step of the running attempt."""
        self._require_running_attempt(batch_id, attempt)
        self._trigger(
            self.StepPassed,
            batch_id=batch_id,
            attempt=attempt,
            step=step,
            phase=phase,
            duration_s=duration_s,
        )

    def step_failed(
        self,
        batch_id: str,
        attempt: int,
        *,
        step: str,
        phase: str,
        kind: str,
        component: str,
        error: str,
        traceback: str = "",
        output_tail: str = "",
        exit_code: int | None = None,
        duration_s: float = 0.0,
        changed_files: Sequence[str] = (),
        timed_out: bool = False,
    ) -> None:
        """Records the failed step of the running attempt."""
        batch = self._require_running_attempt(batch_id, attempt)
        if batch.failure is not None:
            raise IllegalTransition(
                f"batch {batch_id} attempt {attempt} already failed"
            )
        self._trigger(
            self.StepFailed,
            batch_id=batch_id,
            attempt=attempt,
            step=step,
            phase=phase,
            kind=kind,
            component=component,
            error=error,
            traceback=traceback,
            output_tail=output_tail,
            exit_code=exit_code,
            duration_s=duration_s,
            changed_files=list(changed_files),
            timed_out=timed_out,
        )

    def mark_failed(self, batch_id: str, attempt: int, failure_reason: str) -> None:
        """Marks the running attempt failed after its failed step; the run halts."""
        batch = self._require_running_attempt(batch_id, attempt)
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

    def _require_awaiting(self, batch_id: str, attempt: int) -> None:
        self._require_live()
        if self.awaiting != (batch_id, attempt):
            raise IllegalTransition(
                f"no failure of batch {batch_id} attempt {attempt} awaits a decision"
            )

    def changes_quarantined(
        self,
        batch_id: str,
        attempt: int,
        *,
        quarantine_ref: str,
        files: Sequence[str],
        tree_id: str,
    ) -> None:
        """Records where the faulty change of a failed attempt was kept."""
        self._require_awaiting(batch_id, attempt)
        self._trigger(
            self.ChangesQuarantined,
            batch_id=batch_id,
            attempt=attempt,
            quarantine_ref=quarantine_ref,
            files=list(files),
            tree_id=tree_id,
        )

    def recovery_attempted(
        self, batch_id: str, attempt: int, *, strategy: str, outcome: Mapping[str, Any]
    ) -> None:
        """Records the recovery strategy's answer to the failure."""
        self._require_awaiting(batch_id, attempt)
        self._trigger(
            self.RecoveryAttempted,
            batch_id=batch_id,
            attempt=attempt,
            strategy=strategy,
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
        self._require_live()
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
    ) -> None:
        """Records an operator's decision on the failure awaiting one.

        A decision must answer the failure that awaits one (exit 2 otherwise), and
        only once: a second decision on the same failure is a conflict (exit 5).
        ``abort`` ends the run at once; the others are carried out by the runner.
        """
        taken = self.decision
        if (
            taken is not None
            and (not taken.carried_out or self.state == "aborted")
            and taken.batch_id == batch_id
            and attempt in (None, taken.attempt)
        ):
            raise ConflictError(
                f"batch {batch_id} attempt {taken.attempt} was already decided: "
                f"{taken.decision} by {taken.operator}"
            )
        self._require_live()
        self._batch(batch_id)
        if decision not in DECISIONS:
            raise IllegalTransition(
                f"unknown decision {decision!r} (one of {', '.join(DECISIONS)})"
            )
        if self.awaiting is None:
            raise IllegalTransition(
                f"run {self.id} is {self.state}: no failure awaits a decision"
            )
        awaiting_batch, awaiting_attempt = self.awaiting
        if batch_id != awaiting_batch:
            raise IllegalTransition(
                f"batch {batch_id} has no failure awaiting a decision; "
                f"batch {awaiting_batch} attempt {awaiting_attempt} does"
            )
        if attempt is not None and attempt != awaiting_attempt:
            raise IllegalTransition(
                f"batch {batch_id} attempt {attempt} is not the failure awaiting a "
                f"decision; attempt {awaiting_attempt} is"
            )
        if decision == "recover" and not self.proposal:
            raise IllegalTransition(
                f"strategy {self.strategy or '(none)'} proposed no fix for batch "
                f"{batch_id}: choose retry, skip or abort"
            )
        self._trigger(
            self.OperatorDecided,
            batch_id=batch_id,
            attempt=awaiting_attempt,
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

    def skip_batch(self) -> str:
        """Carries out a recorded ``skip`` decision; returns the batch skipped."""
        self._require_live()
        decision = self.decision
        if decision is None or decision.carried_out or decision.decision != "skip":
            raise IllegalTransition("no skip decision waits to be carried out")
        self._trigger(
            self.BatchSkipped, batch_id=decision.batch_id, operator=decision.operator
        )
        return decision.batch_id

    def verify_batch(self, batch_id: str, attempt: int) -> None:
        """Marks the running attempt verified: every step passed."""
        batch = self._require_running_attempt(batch_id, attempt)
        if batch.failure is not None:
            raise IllegalTransition(f"batch {batch_id} attempt {attempt} failed")
        self._trigger(self.BatchVerified, batch_id=batch_id, attempt=attempt)

    def batch_committed(self, batch_id: str, attempt: int, commit: str) -> None:
        """Records the commit that a verified batch became."""
        self._require_verified(batch_id, attempt)
        self._trigger(
            self.BatchCommitted, batch_id=batch_id, attempt=attempt, commit=commit
        )

    def batch_left_uncommitted(self, batch_id: str, attempt: int, reason: str) -> None:
        """Records that a verified batch was left uncommitted, and why."""
        self._require_verified(batch_id, attempt)
        self._trigger(
            self.BatchLeftUncommitted, batch_id=batch_id, attempt=attempt, reason=reason
        )

    def _require_verified(self, batch_id: str, attempt: int) -> None:
        self._require_live()
        batch = self._batch(batch_id)
        if batch.status != "verified" or batch.attempts != attempt:
            raise IllegalTransition(
                f"batch {batch_id} attempt {attempt} is not verified"
            )

    def abort(self, *, operator: str, reason: str) -> None:
        """Ends the run without completing it."""
        self._require_live()
        self._trigger(self.RunAborted, operator=operator, reason=reason)

    def complete(self) -> None:
        """Ends the run: every batch is verified or skipped."""
        self._require_live()
        left = [
            b
            for b in self.batch_order
            if self.batches[b].status not in ("verified", "skipped")
        ]
        if left:
            raise IllegalTransition(
                f"run {self.id} cannot complete: batch {left[0]} is "
                f"{self.batches[left[0]].status}"
            )
        counts: dict[str, int] = {}
        for batch_id in self.batch_order:
            status = self.batches[batch_id].status
            counts[status] = counts.get(status, 0) + 1
        self._trigger(
            self.RunCompleted,
            summary={
                "batches": len(self.batch_order),
                "verified": counts.get("verified", 0),
                "skipped": counts.get("skipped", 0),
                "attempts": sum(self.batches[b].attempts for b in self.batch_order),
            },
        )


def new_runner_id() -> str:
    """A fresh id for one runner process."""
    return uuid4().hex[:12]
