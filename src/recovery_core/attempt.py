"""One attempt at a batch, made by a runner.

Starting takes the baseline and records ``BatchStarted``. The runner's attempt
then runs the batch's actions (phase ``build``), or the strategy's proposed fix
after a recover decision; a host's block makes the change in its own code
instead. The validation steps follow in order (phase ``post_build_validation``)
up to the first failure, then the guards, then ``BatchVerified`` (and the
commit, when the batch says so). Each step is timed and recorded before its
hooks hear of it; a failed one goes to :class:`~recovery_core.halting.Halting`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final
from uuid import UUID

import attrs

from recovery_core.errors import RecoveryError
from recovery_core.halting import Halting
from recovery_core.hooks import BatchEnd, BatchStart, StepResult, StepStart
from recovery_core.outcomes import BatchSession
from recovery_core.plan import Batch, ExecutionPlan, Step
from recovery_core.ports import (
    RecoveryStrategy,
    StepContext,
    StepOutcome,
    StepRunner,
    Workspace,
    runs_workspace_code,
)
from recovery_core.records import Failure, RunView
from recovery_core.tracebacks import component_from_traceback, first_line

if TYPE_CHECKING:
    from recovery_core.application import RecoveryApp
    from recovery_core.run import Run

__all__ = ["BUILD", "RUNTIME", "VALIDATION", "Attempts"]

BUILD: Final = "build"
VALIDATION: Final = "post_build_validation"
RUNTIME: Final = "runtime_execution"


@attrs.frozen
class Attempts:
    """Makes one runner's attempts; ``project`` brings the projections up to a
    run's state, ``hook`` calls the runner's hooks."""

    app: RecoveryApp
    plan: ExecutionPlan
    workspace: Workspace
    step_runners: Mapping[str, StepRunner]
    strategy: RecoveryStrategy
    halting: Halting
    #: ``project(run_id, failures=False, *, view=None)``: the projections
    #: brought up to the run's state (``view``, when the caller has it).
    project: Callable[..., RunView]
    hook: Callable[[str, object], None]

    def make(self, run_id: UUID, batch: Batch) -> None:
        """The runner's attempt at ``batch``: the actions, or the strategy's
        proposed fix after a recover decision; then the validation."""
        view = self.app.view(run_id)
        pending = view.open_decision.recorded if view.open_decision else None
        recovering = pending is not None and pending.decision == "recover"
        fixing = view.batch(batch.batch_id).failure if recovering else None
        proposer = view.strategy  # as RecoveryAttempted recorded it
        session = self.start(run_id, batch)
        if fixing is not None:
            fix = self._fix(session, fixing, proposer)
            built = self._record(session, BUILD, "recover", "recover", fix)
        else:
            context = self._context(session, BUILD, ())
            built = all(
                self._step(session, BUILD, a.as_step(), context) for a in batch.actions
            )
        if built and self.guarded(session, BUILD):
            self.validate(session)

    def start(self, run_id: UUID, batch: Batch) -> BatchSession:
        """Takes the baseline and records the attempt's start."""
        attempt = self.app.view(run_id).batch(batch.batch_id).attempts + 1
        baseline = self.workspace.snapshot(
            run_id=str(run_id), batch_id=batch.batch_id, attempt=attempt
        )

        def started(run: Run) -> RunView:
            run.start_batch(batch.batch_id, baseline)
            return run.view()

        view = self.project(run_id, view=self.app.update(run_id, started))
        session = BatchSession(
            run_id=str(run_id),
            batch=batch,
            attempt=attempt,
            baseline=baseline,
            origin=view.batch(batch.batch_id).origin,
            root=self.workspace.root,
        )
        index = self.plan.batch_ids.index(batch.batch_id) + 1
        start = BatchStart(
            str(run_id),
            batch.batch_id,
            attempt,
            index,
            len(self.plan.batches),
            batch.description,
        )
        self.hook("on_batch_start", start)
        return session

    def validate(self, session: BatchSession) -> None:
        """The validation steps, the guards, then verified (and committed)."""
        run_id, batch = UUID(session.run_id), session.batch
        changed = self.changed(session.origin)
        context = self._context(session, VALIDATION, changed)
        for step in batch.validation:
            if not self._step(session, VALIDATION, step, context, changed):
                return
        # Checked again only if a step that may run the workspace's code ran
        # since the check after the build (or the host's code): else no code
        # of the batch ran since, and nothing changed. The commit still puts
        # back the settings first, and moves the branch only if it is where
        # that check saw it.
        if self._ran_code(batch.validation) and not self.guarded(session, VALIDATION):
            return

        def verified(run: Run) -> RunView:
            run.verify_batch(batch.batch_id, session.attempt)
            return run.view()

        view = self.app.update(run_id, verified)
        if batch.commit_strategy == "commit" and changed:
            view = self.commit(session, changed, view.head_digest)
        self.project(run_id, view=view)
        self._finished(session, "verified")

    def commit(
        self, session: BatchSession, changed: tuple[str, ...], chain: str
    ) -> RunView:
        """Commits a verified attempt's change (its ``Recovery-Chain`` trailer
        ``chain``, the head digest of the verification), or records why it was
        not; the run's state after."""
        run_id, batch, attempt = UUID(session.run_id), session.batch, session.attempt
        result = self.workspace.commit(
            baseline=session.origin,
            files=changed,
            message=f"{batch.batch_id}: {batch.description or 'verified batch'}",
            trailers={
                "Recovery-Run": session.run_id,
                "Recovery-Batch": batch.batch_id,
                "Recovery-Chain": chain,
            },
        )
        made, note = result.commit, result.note or "not committed"

        def recorded(run: Run) -> RunView:
            if made is not None:
                run.batch_committed(batch.batch_id, attempt, made)
            else:
                run.batch_left_uncommitted(batch.batch_id, attempt, note)
            return run.view()

        view = self.app.update(run_id, recorded)
        if made is None:
            self._note(f"batch {batch.batch_id} verified but {note}")
        return view

    def host_failed(self, session: BatchSession, exc: Exception) -> None:
        """Records an exception raised in a host's block as the attempt's
        ``runtime_execution.host_code`` failure."""
        text = "".join(traceback.format_exception(exc))
        outcome = _raised(text, session.started, self.workspace.root)
        # A file of the workspace, or the batch's component; the host's own
        # code outside the workspace is in the traceback, not the component.
        component = outcome.component or session.batch.component or ""
        outcome = attrs.evolve(
            outcome, error=f"{type(exc).__name__}: {exc}", component=component
        )
        self._record(session, RUNTIME, "host_code", "host_code", outcome)

    def guarded(self, session: BatchSession, phase: str) -> bool:
        """Fails the attempt when it changed what no batch may change (the
        workspace has put it back already); whether all is well."""
        started = time.monotonic()
        problems = self.workspace.check(session.baseline)
        if not problems:
            return True
        outcome = StepOutcome(
            passed=False,
            duration_s=time.monotonic() - started,
            error="the batch changed what no batch may change (put back): "
            + "; ".join(problems),
            component=session.batch.component or "",
        )
        return self._record(session, phase, "workspace_guard", "guard", outcome)

    def with_guard(self, outcome: StepOutcome, baseline: str | None) -> StepOutcome:
        """A failed step's outcome, with what the attempt changed that no batch
        may change (the workspace puts it back before anything else looks at
        the attempt's change)."""
        try:
            problems = self.workspace.check(baseline)
        except RecoveryError as exc:
            self._note(f"could not check the workspace: {exc}")
            return outcome
        if not problems:
            return outcome
        return attrs.evolve(
            outcome,
            error=f"{outcome.error}; the attempt also changed what no batch may "
            "change (put back): " + "; ".join(problems),
        )

    def _ran_code(self, steps: Sequence[Step]) -> bool:
        """Whether one of ``steps`` may have run the workspace's code."""
        return any(runs_workspace_code(self.step_runners[s.kind]) for s in steps)

    def changed(self, baseline: str | None) -> tuple[str, ...]:
        """The files changed since ``baseline``; none when they cannot be listed."""
        try:
            return self.workspace.changed_files(baseline)
        except RecoveryError as exc:
            self._note(f"could not list the changed files: {exc}")
            return ()

    def _step(
        self,
        session: BatchSession,
        phase: str,
        step: Step,
        context: StepContext,
        changed: tuple[str, ...] | None = None,
    ) -> bool:
        """Runs one step of the plan and records how it went; whether it passed.
        A command step with ``retries`` that fails is run again, up to that
        many times; each failed try but the last is recorded (``StepRetried``),
        so a step that passes after one is known as flaky, never silently."""
        start = StepStart(
            session.run_id, session.batch.batch_id, session.attempt, phase, step.name
        )
        self.hook("on_step_start", start)
        tries = 1 + (step.retries if step.kind == "command" else 0)
        for number in range(1, tries + 1):
            outcome = self._run_step(step, context)
            if outcome.passed or number == tries:
                break
            self._retried(session, phase, step.name, number, outcome)
        return self._record(session, phase, step.name, step.kind, outcome, changed)

    def _run_step(self, step: Step, context: StepContext) -> StepOutcome:
        started = time.monotonic()
        try:
            return self.step_runners[step.kind](step, context)
        except Exception:
            return _raised(traceback.format_exc(), started, context.root)

    def _retried(
        self,
        session: BatchSession,
        phase: str,
        name: str,
        number: int,
        outcome: StepOutcome,
    ) -> None:
        batch_id, attempt = session.batch.batch_id, session.attempt
        self.app.update(
            UUID(session.run_id),
            lambda run: run.step_retried(
                batch_id,
                attempt,
                step=name,
                phase=phase,
                tries=number,
                error=outcome.error,
                exit_code=outcome.exit_code,
                timed_out=outcome.timed_out,
                duration_s=outcome.duration_s,
            ),
        )
        said = first_line(outcome.error) or "no error"
        self._note(f"{phase}.{name} failed on try {number} ({said}); running it again")

    def _record(
        self,
        session: BatchSession,
        phase: str,
        name: str,
        kind: str,
        outcome: StepOutcome,
        changed: tuple[str, ...] | None = None,
    ) -> bool:
        """Records what a step (or the host's code, or a fix) did; whether it
        passed. A failure is handled in full (:meth:`Halting.fail`)."""
        run_id, batch_id, attempt = (
            UUID(session.run_id),
            session.batch.batch_id,
            session.attempt,
        )
        result = StepResult(session.run_id, batch_id, attempt, phase, name, outcome)
        if outcome.passed:
            duration = round(outcome.duration_s, 6)
            self.app.update(
                run_id,
                lambda run: run.step_passed(
                    batch_id, attempt, step=name, phase=phase, duration_s=duration
                ),
            )
            self.hook("on_step_result", result)
            return True
        if changed is None:
            changed = self.changed(session.origin)
        outcome = self.with_guard(outcome, session.baseline)
        self.halting.fail(
            run_id, session.batch, attempt, phase, name, kind, outcome, changed, result
        )
        self._finished(session, "failed")
        return False

    def _fix(
        self, session: BatchSession, failure: Failure, proposer: str | None
    ) -> StepOutcome:
        """The proposed fix for ``failure``, applied as this attempt's change
        by the strategy that proposed it (``proposer``, as recorded)."""
        started = time.monotonic()
        strategy = self.halting.proposer(proposer)
        recover = getattr(strategy, "recover", None)
        if strategy is None or not callable(recover):
            name = proposer if strategy is None else strategy.name
            return StepOutcome(
                passed=False,
                duration_s=0.0,
                error=f"strategy {name} cannot apply a proposed fix "
                + (
                    "(this runner does not have it)"
                    if strategy is None
                    else "(it has no recover method)"
                )
                + "; decide retry, skip or abort",
            )
        context = self.halting.failure_context(
            session.run_id, session.batch, failure, session.baseline
        )
        try:
            recover(context)
        except Exception:
            return _raised(traceback.format_exc(), started, self.workspace.root)
        return StepOutcome(passed=True, duration_s=time.monotonic() - started)

    def _context(
        self, session: BatchSession, phase: str, changed: tuple[str, ...]
    ) -> StepContext:
        return StepContext(
            root=self.workspace.root,
            run_id=session.run_id,
            batch=session.batch,
            attempt=session.attempt,
            baseline=session.origin,
            changed_files=changed,
            phase=phase,
            workspace=self.workspace,
        )

    def _finished(self, session: BatchSession, status: str) -> None:
        duration = time.monotonic() - session.started
        end = BatchEnd(
            session.run_id, session.batch.batch_id, session.attempt, status, duration
        )
        self.hook("on_batch_end", end)

    def _note(self, message: str) -> None:
        self.hook("on_note", message)


def _raised(text: str, started: float, root: Path) -> StepOutcome:
    """The failed outcome of code that raised, from its traceback ``text``."""
    return StepOutcome(
        passed=False,
        duration_s=time.monotonic() - started,
        error=first_line(text.strip().splitlines()[-1]) or "raised",
        component=component_from_traceback(text, root),
        traceback=text,
    )
