"""What a runner returns: typed outcomes made from the run's state, and the
session a host's ``with runner.batch(...)`` block gets."""

from __future__ import annotations

import time
from pathlib import Path

import attrs

from recovery_core.errors import IllegalTransition
from recovery_core.plan import Batch
from recovery_core.records import Failure, OpenDecision, RunView

__all__ = [
    "Aborted",
    "BatchOutcome",
    "BatchSession",
    "Completed",
    "Halted",
    "Outcome",
    "Verified",
    "outcome_of",
]


@attrs.frozen
class Completed:
    """Every batch was verified or skipped; the run is complete."""

    run_id: str
    view: RunView
    exit_code: int = 0


@attrs.frozen
class Verified:
    """The batch's attempt passed every step (and was committed, if its strategy
    says so); the run goes on."""

    run_id: str
    view: RunView
    batch_id: str
    attempt: int
    commit: str | None
    exit_code: int = 0


@attrs.frozen
class Halted:
    """A batch failed; the run waits for one of ``decisions`` (``open`` says
    for which batch and attempt). ``made_by_host``: the batch is made by the
    host application (it has no actions), so a retry is the host's to carry out."""

    run_id: str
    view: RunView
    failure: Failure
    decisions: tuple[str, ...]
    open: OpenDecision
    made_by_host: bool = False
    exit_code: int = 3


@attrs.frozen
class Aborted:
    """The run was aborted."""

    run_id: str
    view: RunView
    reason: str
    exit_code: int = 4


#: What :meth:`Runner.run` returns.
Outcome = Completed | Halted | Aborted
#: What a :meth:`Runner.batch` block ends with.
BatchOutcome = Verified | Halted | Aborted


def outcome_of(view: RunView, *, made_by_host: bool = False) -> Outcome:
    """The outcome the run's state says: completed, aborted or halted."""
    if view.state == "completed":
        return Completed(run_id=view.run_id, view=view)
    if view.state == "aborted":
        return Aborted(run_id=view.run_id, view=view, reason=view.abort_reason or "")
    failure, open_now = view.failure, view.open_decision
    if view.state != "halted" or failure is None or open_now is None:
        raise IllegalTransition(f"run {view.run_id} is {view.state}: no outcome yet")
    return Halted(
        run_id=view.run_id,
        view=view,
        failure=failure,
        decisions=view.decisions,
        open=open_now,
        made_by_host=made_by_host,
    )


@attrs.define
class BatchSession:
    """One attempt at a batch, as a host's ``with runner.batch(...)`` block sees
    it. ``outcome`` is set when the block has been left."""

    run_id: str
    batch: Batch
    attempt: int
    baseline: str | None
    origin: str | None
    root: Path
    started: float = attrs.field(factory=time.monotonic, repr=False)
    outcome: BatchOutcome | None = None
