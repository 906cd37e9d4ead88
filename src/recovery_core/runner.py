"""The batch loop: claim, attempt, validate, halt, decide, resume.

A :class:`Runner` drives one run of a plan in a workspace. For each batch it
takes a baseline, runs the actions (phase ``build``), then the validation steps
in order (phase ``post_build_validation``), stopping at the first failure. A
failure is recorded (``StepFailed`` and ``BatchMarkedFailed`` in one save), the
projections are written, the strategy answers, the operators are notified, and
the runner stops with a :class:`Halted` outcome. Run again after a decision, it
carries the decision out and goes on.

A host application may instead make a batch's change in its own code, inside
``with runner.batch(batch_id) as session:``: entering takes the baseline,
leaving runs the validation steps; an exception raised in the block is the
attempt's ``runtime_execution`` failure, handled like any other.

Every step that the runner takes is first an event; the plan file and the
failure log are written after the event is saved and can be rebuilt from it.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final
from uuid import UUID

import attrs

from recovery_core.errors import IllegalTransition, RecoveryError
from recovery_core.hooks import (
    BatchEnd,
    BatchStart,
    FailureReport,
    Hooks,
    StepResult,
    StepStart,
    call_hooks,
)
from recovery_core.plan import (
    Batch,
    ExecutionPlan,
    Identifier,
    Step,
    StepKind,
)
from recovery_core.ports import (
    FailureContext,
    Notification,
    Notifier,
    Projection,
    ProjectionUpdate,
    RecoveryOutcome,
    RecoveryStrategy,
    RunnerHost,
    StepContext,
    StepOutcome,
    StepRunner,
    Workspace,
)
from recovery_core.records import Failure, OpenDecision, RunView
from recovery_core.run import Run, new_runner_id
from recovery_core.runtime import default_host

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
    for which batch and attempt)."""

    run_id: str
    view: RunView
    failure: Failure
    decisions: tuple[str, ...]
    open: OpenDecision
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


@attrs.frozen
class RunnerIdentity:
    """Who drives a run: recorded in ``RunnerClaimed``."""

    host: str
    pid: int
    runner_id: str = attrs.field(factory=new_runner_id)


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


def component_from_traceback(text: str, root: Path) -> str:
    """The innermost ``file:line`` of a Python traceback that lies in ``root``, as a
    path relative to it; empty when no frame does."""
    found = ""
    resolved = root.resolve()
    for path, lineno in _frames(text):
        full = path if path.is_absolute() else resolved / path
        try:
            relative = full.resolve().relative_to(resolved)
        except (ValueError, OSError):
            continue
        found = f"{relative.as_posix()}:{lineno}" if lineno else relative.as_posix()
    return found


def _frames(text: str) -> Iterator[tuple[Path, str]]:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith('File "'):
            continue
        name, _, rest = stripped[len('File "') :].partition('"')
        lineno = rest.split("line ", 1)[1].split(",", 1)[0] if "line " in rest else ""
        yield Path(name), lineno


