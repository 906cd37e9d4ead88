"""The batch loop: claim, attempt, validate, halt, decide, resume.

A :class:`Runner` drives one run of a plan in a workspace. For each batch it
takes a baseline, runs the actions (phase ``build``), then the validation steps
in order (phase ``post_build_validation``), stopping at the first failure. A
failure is recorded (``StepFailed`` and ``BatchMarkedFailed`` in one save), the
projections are brought up to date, the strategy answers, the operators are
notified, and the runner stops with a :class:`Halted` outcome. Run again after
a decision, it carries the decision out and goes on.

A host application may instead make a batch's change in its own code, inside
``with runner.batch(batch_id) as session:``: entering takes the baseline,
leaving runs the validation steps; an exception raised in the block is the
attempt's ``runtime_execution`` failure, handled like any other. A retry of a
batch the host makes (one with no actions) is the host's to carry out:
:meth:`Runner.run` stops there instead of validating a change nobody made.

The runner keeps nothing between calls: what to do next is read from the run's
state each time, and every step it takes is first an event.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar
from uuid import UUID

import attrs

from recovery_core.errors import IllegalTransition, RecoveryError
from recovery_core.halting import Halting
from recovery_core.hooks import (
    BatchEnd,
    BatchStart,
    Hooks,
    StepResult,
    StepStart,
    call_hooks,
)
from recovery_core.outcomes import (
    Aborted,
    BatchOutcome,
    BatchSession,
    Completed,
    Halted,
    Outcome,
    Verified,
    outcome_of,
)
from recovery_core.plan import Batch, ExecutionPlan, Step
from recovery_core.ports import (
    Notifier,
    Projection,
    ProjectionUpdate,
    RecoveryStrategy,
    RunnerHost,
    StepContext,
    StepOutcome,
    StepRunner,
    Workspace,
)
from recovery_core.records import BatchView, Failure, RunView
from recovery_core.run import Run, new_runner_id
from recovery_core.runtime import default_host
from recovery_core.tracebacks import component_from_traceback, first_line

if TYPE_CHECKING:  # the application makes runners; a runner only uses one
    from recovery_core.application import RecoveryApp

__all__ = [
    "BUILD",
    "RUNTIME",
    "VALIDATION",
    "Aborted",
    "BatchOutcome",
    "BatchSession",
    "Completed",
    "Halted",
    "Outcome",
    "Runner",
    "RunnerIdentity",
    "Verified",
    "component_from_traceback",
]

BUILD: Final = "build"
VALIDATION: Final = "post_build_validation"
RUNTIME: Final = "runtime_execution"

_LOST: Final = (
    "the runner stopped during this attempt (killed or crashed); its result is unknown"
)
_SIGNALLED: Final = "the runner was interrupted (SIGINT or SIGTERM) during the batch"

T = TypeVar("T")


@attrs.frozen
class RunnerIdentity:
    """Who drives a run: recorded in ``RunnerClaimed``."""

    host: str
    pid: int
    runner_id: str = attrs.field(factory=new_runner_id)


class Runner:
    """Drives the run of one plan in one workspace; see the module's docstring.

    Make one with :meth:`RecoveryApp.runner`, which fills in the registered step
    runners, the workspace's strategy, the file projections and this machine.
    """

    def __init__(
        self,
        app: RecoveryApp,
        plan: ExecutionPlan,
        *,
        workspace: Workspace,
        step_runners: Mapping[str, StepRunner],
        strategy: RecoveryStrategy,
        notifiers: Sequence[Notifier] = (),
        hooks: Hooks | Sequence[Hooks] = (),
        plan_path: str | os.PathLike[str] | None = None,
        run_id: UUID | None = None,
        projections: Sequence[Projection] = (),
        host: RunnerHost | None = None,
    ) -> None:
        self.app = app
        self.plan = plan
        self.workspace = workspace
        self.step_runners = dict(step_runners)
        self.strategy = strategy
        self.notifiers = tuple(notifiers)
        self.hooks = (hooks,) if isinstance(hooks, Hooks) else tuple(hooks)
        self.plan_path = Path(plan_path) if plan_path is not None else None
        if self.plan_path is not None:
            workspace.ignore(self.plan_path)
        self.projections = tuple(projections)
        self.host = host if host is not None else default_host()
        self.identity = RunnerIdentity(self.host.host, self.host.pid)
        self.run_id = run_id
        self._halting = Halting(
            app=app,
            plan=plan,
            workspace=workspace,
            strategy=strategy,
            notifiers=self.notifiers,
            project=lambda run_id, failures: self._project(run_id, failures=failures),
            hook=self._hook,
        )
        plan.require_runners(self.step_runners)

    # -- the run ------------------------------------------------------------

    def open_run(self) -> UUID:
        """Finds the unfinished run of this plan here, or starts one; returns its id."""
        if self.run_id is None:
            commits = any(b.commit_strategy == "commit" for b in self.plan.batches)
            self.workspace.prepare(commits=commits)
            found = self.app.unfinished_run(self.plan, self.workspace.root)
            self.run_id = found or self.app.start_run(
                self.plan,
                workspace=self.workspace.root,
                runner_id=self.identity.runner_id,
                host=self.identity.host,
            )
        return self.run_id

    def run(
        self,
        *,
        wait: bool = False,
        poll_s: float = 1.0,
        wait_timeout_s: float | None = None,
    ) -> Outcome:
        """Runs the plan's remaining batches until the run completes, aborts or
        halts. With ``wait``, a halt waits for an operator's decision (recorded
        by ``recovery decide`` from anywhere that reaches the store, or by
        :meth:`RecoveryApp.decide`) and goes on; ``wait_timeout_s`` bounds it.
        """
        with self._holding() as run_id:
            self._project(run_id, failures=True)  # as the events say, first
            if self.app.view(run_id).state not in ("completed", "aborted"):
                self._claim(run_id)
                try:
                    while batch := self._next(run_id, wait, poll_s, wait_timeout_s):
                        self._attempt(run_id, batch)
                except KeyboardInterrupt:
                    if not self._interrupted(run_id, _SIGNALLED):
                        raise
            return self._stop(run_id)

    @contextmanager
    def batch(self, batch_id: str) -> Iterator[BatchSession]:
        """An attempt at ``batch_id`` whose change the host makes in the block.

        Entering checks that the batch is next (carrying out a recorded skip or
        retry decision first) and takes the baseline; raises
        :class:`IllegalTransition` when the batch cannot start (another batch
        comes first, or a failure awaits a decision). Leaving runs the batch's
        validation steps. An exception raised in the block is recorded as the
        attempt's ``runtime_execution.host_code`` failure (with its traceback and
        component), handled like any other failure, and not re-raised: the
        session's ``outcome`` says what happened. KeyboardInterrupt and
        SystemExit are recorded as an interruption and re-raised.
        """
        batch = self.plan.batch(batch_id)
        if batch.actions:
            raise IllegalTransition(
                f"batch {batch_id} has actions: the runner runs them (use run())"
            )
        with self._holding() as run_id:
            self._claim(run_id)
            try:
                session = self._start(run_id, self._host_may_start(run_id, batch))
            except RecoveryError:
                self._release(run_id)  # refused: this runner drives nothing
                raise
            try:
                yield session
            except Exception as exc:
                self._host_failed(session, exc)
            except BaseException:
                if self._interrupted(run_id, _SIGNALLED):
                    self._stop(run_id)
                raise
            else:
                if self._guarded(session, RUNTIME):
                    self._validate(session)
            session.outcome = self._batch_outcome(session)

    # -- what comes next ----------------------------------------------------

    def _next(
        self,
        run_id: UUID,
        wait: bool = False,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        *,
        by_host: bool = False,
    ) -> Batch | None:
        """The batch to attempt now, after recording a lost attempt, carrying
        out a skip, waiting for a decision or completing the run; None when the
        run stops here. ``by_host``: for a host's block, which carries out the
        retry of a batch it makes, and never a recover."""
        while True:
            view = self.app.view(run_id)
            if view.state in ("completed", "aborted"):
                return None
            if self._interrupted(run_id, _LOST):
                continue  # a runner died mid-attempt: that attempt failed
            if self._settled(view):
                continue  # a runner died after an outcome, before its effects
            open_now = view.open_decision
            decision = None if open_now is None else open_now.recorded
            if open_now is not None and decision is None:
                if wait and self._waited(run_id, poll_s, timeout_s):
                    continue
                return None
            if decision is not None:
                batch = self.plan.batch(decision.batch_id)
                if decision.decision == "retry" and not batch.actions and not by_host:
                    self._note(_host_retry(batch.batch_id))
                    return None
                self._require_recover(decision.decision, batch, by_host)
                self._hook("on_decision", decision)
                if decision.decision == "skip":
                    self._save(run_id, lambda run: run.skip_batch())
                    self._project(run_id)
                    continue
            upcoming = view.next_batch
            if upcoming is None:
                self._save(run_id, lambda run: run.complete())
                self._project(run_id)
                return None
            return self.plan.batch(upcoming.batch_id)

    def _settled(self, view: RunView) -> bool:
        """Carries out what a runner killed after recording an outcome left
        undone (the intent is the outcome's event; the effects follow it): a
        halt whose strategy answer or notification is not recorded yet, and a
        verified batch to commit whose commit is not recorded (the workspace
        finds a commit made before the kill, and brings the index in step, so
        that it is made once). Whether it did anything."""
        run_id = UUID(view.run_id)
        failure = view.failure
        if failure is not None:
            state = view.batch(failure.batch_id)
            notify = not state.notified and view.decision is None and self.notifiers
            if state.answer is not None and not notify:
                return False
            self._halting.finish(run_id, self.plan.batch(failure.batch_id))
            return True
        started = [b for b in view.batches if b.attempts]
        last = started[-1] if started else None
        if (
            last is None
            or last.status != "verified"
            or self.plan.batch(last.batch_id).commit_strategy != "commit"
            or last.commit is not None
            or last.uncommitted_reason is not None
        ):
            return False
        session = BatchSession(
            run_id=view.run_id,
            batch=self.plan.batch(last.batch_id),
            attempt=last.attempts,
            baseline=last.baseline,
            origin=last.origin,
            root=self.workspace.root,
        )
        changed = self._changed(last.origin)
        if not changed:
            return False
        self._commit(session, changed)
        self._project(run_id)
        return True

    def _host_may_start(self, run_id: UUID, batch: Batch) -> Batch:
        """``batch``, when a host's block may start it now."""
        upcoming = self._next(run_id, by_host=True)
        if upcoming is None:
            view = self.app.view(run_id)
            awaiting = view.open_decision
            raise IllegalTransition(
                f"batch {batch.batch_id} cannot start: the run is "
                + (
                    f"halted at batch {awaiting.batch_id} and awaits a decision"
                    if awaiting is not None
                    else view.state
                )
            )
        if upcoming.batch_id != batch.batch_id:
            raise IllegalTransition(
                f"batch {batch.batch_id} cannot start: batch {upcoming.batch_id} "
                "comes first"
            )
        return batch

    def _require_recover(self, decision: str, batch: Batch, by_host: bool) -> None:
        if decision == "recover" and by_host:
            raise IllegalTransition(
                f"batch {batch.batch_id} has a recover decision: run() carries it "
                "out by applying the strategy's proposed fix"
            )
        if decision == "recover" and not callable(
            getattr(self.strategy, "recover", None)
        ):
            raise IllegalTransition(
                f"strategy {self.strategy.name} cannot carry out a recover "
                f"decision; decide abort for batch {batch.batch_id}, "
                "or resume with the strategy that proposed the fix"
            )

    def _waited(self, run_id: UUID, poll_s: float, timeout_s: float | None) -> bool:
        """Waits for a decision, the run released meanwhile; whether one came."""
        self._release(run_id)
        self._note("waiting for an operator decision")
        decided = self.app.wait_for_decision(
            run_id, timeout_s=timeout_s, poll_s=poll_s, sleep=self.host.sleep
        )
        if decided is None:
            return False
        if self.app.view(run_id).state not in ("completed", "aborted"):
            self._claim(run_id)
        return True

    # -- one attempt --------------------------------------------------------

    def _attempt(self, run_id: UUID, batch: Batch) -> None:
        """An attempt at ``batch`` by the runner: the actions, or the strategy's
        proposed fix after a recover decision; then the validation."""
        view = self.app.view(run_id)
        pending = view.open_decision.recorded if view.open_decision else None
        recovering = pending is not None and pending.decision == "recover"
        fixing = view.batch(batch.batch_id).failure if recovering else None
        session = self._start(run_id, batch)
        if fixing is not None:
            built = self._record(
                session, BUILD, "recover", "recover", self._fix(session, fixing)
            )
        else:
            context = self._context(session, BUILD, ())
            built = all(
                self._step(session, BUILD, a.as_step(), context) for a in batch.actions
            )
        if built and self._guarded(session, BUILD):
            self._validate(session)

    def _start(self, run_id: UUID, batch: Batch) -> BatchSession:
        attempt = self.app.view(run_id).batch(batch.batch_id).attempts + 1
        baseline = self.workspace.snapshot(
            run_id=str(run_id), batch_id=batch.batch_id, attempt=attempt
        )
        self._save(run_id, lambda run: run.start_batch(batch.batch_id, baseline))
        view = self._project(run_id)
        session = BatchSession(
            run_id=str(run_id),
            batch=batch,
            attempt=attempt,
            baseline=baseline,
            origin=view.batch(batch.batch_id).origin,
            root=self.workspace.root,
        )
        index = self.plan.batch_ids.index(batch.batch_id) + 1
        total = len(self.plan.batches)
        start = BatchStart(
            str(run_id), batch.batch_id, attempt, index, total, batch.description
        )
        self._hook("on_batch_start", start)
        return session

    def _validate(self, session: BatchSession) -> None:
        """The validation steps, the guards, then verified (and committed)."""
        run_id, batch = UUID(session.run_id), session.batch
        changed = self._changed(session.origin)
        context = self._context(session, VALIDATION, changed)
        for step in batch.validation:
            if not self._step(session, VALIDATION, step, context, changed):
                return
        if not self._guarded(session, VALIDATION):
            return
        self._save(
            run_id, lambda run: run.verify_batch(batch.batch_id, session.attempt)
        )
        if batch.commit_strategy == "commit" and changed:
            self._commit(session, changed)
        self._project(run_id)
        self._finished(session, "verified")

    def _commit(self, session: BatchSession, changed: tuple[str, ...]) -> None:
        run_id, batch, attempt = UUID(session.run_id), session.batch, session.attempt
        result = self.workspace.commit(
            baseline=session.origin,
            files=changed,
            message=f"{batch.batch_id}: {batch.description or 'verified batch'}",
            trailers={
                "Recovery-Run": session.run_id,
                "Recovery-Batch": batch.batch_id,
                "Recovery-Chain": self.app.view(run_id).head_digest,
            },
        )
        made, note = result.commit, result.note or "not committed"
        if made is not None:
            self._save(
                run_id, lambda run: run.batch_committed(batch.batch_id, attempt, made)
            )
            return
        self._save(
            run_id,
            lambda run: run.batch_left_uncommitted(batch.batch_id, attempt, note),
        )
        self._note(f"batch {batch.batch_id} verified but {note}")

    def _step(
        self,
        session: BatchSession,
        phase: str,
        step: Step,
        context: StepContext,
        changed: tuple[str, ...] | None = None,
    ) -> bool:
        """Runs one step of the plan and records how it went; whether it passed."""
        self._hook(
            "on_step_start",
            StepStart(
                session.run_id,
                session.batch.batch_id,
                session.attempt,
                phase,
                step.name,
            ),
        )
        started = time.monotonic()
        try:
            outcome = self.step_runners[step.kind](step, context)
        except Exception:
            outcome = _raised(traceback.format_exc(), started, context.root)
        return self._record(session, phase, step.name, step.kind, outcome, changed)

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
        passed. A failure is handled in full (see :meth:`_fail`)."""
        run_id, batch_id, attempt = (
            UUID(session.run_id),
            session.batch.batch_id,
            session.attempt,
        )
        result = StepResult(session.run_id, batch_id, attempt, phase, name, outcome)
        if outcome.passed:
            duration = round(outcome.duration_s, 6)
            self._save(
                run_id,
                lambda run: run.step_passed(
                    batch_id, attempt, step=name, phase=phase, duration_s=duration
                ),
            )
            self._hook("on_step_result", result)
            return True
        if changed is None:
            changed = self._changed(session.origin)
        outcome = self._with_guard(outcome, session.baseline)
        self._halting.fail(
            run_id, session.batch, attempt, phase, name, kind, outcome, changed, result
        )
        self._finished(session, "failed")
        return False

    def _guarded(self, session: BatchSession, phase: str) -> bool:
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

    def _host_failed(self, session: BatchSession, exc: Exception) -> None:
        text = "".join(traceback.format_exception(exc))
        outcome = _raised(text, session.started, self.workspace.root)
        # A file of the workspace, or the batch's component; the host's own
        # code outside the workspace is in the traceback, not the component.
        component = outcome.component or session.batch.component or ""
        outcome = attrs.evolve(
            outcome, error=f"{type(exc).__name__}: {exc}", component=component
        )
        self._record(session, RUNTIME, "host_code", "host_code", outcome)

    def _fix(self, session: BatchSession, failure: Failure) -> StepOutcome:
        """The strategy's proposed fix for ``failure``, applied as this
        attempt's change."""
        started = time.monotonic()
        recover = getattr(self.strategy, "recover", None)
        if not callable(recover):
            return StepOutcome(
                passed=False,
                duration_s=0.0,
                error=f"strategy {self.strategy.name} cannot apply a proposed fix "
                "(it has no recover method); decide retry, skip or abort",
            )
        context = self._halting.failure_context(
            session.run_id, session.batch, failure, session.baseline
        )
        try:
            recover(context)
        except Exception:
            return _raised(traceback.format_exc(), started, self.workspace.root)
        return StepOutcome(passed=True, duration_s=time.monotonic() - started)

    # -- a failure ----------------------------------------------------------

    def _interrupted(self, run_id: UUID, error: str) -> bool:
        """Records the attempt under way, if any, as interrupted; whether there
        was one."""
        running = self.app.view(run_id).running_batch
        if running is None:
            return False
        batch = self.plan.batch(running.batch_id)
        if error == _LOST:  # before the tree is looked at, let alone restored
            error += self._ended(run_id, running)
        outcome = StepOutcome(
            passed=False, duration_s=0.0, error=error, component=batch.component or ""
        )
        outcome = self._with_guard(outcome, running.baseline)
        changed = self._changed(running.origin)
        self._halting.fail(
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

    def _ended(self, run_id: UUID, running: BatchView) -> str:
        """Ends what the lost runner's attempt left running (its actions and
        steps carry the run, batch and attempt in their environment), through
        the host's ``end_processes`` when it has one; what was done, said."""
        driver = running.driver
        if driver is not None and driver.host != self.host.host:
            return (
                f"; it ran on host {driver.host} (runner pid {driver.pid}): what it "
                "left running there cannot be ended from here"
            )
        end = getattr(self.host, "end_processes", None)
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
        return (
            "; its processes left running were ended (pids "
            + ", ".join(map(str, ended))
            + ")"
        )

    def _with_guard(self, outcome: StepOutcome, baseline: str | None) -> StepOutcome:
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

    # -- around -------------------------------------------------------------

    @contextmanager
    def _holding(self) -> Iterator[UUID]:
        """The workspace held for this runner (before the run is known, and
        then naming it), with the run to drive."""
        with self.workspace.locked(self._holder(self.run_id)):
            run_id = self.open_run()
            self.app.check_chain(run_id)  # before anything is acted on
            with self.workspace.locked(self._holder(run_id)):
                yield run_id

    def _holder(self, run_id: UUID | None) -> dict[str, str]:
        """Who holds the workspace, as the lock records it."""
        ident = self.identity
        holder = {
            "plan": self.plan.plan_id,
            "host": ident.host,
            "pid": str(ident.pid),
            "runner": ident.runner_id,
        }
        if run_id is not None:
            holder["run"] = str(run_id)
        return holder

    def _claim(self, run_id: UUID) -> None:
        ident, host = self.identity, self.host

        def claim(run: Run) -> None:
            held = run.view().claim
            take_over = held is not None and (
                (held.host, held.pid) == (ident.host, ident.pid)
                or not host.alive(held.host, held.pid)
            )
            run.claim_runner(
                host=ident.host,
                pid=ident.pid,
                runner_id=ident.runner_id,
                take_over=take_over,
            )

        self._save(run_id, claim)

    def _release(self, run_id: UUID) -> None:
        try:
            self._save(run_id, lambda run: run.release_runner(self.identity.runner_id))
        except RecoveryError as exc:
            self._note(f"could not release the run: {exc}")

    def _stop(self, run_id: UUID) -> Outcome:
        """The outcome of the run as it stands; a halted run is released."""
        view = self.app.view(run_id)
        if view.state == "halted":
            self._release(run_id)
            view = self.app.view(run_id)
        awaiting = view.open_decision
        host_made = (
            awaiting is not None and not self.plan.batch(awaiting.batch_id).actions
        )
        return outcome_of(view, made_by_host=host_made)

    def _batch_outcome(self, session: BatchSession) -> BatchOutcome:
        view = self.app.view(UUID(session.run_id))
        batch = view.batch(session.batch.batch_id)
        if batch.status == "verified" and batch.attempts == session.attempt:
            return Verified(
                run_id=view.run_id,
                view=view,
                batch_id=batch.batch_id,
                attempt=batch.attempts,
                commit=batch.commit,
            )
        outcome = self._stop(UUID(session.run_id))
        assert not isinstance(outcome, Completed)
        return outcome

    def _save(self, run_id: UUID, command: Callable[[Run], T]) -> T:
        return self.app.update(run_id, command)

    def _changed(self, baseline: str | None) -> tuple[str, ...]:
        try:
            return self.workspace.changed_files(baseline)
        except RecoveryError as exc:
            self._note(f"could not list the changed files: {exc}")
            return ()

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
        self._hook("on_batch_end", end)

    def _project(self, run_id: UUID, *, failures: bool = False) -> RunView:
        """Brings the projections up to the run's state (and, after a failure,
        the workspace's failure log). The events are saved already: one that
        cannot be written is reported and rebuilt later, never stops the run."""
        view = self.app.view(run_id)
        log = self.app.failure_log(workspace=view.workspace) if failures else None
        update = ProjectionUpdate(
            view=view, failure_log=None if log is None else tuple(log)
        )
        for projection in self.projections:
            try:
                projection.project(update)
            except Exception as exc:
                self._note(f"could not write {projection.name}: {exc}")
        return view

    def _hook(self, name: str, event: object) -> None:
        call_hooks(self.hooks, name, event)

    def _note(self, message: str) -> None:
        self._hook("on_note", message)


def _raised(text: str, started: float, root: Path) -> StepOutcome:
    """The failed outcome of code that raised, from its traceback ``text``."""
    return StepOutcome(
        passed=False,
        duration_s=time.monotonic() - started,
        error=first_line(text.strip().splitlines()[-1]) or "raised",
        component=component_from_traceback(text, root),
        traceback=text,
    )


def _host_retry(batch_id: str) -> str:
    return (
        f"batch {batch_id} is made by the host application: the retry decided for "
        f"it is carried out by the host's `with runner.batch({batch_id!r})`"
    )
