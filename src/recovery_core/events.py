"""The events of a run: what the record holds, event by event.

Each event carries ``prev_digest`` and ``digest``, its link in the run's hash
chain (:mod:`recovery_core.chain`), and has an explicit, stable topic
(``recovery:<Name>``), so that moving or renaming a class never breaks a
stored history. An event's meaning never changes once released: a new meaning
is a new event, or a new ``class_version`` with an upcaster (``upcast_v1_v2``).
The run's state follows from its events (:func:`recovery_core.records.apply`);
the commands that record them, each under its rule, are the aggregate's
(:class:`recovery_core.run.Run`), which also names every event
(``Run.StepFailed`` is :class:`StepFailed`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from eventsourcing.domain import AggregateCreated, AggregateEvent
from eventsourcing.utils import register_topic

from recovery_core.records import Failure, apply, failure_of

__all__ = [
    "BatchCommitted",
    "BatchLeftUncommitted",
    "BatchMarkedFailed",
    "BatchSkipped",
    "BatchStarted",
    "BatchVerified",
    "ChangesQuarantined",
    "Event",
    "OperatorDecided",
    "OperatorNotified",
    "PlanAmended",
    "PolicyDecided",
    "PolicyEscalated",
    "RecoveryAttempted",
    "RefsRetired",
    "RunAborted",
    "RunCompleted",
    "RunnerClaimed",
    "RunnerReleased",
    "Started",
    "StepFailed",
    "StepPassed",
    "StepRetried",
]


class Event(AggregateEvent):
    """The base of every run event: each carries its link in the hash chain,
    and the run's state follows from it (:func:`recovery_core.records.apply`)."""

    TOPIC: ClassVar[str]
    prev_digest: str
    digest: str

    def apply(self, run: Any) -> None:
        run.state_view = apply(getattr(run, "state_view", None), self)


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
        run.plan, run.plan_path = self.plan, self.plan_path
        super().apply(run)


class RunnerClaimed(Event):
    """Who now drives the run."""

    TOPIC = "recovery:RunnerClaimed"
    host: str
    pid: int
    runner_id: str


class RunnerReleased(Event):
    """The runner stopped driving the run (it halted, ended, or was stopped)."""

    TOPIC = "recovery:RunnerReleased"
    runner_id: str


class BatchStarted(Event):
    """An attempt at a batch began, from this baseline."""

    TOPIC = "recovery:BatchStarted"
    batch_id: str
    attempt: int
    baseline: str | None


class StepPassed(Event):
    """A step of the attempt passed."""

    TOPIC = "recovery:StepPassed"
    batch_id: str
    attempt: int
    step: str
    phase: str
    duration_s: float


class StepRetried(Event):
    """A try of a step with ``retries`` failed and the step is run again
    (a flaky step is one that then passes): the try, and how it failed."""

    TOPIC = "recovery:StepRetried"
    batch_id: str
    attempt: int
    step: str
    phase: str
    tries: int
    error: str
    exit_code: int | None
    timed_out: bool
    duration_s: float


class StepFailed(Event):
    """A step of the attempt failed: the failure record
    (:class:`~recovery_core.records.Failure`) as data. Version 1 had the
    record's fields at the top level."""

    TOPIC = "recovery:StepFailed"
    class_version = 2
    batch_id: str
    attempt: int
    failure: dict[str, Any]

    @property
    def record(self) -> Failure:
        """The failure record."""
        return failure_of(self.failure)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        names = attrs.fields_dict(Failure).keys() - {"batch_id", "attempt"}
        failure = {k: state.pop(k) for k in names if k in state}
        state["failure"] = {
            "batch_id": state["batch_id"],
            "attempt": state["attempt"],
            **failure,
        }


class BatchMarkedFailed(Event):
    """The attempt failed; the run halts until an operator decides."""

    TOPIC = "recovery:BatchMarkedFailed"
    batch_id: str
    attempt: int
    failure_reason: str


class ChangesQuarantined(Event):
    """The faulty change was kept under a ref and taken out of the tree."""

    TOPIC = "recovery:ChangesQuarantined"
    batch_id: str
    attempt: int
    quarantine_ref: str
    files: list[str]
    tree_id: str


class RecoveryAttempted(Event):
    """The recovery strategy answered the failure: its name, the package
    and version that ship it (None where not known), and its answer.
    Version 1 had no package or version: read back, they are None."""

    TOPIC = "recovery:RecoveryAttempted"
    class_version = 2
    batch_id: str
    attempt: int
    strategy: str
    strategy_package: str | None
    strategy_version: str | None
    outcome: dict[str, Any]

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["strategy_package"] = None
        state["strategy_version"] = None


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


class PolicyDecided(Event):
    """A batch's policy answered a failure by itself (never an operator's
    decision: that is ``OperatorDecided``); ``rule`` is the budget it
    used (``auto_retry 1 of 3``), ``reason`` why it applied."""

    TOPIC = "recovery:PolicyDecided"
    batch_id: str
    attempt: int
    decision: str
    rule: str
    reason: str


class PolicyEscalated(Event):
    """A batch's policy was consulted on a failure and left the decision
    to the operator, and why (a deterministic failure, a budget used up,
    a proposal that did not pass pre-validation)."""

    TOPIC = "recovery:PolicyEscalated"
    batch_id: str
    attempt: int
    reason: str


class PlanAmended(Event):
    """An operator amended the plan with a retry decision: from now on the
    run follows ``plan`` (only batches not yet verified or skipped differ;
    ``changes`` says which, batch by batch)."""

    TOPIC = "recovery:PlanAmended"
    plan_digest: str
    previous_digest: str
    plan: dict[str, Any]
    plan_path: str | None
    changes: list[dict[str, Any]]
    operator: str
    reason: str

    def apply(self, run: Any) -> None:
        run.plan, run.plan_path = self.plan, self.plan_path
        super().apply(run)


class BatchVerified(Event):
    """Every step of the attempt passed."""

    TOPIC = "recovery:BatchVerified"
    batch_id: str
    attempt: int


class BatchCommitted(Event):
    """The verified batch became a commit."""

    TOPIC = "recovery:BatchCommitted"
    batch_id: str
    attempt: int
    commit: str


class BatchLeftUncommitted(Event):
    """A verified batch with ``commit_strategy: "commit"`` was not committed
    (its change is left in the working tree), and why."""

    TOPIC = "recovery:BatchLeftUncommitted"
    batch_id: str
    attempt: int
    reason: str


class BatchSkipped(Event):
    """The operator's skip was carried out; the run goes on without the batch."""

    TOPIC = "recovery:BatchSkipped"
    batch_id: str
    operator: str


class RunAborted(Event):
    """The run ended without completing."""

    TOPIC = "recovery:RunAborted"
    operator: str
    reason: str


class RunCompleted(Event):
    """Every batch was verified or skipped."""

    TOPIC = "recovery:RunCompleted"
    summary: dict[str, Any]


class RefsRetired(Event):
    """The git refs of a finished run that are to be deleted (``recovery
    prune``): each ``{"ref", "target"}``, the object it pointed at. Recorded
    before the refs are deleted, so that a prune cut off halfway is finished
    by the next one (an export made before keeps them)."""

    TOPIC = "recovery:RefsRetired"
    refs: list[dict[str, str]]
    operator: str
    reason: str


# eventsourcing registers the explicit topics of the events an aggregate class
# holds when that class is made; these are defined apart from it, so here.
for _event in Event.__subclasses__():
    register_topic(_event.TOPIC, _event)