def _innermost_frame(text: str) -> str:
    last = ""
    for path, lineno in _frames(text):
        last = f"{path}:{lineno}" if lineno else str(path)
    return last


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Runner:
    """Drives the run of one plan in one workspace; see the module's docstring.

    Make one with :meth:`RecoveryApp.runner`, which fills in the registered step
    runners and the ``noop`` strategy.
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
        # The failure whose proposed fix the next attempt applies (a recover
        # decision being carried out).
        self._recovering: Failure | None = None
        plan.require_runners(self.step_runners)

    # -- set-up -------------------------------------------------------------

    @property
    def _store_hint(self) -> str | None:
        return self.app.store_hint(self.workspace.root)

    def _hook(self, name: str, event: object) -> None:
        call_hooks(self.hooks, name, event)

    def _note(self, message: str) -> None:
        self._hook("on_note", message)

    def open_run(self) -> UUID:
        """Finds the unfinished run of this plan here, or starts one; returns its id."""
        if self.run_id is None:
            self.workspace.prepare(
                commits=any(b.commit_strategy == "commit" for b in self.plan.batches)
            )
            found = self.app.unfinished_run(self.plan, self.workspace.root)
            if found is None:
                found = self.app.start_run(
                    self.plan,
                    workspace=self.workspace.root,
                    runner_id=self.identity.runner_id,
                    host=self.identity.host,
                )
            self.run_id = found
        return self.run_id

    def _claim(self, run_id: UUID) -> None:
        ident = self.identity
        view = self.app.view(run_id)
        if (
            view.claim is not None
            and view.claim.runner_id == ident.runner_id
            and view.state not in ("completed", "aborted")
        ):
            return  # held already (claiming again would record nothing)

        def claim(run: Run) -> None:
            held = run.view().claim
            take_over = held is not None and (
                (held.host, held.pid) == (ident.host, ident.pid)
                or not self.host.alive(held.host, held.pid)
            )
            run.claim_runner(
                host=ident.host,
                pid=ident.pid,
                runner_id=ident.runner_id,
                take_over=take_over,
            )

        self.app.update(run_id, claim)

    def _release(self, run_id: UUID) -> None:
        try:
            self.app.update(
                run_id, lambda run: run.release_runner(self.identity.runner_id)
            )
        except RecoveryError as exc:
            self._note(f"could not release the run: {exc}")

    # -- driving the whole plan ---------------------------------------------

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
        with self.workspace.locked(self._holder(self.run_id)):
            run_id = self.open_run()
            with self.workspace.locked(self._holder(run_id)):
                return self._run(
                    run_id, wait=wait, poll_s=poll_s, wait_timeout_s=wait_timeout_s
                )

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

    def _run(
        self,
        run_id: UUID,
        *,
        wait: bool,
        poll_s: float,
        wait_timeout_s: float | None,
    ) -> Outcome:
        view = self.app.view(run_id)
        if view.state in ("completed", "aborted"):
            return self._ended(view)
        self._claim(run_id)
        try:
            while True:
                step = self._advance(
                    run_id, wait=wait, poll_s=poll_s, timeout_s=wait_timeout_s
                )
                if not isinstance(step, str):
                    return step
                self._attempt(run_id, self.plan.batch(step))
        except KeyboardInterrupt:
            if self._record_interruption(run_id, _SIGNALLED):
                return self._halted(run_id)
            raise

    def _ended(self, view: RunView) -> Outcome:
        if view.state == "completed":
            return Completed(run_id=view.run_id, view=view)
        return Aborted(run_id=view.run_id, view=view, reason=view.abort_reason or "")

    def _advance(
        self, run_id: UUID, *, wait: bool, poll_s: float, timeout_s: float | None
    ) -> Outcome | str:
        """Brings the run to the point where a batch can start: records a lost
        attempt, carries out a decision, waits for one, or completes the run.
        Returns the batch to attempt next, or the outcome when there is none."""
        while True:
            view = self.app.view(run_id)
            if view.state in ("completed", "aborted"):
                return self._ended(view)
            # A runner stopped in the middle of an attempt (killed, crashed):
            # record it as the attempt's failure, so that an operator decides.
            if self._record_interruption(run_id, _LOST):
                continue
            if view.state == "halted":
                decision = view.decision
                if decision is None or decision.carried_out:
                    if not wait:
                        return self._halted(run_id)
                    self._release(run_id)
                    self._note("waiting for an operator decision")
                    if (
                        self.app.wait_for_decision(
                            run_id,
                            timeout_s=timeout_s,
                            poll_s=poll_s,
                            sleep=self.host.sleep,
                        )
                        is None
                    ):
                        return self._halted(run_id)
                    if self.app.view(run_id).state not in ("completed", "aborted"):
                        self._claim(run_id)
                    continue
                recover = getattr(self.strategy, "recover", None)
                if decision.decision == "recover" and not callable(recover):
                    raise IllegalTransition(
                        f"strategy {self.strategy.name} cannot carry out a recover "
                        f"decision; decide abort for batch {decision.batch_id}, "
                        "or resume with the strategy that proposed the fix"
                    )
                self._hook("on_decision", decision)
                if decision.decision == "recover":
                    self._recovering = view.batch(decision.batch_id).failure
                if decision.decision == "skip":
                    self.app.update(run_id, lambda run: run.skip_batch())
                    self._project(run_id)
                    continue
                # retry or recover: the failed batch is the next to start.
            next_id = next(
                (
                    b.batch_id
                    for b in view.batches
                    if b.status not in ("verified", "skipped")
                ),
                None,
            )
            if next_id is None:
                self.app.update(run_id, lambda run: run.complete())
                self._project(run_id)
                return self._ended(self.app.view(run_id))
            return next_id

    # -- driving one batch from host code ----------------------------------

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
        with self.workspace.locked(self._holder(self.run_id)):
            run_id = self.open_run()
            with self.workspace.locked(self._holder(run_id)):
                yield from self._batch_block(run_id, batch)

    def _batch_block(self, run_id: UUID, batch: Batch) -> Iterator[BatchSession]:
        batch_id = batch.batch_id
        self._claim(run_id)
        found = self._advance(run_id, wait=False, poll_s=1.0, timeout_s=None)
        if not isinstance(found, str):
            raise IllegalTransition(
                f"batch {batch_id} cannot start: the run is "
                + (
                    f"halted at batch {found.failure.batch_id} and awaits a decision"
                    if isinstance(found, Halted)
                    else found.view.state
                )
            )
        if found != batch_id:
            raise IllegalTransition(
                f"batch {batch_id} cannot start: batch {found} comes first"
            )
        if self._recovering is not None:
            self._recovering = None
            raise IllegalTransition(
                f"batch {batch_id} has a recover decision: run() carries it out by "
                "applying the strategy's proposed fix"
            )
        session = self._start(run_id, batch)
        try:
            yield session
        except Exception as exc:
            text = "".join(traceback.format_exception(exc))
            component = (
                component_from_traceback(text, self.workspace.root)
                or batch.component
                or _innermost_frame(text)
            )
            outcome = StepOutcome(
                passed=False,
                duration_s=time.monotonic() - session.started,
                error=f"{type(exc).__name__}: {exc}",
                component=component,
                traceback=text,
            )
            step = Step(name=Identifier(_HOST_CODE), kind=StepKind("host_code"))
            self._record_step(session, RUNTIME, step, outcome, None)
            self._finished(session, "failed")
            session.outcome = self._halted(run_id)
        except BaseException:
            if self._record_interruption(run_id, _SIGNALLED):
                self._halted(run_id)
            raise
        else:
            if self._guard(session, RUNTIME):
                session.outcome = self._validate(session)
            else:
                session.outcome = self._failure_outcome(run_id)
            if isinstance(session.outcome, Halted):
                session.outcome = self._halted(run_id)

    # -- one attempt ---------------------------------------------------------

    def _start(self, run_id: UUID, batch: Batch) -> BatchSession:
        attempt = self.app.view(run_id).batch(batch.batch_id).attempts + 1
        baseline = self.workspace.snapshot(
            run_id=str(run_id), batch_id=batch.batch_id, attempt=attempt
        )
        attempt = self.app.update(
            run_id, lambda run: run.start_batch(batch.batch_id, baseline)
        )
        view = self._project(run_id)
        session = BatchSession(
            run_id=str(run_id),
            batch=batch,
            attempt=attempt,
            baseline=baseline,
            origin=view.batch(batch.batch_id).origin,
            root=self.workspace.root,
        )
        self._hook(
            "on_batch_start",
            BatchStart(
                run_id=str(run_id),
                batch_id=batch.batch_id,
                attempt=attempt,
                index=self.plan.batch_ids.index(batch.batch_id) + 1,
                total=len(self.plan.batches),
                description=batch.description,
            ),
        )
        return session

    def _attempt(self, run_id: UUID, batch: Batch) -> BatchOutcome:
        recovering, self._recovering = self._recovering, None
        session = self._start(run_id, batch)
        if recovering is not None:
            # A recover decision: the strategy's proposed fix is the attempt's
            # change, in place of the batch's actions.
            outcome = self._apply_fix(session, recovering)
            step = Step(name=Identifier("recover"), kind=StepKind("recover"))
            if not self._record_step(session, BUILD, step, outcome, None):
                self._finished(session, "failed")
                return self._failure_outcome(run_id)
            if not self._guard(session, BUILD):
                return self._failure_outcome(run_id)
            return self._validate(session)
        context = self._context(session, BUILD, ())
        for action in batch.actions:
            step = Step(
                name=action.name,
                kind=StepKind("command"),
                run=action.run,
                timeout_s=action.timeout_s,
            )
            outcome = self._run_step(step, context)
            if not self._record_step(session, BUILD, step, outcome, None):
                self._finished(session, "failed")
                return self._failure_outcome(run_id)
        if not self._guard(session, BUILD):
            return self._failure_outcome(run_id)
        return self._validate(session)

    def _guard(self, session: BatchSession, phase: str) -> bool:
        """Fails the attempt when it changed what no batch may change (the
        workspace has already put it back); returns whether all is well."""
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
        step = Step(name=Identifier("workspace_guard"), kind=StepKind("guard"))
        self._record_step(session, phase, step, outcome, None)
        self._finished(session, "failed")
        return False

    def _apply_fix(self, session: BatchSession, failure: Failure) -> StepOutcome:
        started = time.monotonic()
        recover = getattr(self.strategy, "recover", None)
        if not callable(recover):
            return StepOutcome(
                passed=False,
                duration_s=0.0,
                error=f"strategy {self.strategy.name} cannot apply a proposed fix "
                "(it has no recover method); decide retry, skip or abort",
            )
        context = FailureContext(
            run_id=session.run_id,
            plan_id=self.plan.plan_id,
            batch=session.batch,
            attempt=failure.attempt,
            failure=failure,
            root=self.workspace.root,
            baseline=session.baseline,
            workspace=self.workspace,
        )
        try:
            recover(context)
        except Exception as exc:
            text = traceback.format_exc()
            return StepOutcome(
                passed=False,
                duration_s=time.monotonic() - started,
                error=f"{type(exc).__name__}: {exc}",
                component=component_from_traceback(text, self.workspace.root),
                traceback=text,
            )
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

    def _validate(self, session: BatchSession) -> BatchOutcome:
        run_id = UUID(session.run_id)
        batch, attempt = session.batch, session.attempt
        changed = self._changed(session.origin)
        context = self._context(session, VALIDATION, changed)
        for step in batch.validation:
            outcome = self._run_step(step, context)
            if not self._record_step(session, VALIDATION, step, outcome, changed):
                self._finished(session, "failed")
                return self._failure_outcome(run_id)
        if not self._guard(session, VALIDATION):
            return self._failure_outcome(run_id)
        self.app.update(run_id, lambda run: run.verify_batch(batch.batch_id, attempt))
        commit: str | None = None
        if batch.commit_strategy == "commit" and changed:
            result = self.workspace.commit(
                baseline=session.origin,
                files=changed,
                message=f"{batch.batch_id}: {batch.description or 'verified batch'}",
                trailers={
                    "Recovery-Run": str(run_id),
                    "Recovery-Batch": batch.batch_id,
                    "Recovery-Chain": self.app.view(run_id).head_digest,
                },
            )
            commit = result.commit
            if commit is not None:
                made = commit
                self.app.update(
                    run_id,
                    lambda run: run.batch_committed(batch.batch_id, attempt, made),
                )
            else:
                note = result.note or "not committed"
                self.app.update(
                    run_id,
                    lambda run: run.batch_left_uncommitted(
                        batch.batch_id, attempt, note
                    ),
                )
                self._note(f"batch {batch.batch_id} verified but {note}")
        view = self._project(run_id)
        self._finished(session, "verified")
        return Verified(
            run_id=str(run_id),
            view=view,
            batch_id=batch.batch_id,
            attempt=attempt,
            commit=commit,
        )

    def _failure_outcome(self, run_id: UUID) -> BatchOutcome:
        view = self.app.view(run_id)
        if view.state == "aborted":
            return Aborted(
                run_id=view.run_id, view=view, reason=view.abort_reason or ""
            )
        return self._halted_view(view)

    def _changed(self, baseline: str | None) -> tuple[str, ...]:
        try:
            return self.workspace.changed_files(baseline)
        except RecoveryError as exc:
            self._note(f"could not list the changed files: {exc}")
            return ()

    def _run_step(self, step: Step, context: StepContext) -> StepOutcome:
        self._hook(
            "on_step_start",
            StepStart(
                run_id=context.run_id,
                batch_id=context.batch.batch_id,
                attempt=context.attempt,
                phase=context.phase,
                step=step.name,
            ),
        )
        started = time.monotonic()
        try:
            return self.step_runners[step.kind](step, context)
        except Exception:
            text = traceback.format_exc()
            return StepOutcome(
                passed=False,
                duration_s=time.monotonic() - started,
                error=_first_line(text.strip().splitlines()[-1])
                or "step runner raised",
                component=component_from_traceback(text, context.root),
                traceback=text,
            )

    def _finished(self, session: BatchSession, status: str) -> None:
        self._hook(
            "on_batch_end",
            BatchEnd(
                run_id=session.run_id,
                batch_id=session.batch.batch_id,
                attempt=session.attempt,
                status=status,
                duration_s=time.monotonic() - session.started,
            ),
        )

    def _record_step(
        self,
        session: BatchSession,
        phase: str,
        step: Step,
        outcome: StepOutcome,
        changed: tuple[str, ...] | None,
    ) -> bool:
        run_id = UUID(session.run_id)
        batch, attempt = session.batch, session.attempt
        result = StepResult(
            run_id=session.run_id,
            batch_id=batch.batch_id,
            attempt=attempt,
            phase=phase,
            step=step.name,
            outcome=outcome,
        )
        if outcome.passed:
            self.app.update(
                run_id,
                lambda run: run.step_passed(
                    batch.batch_id,
                    attempt,
                    step=step.name,
                    phase=phase,
                    duration_s=round(outcome.duration_s, 6),
                ),
            )
            self._hook("on_step_result", result)
        else:
            outcome = self._with_guard(outcome, session.baseline)
            if changed is None:
                changed = self._changed(session.origin)
            self._fail(
                run_id,
                batch,
                attempt,
                phase=phase,
                name=step.name,
                kind=step.kind,
                outcome=outcome,
                changed=changed,
                recorded=result,
            )
        return outcome.passed

    def _record_interruption(self, run_id: UUID, error: str) -> bool:
        """Records the attempt under way, if any, as interrupted; returns whether
        there was one."""
        view = self.app.view(run_id)
        running = next((b for b in view.batches if b.status == "running"), None)
        if running is None:
            return False
        batch = self.plan.batch(running.batch_id)
        outcome = StepOutcome(
            passed=False, duration_s=0.0, error=error, component=batch.component or ""
        )
        self._fail(
            run_id,
            batch,
            running.attempts,
            phase=RUNTIME,
            name="interrupted",
            kind="interrupt",
            outcome=self._with_guard(outcome, running.baseline),
            changed=self._changed(running.origin),
        )
        return True

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

    def _fail(
        self,
        run_id: UUID,
        batch: Batch,
        attempt: int,
        *,
        phase: str,
        name: str,
        kind: str,
        outcome: StepOutcome,
        changed: tuple[str, ...],
        recorded: StepResult | None = None,
    ) -> None:
        """Records a failed step and the halt in one save, then (each after its
        events are saved) tells the step hooks, asks the strategy, notifies the
        operators and tells the failure hooks."""
        error = outcome.error or f"{kind} step {name} failed"
        reason = f"{phase}.{name} failed: {_first_line(error)}"
        component = outcome.component or batch.component or ""

        # What the step said, by the names the record shares with its outcome.
        said = {n: getattr(outcome, n) for n in _FROM_OUTCOME}
        failure = Failure(
            **said,
            batch_id=batch.batch_id,
            attempt=attempt,
            step=name,
            phase=phase,
            kind=kind,
            component=component,
            error=error,
            duration_s=round(outcome.duration_s, 6),
            changed_files=changed,
        )

        def record(run: Run) -> None:
            run.step_failed(failure)
            run.mark_failed(batch.batch_id, attempt, reason)

        self.app.update(run_id, record)
        self._project(run_id, failures=True)
        if recorded is not None:
            self._hook("on_step_result", recorded)
        view = self.app.view(run_id)
        saved = view.batch(batch.batch_id).failure
        assert saved is not None
        answer = self._ask_strategy(run_id, view, batch, attempt, saved)
        kept = answer.quarantine

        def answered(run: Run) -> None:
            if kept is not None:
                run.changes_quarantined(
                    batch.batch_id,
                    attempt,
                    quarantine_ref=kept.ref,
                    files=kept.files,
                    tree_id=kept.tree_id,
                )
            run.recovery_attempted(
                batch.batch_id,
                attempt,
                strategy=self.strategy.name,
                outcome=answer.as_event_data(),
            )

        self.app.update(run_id, answered)
        if kept is not None:
            self._project(run_id, failures=True)
        after = self.app.view(run_id)
        kept_failure, open_now = after.failure, after.open_decision
        assert kept_failure is not None and open_now is not None
        self._notify(run_id, kept_failure, open_now, answer)
        self._hook(
            "on_failure",
            FailureReport(
                run_id=str(run_id),
                failure=kept_failure,
                analysis=answer.analysis,
                decisions=after.decisions,
                open=open_now,
            ),
        )

    def _ask_strategy(
        self,
        run_id: UUID,
        view: RunView,
        batch: Batch,
        attempt: int,
        failure: Failure,
    ) -> RecoveryOutcome:
        context = FailureContext(
            run_id=str(run_id),
            plan_id=view.plan_id,
            batch=batch,
            attempt=attempt,
            failure=failure,
            root=self.workspace.root,
            baseline=failure.baseline,
            workspace=self.workspace,
        )
        try:
            return self.strategy.on_failure(context)
        except Exception as exc:
            return RecoveryOutcome(
                analysis=f"strategy {self.strategy.name} raised "
                f"{type(exc).__name__}: {exc}",
                details={"traceback": traceback.format_exc()},
            )

    def _notify(
        self,
        run_id: UUID,
        failure: Failure,
        open_now: OpenDecision,
        answer: RecoveryOutcome,
    ) -> None:
        notification = Notification(
            run_id=str(run_id),
            plan_id=self.plan.plan_id,
            workspace=str(self.workspace.root),
            failure=failure,
            open=open_now,
            strategy=self.strategy.name,
            analysis=answer.analysis,
            hints=answer.hints,
            store=self._store_hint,
        )
        for notifier in self.notifiers:
            error: str | None = None
            try:
                notifier.notify(notification)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            self._record_notification(
                run_id, failure.batch_id, failure.attempt, notifier.channel, error
            )

    def _record_notification(
        self, run_id: UUID, batch_id: str, attempt: int, channel: str, error: str | None
    ) -> None:
        def record(run: Run) -> None:
            run.operator_notified(
                batch_id, attempt, channel=channel, delivered=error is None, error=error
            )

        self.app.update(run_id, record)

    def _halted(self, run_id: UUID) -> Halted:
        """The halt outcome; the runner stops driving the run."""
        self._release(run_id)
        return self._halted_view(self.app.view(run_id))

    def _halted_view(self, view: RunView) -> Halted:
        assert view.awaiting is not None
        batch_id, _attempt = view.awaiting
        failure = view.batch(batch_id).failure
        assert failure is not None
        open_now = view.open_decision
        assert open_now is not None
        return Halted(
            run_id=view.run_id,
            view=view,
            failure=failure,
            decisions=view.decisions,
            open=open_now,
        )

    # -- projections --------------------------------------------------------

    def _project(self, run_id: UUID, *, failures: bool = False) -> RunView:
        """Brings the projections up to the run's state (and, after a failure,
        the workspace's failure log).

        The events are already saved: a projection that cannot be written is
        reported and can be rebuilt later, it never stops the run.
        """
        view = self.app.view(run_id)
        log = (
            tuple(self.app.failure_log(workspace=view.workspace)) if failures else None
        )
        update = ProjectionUpdate(view=view, failure_log=log)
        for projection in self.projections:
            try:
                projection.project(update)
            except Exception as exc:
                self._note(f"could not write {projection.name}: {exc}")
        return view


_HOST_CODE: Final = "host_code"
#: The record's fields a step's outcome gives as they are.
_FROM_OUTCOME: Final = sorted(
    (attrs.fields_dict(Failure).keys() & attrs.fields_dict(StepOutcome).keys())
    - {"component", "error", "duration_s"}
)
_LOST: Final = (
    "the runner stopped during this attempt (killed or crashed); its result is unknown"
)
_SIGNALLED: Final = "the runner was interrupted (SIGINT or SIGTERM) during the batch"
