"""The rules of a run: what each command of the :class:`~recovery_core.run.Run`
aggregate requires of the run's state.

Each rule is a pure check of a :class:`~recovery_core.records.RunView` that
raises the refusal an operator reads (:class:`IllegalTransition`,
:class:`ConflictError`, :class:`UnknownBatch`; see the exit codes) and makes no
event, so that the aggregate checks everything before it triggers anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recovery_core.errors import ConflictError, IllegalTransition, UnknownBatch
from recovery_core.plan import STATUS_KEYS
from recovery_core.records import DECISIONS, BatchView, DecisionView, RunView

__all__ = [
    "batch_of",
    "plan_changes",
    "require_amendable",
    "require_awaiting",
    "require_claimable",
    "require_completable",
    "require_decidable",
    "require_live",
    "require_retirable",
    "require_running_attempt",
    "require_skip",
    "require_startable",
    "require_verified",
]


def require_live(view: RunView) -> None:
    """Nothing happens after the run completed or was aborted."""
    if view.state in ("completed", "aborted"):
        raise IllegalTransition(
            f"run {view.run_id} is {view.state}: nothing more happens"
        )


def require_retirable(view: RunView, refs: Sequence[Mapping[str, str]]) -> None:
    """Only a finished run's refs are retired (the one thing recorded after the
    end): a running or halted run still needs its baselines and quarantines;
    and something is retired, a ref under the run's own ``refs/recovery/``."""
    if view.state not in ("completed", "aborted"):
        raise IllegalTransition(
            f"run {view.run_id} is {view.state}: only the refs of a finished run "
            "are retired"
        )
    if not refs:
        raise IllegalTransition(f"run {view.run_id}: no ref to retire")
    prefix = f"refs/recovery/{view.run_id}/"
    for ref in refs:
        if not ref["ref"].startswith(prefix) or not ref["target"]:
            raise IllegalTransition(
                f"run {view.run_id}: {ref['ref']!r} is not one of its refs"
            )


def batch_of(view: RunView, batch_id: str) -> BatchView:
    """The batch ``batch_id`` of the run; :class:`UnknownBatch` when it has none."""
    try:
        return view.batch(batch_id)
    except KeyError:
        ids = ", ".join(b.batch_id for b in view.batches)
        raise UnknownBatch(
            f"run {view.run_id} (plan {view.plan_id}) has no batch "
            f"{batch_id!r}; its batches are {ids}"
        ) from None


def require_claimable(view: RunView, runner_id: str, take_over: bool) -> bool:
    """One runner at a time: whether ``runner_id``'s claim is new (it may be
    held already); another runner's claim is a conflict unless ``take_over``."""
    require_live(view)
    held = view.claim
    if held is not None and held.runner_id == runner_id:
        return False
    if held is not None and not take_over:
        raise ConflictError(
            f"run {view.run_id} is driven by runner {held.runner_id} (process "
            f"{held.pid} on {held.host}), working or waiting for a decision; let "
            "it finish, or stop it (a runner that died is taken over: on its own "
            "host at once, from another once its heartbeat is stale)"
        )
    return True


def require_startable(view: RunView, batch_id: str) -> BatchView:
    """Batches run in plan order, one at a time, and none while a failure awaits
    a decision; after a failure only ``retry`` or ``recover`` lets the same
    batch start again."""
    require_live(view)
    batch = batch_of(view, batch_id)
    if view.running_batch is not None:
        raise IllegalTransition(f"batch {view.running_batch.batch_id} is still running")
    expected = view.next_batch
    if expected is None or batch_id != expected.batch_id:
        raise IllegalTransition(
            f"batch {batch_id} cannot start: "
            + (
                f"it is {batch.status}"
                if expected is None or batch.status in ("verified", "skipped")
                else f"batch {expected.batch_id} comes first"
            )
        )
    if view.state == "halted":
        decision = view.decision
        if decision is None:
            raise IllegalTransition(
                f"batch {view.awaiting[0] if view.awaiting else batch_id} failed "
                "and awaits an operator decision"
            )
        if decision.decision not in ("retry", "recover"):
            raise IllegalTransition(
                f"the decision for batch {decision.batch_id} is "
                f"{decision.decision}, not retry or recover"
            )
    return batch


def require_running_attempt(view: RunView, batch_id: str, attempt: int) -> BatchView:
    """Steps are recorded only for the attempt that is running."""
    require_live(view)
    batch = batch_of(view, batch_id)
    if batch.status != "running" or batch.attempts != attempt:
        raise IllegalTransition(
            f"batch {batch_id} attempt {attempt} is not running "
            f"(status {batch.status}, attempt {batch.attempts})"
        )
    return batch


def require_awaiting(view: RunView, batch_id: str, attempt: int) -> None:
    """Only the failure that awaits a decision is answered or quarantined."""
    require_live(view)
    if view.awaiting != (batch_id, attempt):
        raise IllegalTransition(
            f"no failure of batch {batch_id} attempt {attempt} awaits a decision"
        )


