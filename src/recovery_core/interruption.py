"""Attempts a runner's stop cut short, finished by the next runner (or by the
same one, on SIGINT or SIGTERM).

An attempt that started and never ended is recorded as interrupted (phase
``runtime_execution``, step ``interrupted``) and halts the run like any
failure; for a runner that was lost (killed or crashed), what it left running
is ended first. An outcome whose effects a kill cut short (a halt not yet
answered by the strategy or notified, a verified batch not yet committed) has
them carried out: the outcome's event is the intent, the effects follow it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from uuid import UUID

from recovery_core.attempt import RUNTIME, Attempts
from recovery_core.outcomes import BatchSession
from recovery_core.ports import RunnerHost, StepOutcome
from recovery_core.records import BatchView, RunView

__all__ = ["LOST", "SIGNALLED", "interrupted", "settled"]

LOST: Final = (
    "the runner stopped during this attempt (killed or crashed); its result is unknown"
)
SIGNALLED: Final = "the runner was interrupted (SIGINT or SIGTERM) during the batch"


def interrupted(attempts: Attempts, host: RunnerHost, run_id: UUID, error: str) -> bool:
    """Records the attempt under way, if any, as interrupted with ``error``
    (:data:`LOST` or :data:`SIGNALLED`); whether there was one."""
    running = attempts.app.view(run_id).running_batch
    if running is None:
        return False
    batch = attempts.plan.batch(running.batch_id)
    if error == LOST:  # before the tree is looked at, let alone restored
        error += _ended(host, run_id, running)
    outcome = StepOutcome(
        passed=False, duration_s=0.0, error=error, component=batch.component or ""
    )
    outcome = attempts.with_guard(outcome, running.baseline)
    changed = attempts.changed(running.origin)
    attempts.halting.fail(
        run_id,
        batch,
        running.attempts,
        RUNTIME,
        "interrupted",
        "interrupt",
        outcome,
        changed,
    )
    return True


def settled(attempts: Attempts, view: RunView) -> bool:
    """Carries out what a runner killed after recording an outcome left undone:
    a halt whose strategy answer, policy verdict or notification is not
    recorded yet (a decision the policy recorded is then carried out like an
    operator's, once: the attempt it starts marks it carried out), and a
    verified batch to commit whose commit is not recorded (the workspace finds
    a commit made before the kill, and brings the index in step, so that it is
    made once). Whether it did anything."""
    run_id, plan = UUID(view.run_id), attempts.plan
    failure = view.failure
    if failure is not None:
        state = view.batch(failure.batch_id)
        notifiers = attempts.halting.notifiers
        notify = not state.notified and view.decision is None and notifiers
        policy = plan.batch(failure.batch_id).policy
        consult = (  # the batch's policy not consulted yet
            policy is not None
            and policy.automatic
            and state.policy_note is None
            and view.decision is None
        )
        if state.answer is not None and not notify and not consult:
            return False
        attempts.halting.finish(run_id, plan.batch(failure.batch_id))
        return True
    last = next((b for b in reversed(view.batches) if b.attempts), None)
    if (
        last is None
        or last.status != "verified"
        or plan.batch(last.batch_id).commit_strategy != "commit"
        or last.commit is not None
        or last.uncommitted_reason is not None
    ):
        return False
    changed = attempts.changed(last.origin)
    if not changed:
        return False
    session = BatchSession(
        run_id=view.run_id,
        batch=plan.batch(last.batch_id),
        attempt=last.attempts,
        baseline=last.baseline,
        origin=last.origin,
        root=attempts.workspace.root,
    )
    chain = attempts.app.view(run_id).head_digest
    attempts.project(run_id, view=attempts.commit(session, changed, chain))
    return True


def _ended(host: RunnerHost, run_id: UUID, running: BatchView) -> str:
    """Ends what the lost runner's attempt left running (its actions and steps
    carry the run, batch and attempt in their environment), through the host's
    ``end_processes`` when it has one; what was done, said."""
    driver = running.driver
    if driver is not None and driver.host != host.host:
        return (
            f"; it ran on host {driver.host} (runner pid {driver.pid}): what it "
            "left running there cannot be ended from here"
        )
    end = getattr(host, "end_processes", None)
    if not callable(end):
        return ""
    marks = {
        "RECOVERY_RUN_ID": str(run_id),
        "RECOVERY_BATCH_ID": running.batch_id,
        "RECOVERY_ATTEMPT": str(running.attempts),
    }
    ended: Sequence[int] = end(marks)
    if not ended:
        return ""
    return "; its processes left running were ended (pids " + (
        ", ".join(map(str, ended)) + ")"
    )
