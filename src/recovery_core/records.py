"""What a run's events say, as plain frozen values: the failure record and the
run's state. The state is a function of the events (:func:`apply`), read in this
one place; the aggregate, the projections and every output start from it.

The failure record (:class:`Failure`) is the one description of a failed step:
the ``StepFailed`` event carries it, the run's state, the failure log, the
notification and ``status --json`` show it. A field added to it reaches all of
them.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeVar

import attrs
import cattrs

from recovery_core.fingerprint import failure_fingerprint
from recovery_core.tracebacks import first_line

__all__ = [
    "DECISIONS",
    "BatchStatus",
    "BatchView",
    "ClaimView",
    "Decision",
    "DecisionView",
    "Failure",
    "FailureView",
    "OpenDecision",
    "RunState",
    "RunView",
    "apply",
    "failure_json",
    "failure_of",
    "view_data",
    "view_of",
]

RunState = Literal["running", "halted", "completed", "aborted"]
BatchStatus = Literal["pending", "running", "verified", "failed", "skipped"]
Decision = Literal["retry", "skip", "recover", "abort"]
DECISIONS: Final[tuple[Decision, ...]] = ("retry", "skip", "recover", "abort")

_converter: Final = cattrs.Converter()


@attrs.frozen
class Failure:
    """One failed step of an attempt: everything known about why.

    ``step`` is the step's name within its ``phase`` (``build``,
    ``post_build_validation``, ``runtime_execution``); :attr:`step_id` is both.
    ``baseline`` is the snapshot the attempt started from; ``failure_reason``
    and ``quarantine_ref`` are known once the batch is marked failed and its
    change quarantined."""

    batch_id: str
    attempt: int
    step: str
    phase: str
    kind: str
    component: str = ""
    error: str = ""
    traceback: str = ""
    output_tail: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    changed_files: tuple[str, ...] = ()
    timed_out: bool = False
    baseline: str | None = None
    failure_reason: str | None = None
    quarantine_ref: str | None = None
    #: The gist: the first line of ``error`` that is not blank.
    summary: str = attrs.field(
        default=attrs.Factory(lambda self: first_line(self.error), takes_self=True)
    )
    #: What stays the same when the same failure happens again: see
    #: :func:`recovery_core.fingerprint.failure_fingerprint`.
    fingerprint: str = attrs.field(
        default=attrs.Factory(
            lambda self: failure_fingerprint(
                f"{self.phase}.{self.step}", self.component, self.error
            ),
            takes_self=True,
        )
    )

    @property
    def step_id(self) -> str:
        """``phase.step``, as the failure log and ``status`` name it."""
        return f"{self.phase}.{self.step}"

    def as_data(self) -> dict[str, Any]:
        """The record as JSON-ready data (as ``StepFailed`` stores it)."""
        data: dict[str, Any] = _converter.unstructure(self)
        data["changed_files"] = list(self.changed_files)
        return data


#: The failure record's former name, kept for hosts that use it.
FailureView = Failure


def failure_of(data: Mapping[str, Any]) -> Failure:
    """The record from its stored data; fields it lacks (added later) take
    their defaults, and every error names the field."""
    return _converter.structure(dict(data), Failure)


def failure_json(failure: Failure) -> dict[str, Any]:
    """The record as the outputs show it: every field, ``step`` as ``phase.step``."""
    return {**failure.as_data(), "step": failure.step_id}


@attrs.frozen
class BatchView:
    """One batch's status within a run.

    ``baseline`` is the snapshot taken before the current attempt; ``origin`` the
    one taken before the first, against which the batch's changes are measured
    (a strategy that leaves a failed change in the tree leaves it in the next
    attempt's baseline too). ``answer`` is the strategy's recorded answer to the
    latest failure (``RecoveryAttempted``'s outcome) and ``notified`` whether a
    notification of it is recorded: a runner killed before them leaves them to
    the next one. ``driver``: the runner that held the run when the current
    attempt started (where processes it left running would be)."""

    batch_id: str
    status: BatchStatus = "pending"
    verified: bool = False
    attempts: int = 0
    failure_reason: str | None = None
    commit: str | None = None
    uncommitted_reason: str | None = None
    baseline: str | None = None
    origin: str | None = None
    steps_passed: tuple[str, ...] = ()
    #: The current attempt's steps that failed a try and were run again, once
    #: per failed try; ``flaky``: those of them that then passed.
    retried: tuple[str, ...] = ()
    flaky: tuple[str, ...] = ()
    failure: Failure | None = None
    answer: dict[str, Any] | None = None
    notified: bool = False
    driver: ClaimView | None = None
    #: The fingerprint of the previous attempt's failure (None on the first
    #: attempt): the same again means a deterministic failure.
    previous_fingerprint: str | None = None
    #: How many ``retry`` and ``recover`` decisions the batch's policy took in
    #: this run (its budgets are counted against them).
    policy_retries: int = 0
    policy_recovers: int = 0
    #: What the batch's policy said of the latest failure (``PolicyDecided``
    #: or ``PolicyEscalated``); None when it was not consulted (yet).
    policy_note: str | None = None


@attrs.frozen
class DecisionView:
    """A decision on a failure: an operator's (``OperatorDecided``), or one
    that a batch's policy took by itself (``PolicyDecided``: ``decided_by`` is
    ``"policy"``, ``operator`` is ``"policy"`` and ``rule`` says which budget,
    such as ``auto_retry 1 of 3``)."""

    batch_id: str
    attempt: int
    decision: Decision
    operator: str
    reason: str
    carried_out: bool = False
    decided_by: Literal["operator", "policy"] = "operator"
    rule: str | None = None

    @property
    def who(self) -> str:
        """Who decided, as people read it: the operator's name, or
        ``policy (RULE)``."""
        if self.decided_by == "policy":
            return f"policy ({self.rule})"
        return self.operator


@attrs.frozen
class ClaimView:
    """Who drives the run."""

    host: str
    pid: int
    runner_id: str
    #: When the claim was recorded (seconds since the epoch).
    since: float = 0.0


@attrs.frozen
class OpenDecision:
    """The failure awaiting an operator: its batch and attempt, the decisions
    that may be taken (none once one is recorded and waits to be carried
    out), and the recorded one."""

    batch_id: str
    attempt: int
    choices: tuple[Decision, ...]
    recorded: DecisionView | None = None


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
    #: The package and version that ship ``strategy`` (None where not known,
    #: or recorded before they were).
    strategy_package: str | None = None
    strategy_version: str | None = None
    #: The git refs of the finished run that ``RefsRetired`` retired, as
    #: ``(ref, target)`` in the order recorded.
    retired_refs: tuple[tuple[str, str], ...] = ()

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

    @property
    def open_decision(self) -> OpenDecision | None:
        """The failure awaiting a decision, if any (see :class:`OpenDecision`)."""
        if self.awaiting is None:
            return None
        pending = self.decision
        if pending is not None and pending.carried_out:
            pending = None
        batch_id, attempt = self.awaiting
        choices = () if pending is not None else self.decisions
        return OpenDecision(batch_id, attempt, choices, pending)

    @property
    def running_batch(self) -> BatchView | None:
        """The batch whose attempt is under way, if any."""
        return next((b for b in self.batches if b.status == "running"), None)

    @property
    def next_batch(self) -> BatchView | None:
        """The first batch that is neither verified nor skipped."""
        done = ("verified", "skipped")
        return next((b for b in self.batches if b.status not in done), None)

    @property
    def failure(self) -> Failure | None:
        """The failure awaiting a decision, if any."""
        return None if self.awaiting is None else self.batch(self.awaiting[0]).failure


def view_data(view: RunView) -> dict[str, Any]:
    """The run's state as JSON-ready data (what a snapshot stores)."""
    data: dict[str, Any] = _converter.unstructure(view)
    return data


def view_of(data: Mapping[str, Any]) -> RunView:
    """The run's state from :func:`view_data`."""
    return _converter.structure(dict(data), RunView)


# -- the state as a function of the events ------------------------------------

_T = TypeVar("_T", bound=attrs.AttrsInstance)


@functools.cache
def _fields_of(
    cls: type[attrs.AttrsInstance],
) -> tuple[dict[str, int], Callable[[Any], tuple[Any, ...]]]:
    """Each field's place among ``cls.__init__``'s arguments, and a getter of
    all of them, in that order. The classes here take every field by its
    name, positionally, and have no validators or converters (checked)."""
    fields = attrs.fields(cls)
    assert len(fields) > 1
    assert all(
        f.init
        and not f.kw_only
        and f.alias == f.name
        and f.validator is None
        and f.converter is None
        for f in fields
    )
    places = {f.name: i for i, f in enumerate(fields)}
    return places, operator.attrgetter(*places)


def _evolve(inst: _T, **changes: Any) -> _T:
    """``attrs.evolve(inst, **changes)``: a copy of ``inst`` with ``changes``
    (a name that is no field's is a :class:`KeyError`). Faster (a replay
    makes a copy or two per event): the fields are looked up once per class,
    and passed positionally."""
    places, values_of = _fields_of(type(inst))
    values = list(values_of(inst))
    for name, value in changes.items():
        values[places[name]] = value
    return type(inst)(*values)


#: What an event changes of the run's state: fields of :class:`RunView`.
_Changes = dict[str, Any]
_Apply = Callable[[RunView, Any], _Changes]
_APPLY: dict[str, _Apply] = {}


def _on(name: str) -> Callable[[_Apply], _Apply]:
    def register(function: _Apply) -> _Apply:
        _APPLY[f"recovery:{name}"] = function
        return function

    return register


def apply(view: RunView | None, event: Any) -> RunView:
    """The state after ``event`` (a run event), from the state before it
    (None before the first)."""
    topic: str = type(event).TOPIC
    if view is None:
        view, changes = _started(event), {}
    else:
        changes = _APPLY.get(topic, _unchanged)(view, event)
    return _evolve(
        view, **changes, version=event.originator_version, head_digest=event.digest
    )


def _unchanged(view: RunView, event: Any) -> _Changes:
    return {}  # an event that says nothing of the state


def _started(event: Any) -> RunView:
    ids = [b["batch_id"] for b in event.plan["batches"]]
    return RunView(
        run_id=str(event.originator_id),
        plan_id=event.plan_id,
        plan_digest=event.plan_digest,
        plan_path=event.plan_path,
        workspace=event.workspace,
        store=event.store,
        state="running",
        batches=tuple(BatchView(batch_id=i) for i in ids),
        awaiting=None,
        decision=None,
        claim=None,
        version=0,
        head_digest="",
        started_at=event.timestamp.isoformat(),
    )


def _batches(view: RunView, batch_id: str, **changes: Any) -> tuple[BatchView, ...]:
    """The run's batches, with ``changes`` made to the one ``batch_id`` names."""
    return tuple(
        _evolve(b, **changes) if b.batch_id == batch_id else b for b in view.batches
    )


def _carried_out(view: RunView) -> DecisionView | None:
    decision = view.decision
    return None if decision is None else _evolve(decision, carried_out=True)


@_on("PlanAmended")
def _plan_amended(view: RunView, e: Any) -> _Changes:
    kept = {b.batch_id: b for b in view.batches}
    ids = [b["batch_id"] for b in e.plan["batches"]]
    return {
        "plan_digest": e.plan_digest,
        "plan_path": e.plan_path,
        "batches": tuple(kept.get(i) or BatchView(batch_id=i) for i in ids),
    }


@_on("RunnerClaimed")
def _claimed(view: RunView, e: Any) -> _Changes:
    claim = ClaimView(e.host, e.pid, e.runner_id, e.timestamp.timestamp())
    return {"claim": claim}


@_on("RunnerReleased")
def _released(view: RunView, e: Any) -> _Changes:
    return {"claim": None}


@_on("BatchStarted")
def _batch_started(view: RunView, e: Any) -> _Changes:
    origin = e.baseline if e.attempt == 1 else view.batch(e.batch_id).origin
    before = view.batch(e.batch_id).failure
    batches = _batches(
        view,
        e.batch_id,
        status="running",
        attempts=e.attempt,
        previous_fingerprint=None if before is None else before.fingerprint,
        policy_note=None,
        baseline=e.baseline,
        origin=origin,
        steps_passed=(),
        retried=(),
        flaky=(),
        failure=None,
        failure_reason=None,
        answer=None,
        notified=False,
        driver=view.claim,
    )
    return {
        "batches": batches,
        "decision": _carried_out(view),
        "state": "running",
        "awaiting": None,
        "proposal": False,
        "strategy": None,
        "strategy_package": None,
        "strategy_version": None,
    }


@_on("StepPassed")
def _step_passed(view: RunView, e: Any) -> _Changes:
    batch = view.batch(e.batch_id)
    flaky = (*batch.flaky, e.step) if e.step in batch.retried else batch.flaky
    steps_passed = (*batch.steps_passed, e.step)
    return {
        "batches": _batches(view, e.batch_id, steps_passed=steps_passed, flaky=flaky)
    }


@_on("StepRetried")
def _step_retried(view: RunView, e: Any) -> _Changes:
    retried = view.batch(e.batch_id).retried
    return {"batches": _batches(view, e.batch_id, retried=(*retried, e.step))}


@_on("StepFailed")
def _step_failed(view: RunView, e: Any) -> _Changes:
    failure: Failure = e.record
    if failure.baseline is None:
        failure = _evolve(failure, baseline=view.batch(e.batch_id).baseline)
    batches = _batches(
        view,
        e.batch_id,
        failure=failure,
        answer=None,
        notified=False,
        policy_note=None,
    )
    return {"batches": batches}


@_on("BatchMarkedFailed")
def _marked_failed(view: RunView, e: Any) -> _Changes:
    failure = view.batch(e.batch_id).failure
    if failure is not None:
        failure = _evolve(failure, failure_reason=e.failure_reason)
    batches = _batches(
        view,
        e.batch_id,
        status="failed",
        verified=False,
        failure_reason=e.failure_reason,
        failure=failure,
    )
    return {
        "batches": batches,
        "state": "halted",
        "awaiting": (e.batch_id, e.attempt),
        "decision": None,
    }


@_on("ChangesQuarantined")
def _quarantined(view: RunView, e: Any) -> _Changes:
    failure = view.batch(e.batch_id).failure
    if failure is None or failure.attempt != e.attempt:
        return {}
    kept = _evolve(failure, quarantine_ref=e.quarantine_ref)
    return {"batches": _batches(view, e.batch_id, failure=kept)}


@_on("RecoveryAttempted")
def _recovery_attempted(view: RunView, e: Any) -> _Changes:
    proposal = bool(e.outcome.get("proposal"))
    return {
        "batches": _batches(view, e.batch_id, answer=dict(e.outcome)),
        "strategy": e.strategy,
        "strategy_package": e.strategy_package,
        "strategy_version": e.strategy_version,
        "proposal": proposal,
    }


@_on("OperatorNotified")
def _notified(view: RunView, e: Any) -> _Changes:
    return {"batches": _batches(view, e.batch_id, notified=True)}


@_on("OperatorDecided")
def _decided(view: RunView, e: Any) -> _Changes:
    decision = DecisionView(e.batch_id, e.attempt, e.decision, e.operator, e.reason)
    return {"decision": decision}


@_on("PolicyDecided")
def _policy_decided(view: RunView, e: Any) -> _Changes:
    decision = DecisionView(
        e.batch_id,
        e.attempt,
        e.decision,
        "policy",
        e.reason,
        decided_by="policy",
        rule=e.rule,
    )
    batch = view.batch(e.batch_id)
    batches = _batches(
        view,
        e.batch_id,
        policy_retries=batch.policy_retries + (e.decision == "retry"),
        policy_recovers=batch.policy_recovers + (e.decision == "recover"),
        policy_note=f"{e.decision} decided by the policy ({e.rule}): {e.reason}",
    )
    return {"batches": batches, "decision": decision}


@_on("PolicyEscalated")
def _policy_escalated(view: RunView, e: Any) -> _Changes:
    return {"batches": _batches(view, e.batch_id, policy_note=e.reason)}


@_on("BatchVerified")
def _verified(view: RunView, e: Any) -> _Changes:
    batches = _batches(
        view, e.batch_id, status="verified", verified=True, failure_reason=None
    )
    return {"batches": batches}


@_on("BatchCommitted")
def _committed(view: RunView, e: Any) -> _Changes:
    return {"batches": _batches(view, e.batch_id, commit=e.commit)}


@_on("BatchLeftUncommitted")
def _left_uncommitted(view: RunView, e: Any) -> _Changes:
    return {"batches": _batches(view, e.batch_id, uncommitted_reason=e.reason)}


@_on("BatchSkipped")
def _skipped(view: RunView, e: Any) -> _Changes:
    return {
        "batches": _batches(view, e.batch_id, status="skipped", verified=False),
        "decision": _carried_out(view),
        "state": "running",
        "awaiting": None,
    }


@_on("RunAborted")
def _aborted(view: RunView, e: Any) -> _Changes:
    return {
        "decision": _carried_out(view),
        "state": "aborted",
        "abort_reason": e.reason,
        "awaiting": None,
    }


@_on("RunCompleted")
def _completed(view: RunView, e: Any) -> _Changes:
    return {"state": "completed"}


@_on("RefsRetired")
def _refs_retired(view: RunView, e: Any) -> _Changes:
    retired = tuple((r["ref"], r["target"]) for r in e.refs)
    return {"retired_refs": (*view.retired_refs, *retired)}