def require_verified(view: RunView, batch_id: str, attempt: int) -> None:
    """A batch is committed (or left uncommitted) only once verified."""
    require_live(view)
    batch = batch_of(view, batch_id)
    if batch.status != "verified" or batch.attempts != attempt:
        raise IllegalTransition(f"batch {batch_id} attempt {attempt} is not verified")


def require_decidable(
    view: RunView, batch_id: str, decision: str, attempt: int | None
) -> int:
    """A decision answers the failure that awaits one (the right batch and
    attempt), once: a second one before the first is carried out, or after an
    abort, is a conflict. ``recover`` only when the strategy proposed a fix.
    Returns the attempt decided."""
    taken = view.decision
    if (
        taken is not None
        and (not taken.carried_out or view.state == "aborted")
        and taken.batch_id == batch_id
        and attempt in (None, taken.attempt)
    ):
        raise ConflictError(
            f"batch {batch_id} attempt {taken.attempt} was already decided: "
            f"{taken.decision} by {taken.who}"
        )
    require_live(view)
    batch_of(view, batch_id)
    if decision not in DECISIONS:
        raise IllegalTransition(
            f"unknown decision {decision!r} (one of {', '.join(DECISIONS)})"
        )
    if view.awaiting is None:
        raise IllegalTransition(
            f"run {view.run_id} is {view.state}: no failure awaits a decision"
        )
    awaiting_batch, awaiting_attempt = view.awaiting
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
    if decision == "recover" and not view.proposal:
        raise IllegalTransition(
            f"strategy {view.strategy or '(none)'} proposed no fix for batch "
            f"{batch_id}: choose retry, skip or abort"
        )
    return awaiting_attempt


def require_skip(view: RunView) -> DecisionView:
    """A skip is carried out only when one was decided and not yet carried out."""
    require_live(view)
    decision = view.decision
    if decision is None or decision.carried_out or decision.decision != "skip":
        raise IllegalTransition("no skip decision waits to be carried out")
    return decision


def require_completable(view: RunView) -> None:
    """A run completes only when every batch is verified or skipped."""
    require_live(view)
    left = view.next_batch
    if left is not None:
        raise IllegalTransition(
            f"run {view.run_id} cannot complete: batch {left.batch_id} is {left.status}"
        )


def _batches(plan: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A plan's batches by id, less the status keys the library writes back."""
    return {
        b["batch_id"]: {k: v for k, v in b.items() if k not in STATUS_KEYS}
        for b in plan.get("batches", ())
    }


def plan_changes(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """What differs between two plans, batch by batch, in the new plan's order
    (then the removed ones): ``{"batch_id", "change": "added" | "removed" |
    "changed", "fields": [...]}``, the fields being the batch's keys that differ."""
    before, after = _batches(old), _batches(new)
    changes: list[dict[str, Any]] = []
    for batch_id, batch in after.items():
        was = before.get(batch_id)
        if was is None:
            changes.append({"batch_id": batch_id, "change": "added", "fields": []})
        elif was != batch:
            fields = sorted(
                k for k in was.keys() | batch.keys() if was.get(k) != batch.get(k)
            )
            changes.append(
                {"batch_id": batch_id, "change": "changed", "fields": fields}
            )
    changes += [
        {"batch_id": batch_id, "change": "removed", "fields": []}
        for batch_id in before
        if batch_id not in after
    ]
    return changes


def require_amendable(
    view: RunView, old: Mapping[str, Any], new: Mapping[str, Any], batch_id: str
) -> list[dict[str, Any]]:
    """A plan is amended only with a retry of the failure awaiting a decision,
    and only where the run has not been: its plan id stays, the batches it
    verified or skipped stay as they were and first, in their order; the
    failed batch stays. Returns :func:`plan_changes` (refused when empty)."""
    if new.get("plan_id") != old.get("plan_id"):
        raise IllegalTransition(
            f"the amended plan is plan {new.get('plan_id')!r}, not "
            f"{old.get('plan_id')!r}: a run's plan keeps its id"
        )
    before, after = _batches(old), _batches(new)
    done = [b.batch_id for b in view.batches if b.status in ("verified", "skipped")]
    problems = [
        f"batch {i} is {view.batch(i).status}: it cannot change"
        for i in done
        if after.get(i) != before.get(i)
    ]
    if not problems and list(after)[: len(done)] != done:
        problems.append(
            "the batches already verified or skipped must come first, in their "
            f"order: {', '.join(done)}"
        )
    if batch_id not in after:
        problems.append(f"batch {batch_id}, the one to retry, is not in it")
    if problems:
        raise IllegalTransition("the plan cannot be amended so: " + "; ".join(problems))
    changes = plan_changes(old, new)
    if not changes:
        raise IllegalTransition(
            "the amended plan is the plan the run has: decide retry without --plan"
        )
    return changes
