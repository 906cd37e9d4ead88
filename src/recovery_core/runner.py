"""The batch loop: claim, attempt, validate, halt, decide, resume.

A :class:`Runner` drives one run of a plan in a workspace. For each batch it
takes a baseline, runs the actions (phase ``build``), then the validation steps
in order (phase ``post_build_validation``), stopping at the first failure. A
failure is recorded (``StepFailed`` and ``BatchMarkedFailed`` in one save), the
projections are written, the strategy answers, the operators are notified, and
the runner stops with a :class:`Halted` outcome. Run again after a decision, it
carries the decision out and goes on.

Every step that the runner takes is first an event; the plan file and the
failure log are written after the event is saved and can be rebuilt from it.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final
from uuid import UUID

import attrs

from recovery_core.application import RecoveryApp, new_runner_id
from recovery_core.errors import PlanError, RecoveryError
from recovery_core.plan import (
    Batch,
    ExecutionPlan,
    Step,
    StepKind,
    write_plan_status,
)
from recovery_core.ports import (
    FailureContext,
    Notification,
    Notifier,
    Progress,
    RecoveryOutcome,
    RecoveryStrategy,
    StepContext,
    StepOutcome,
    StepRunner,
    Workspace,
)
from recovery_core.projections import (
    FAILURE_LOG_TOPICS,
    default_failure_log,
    failure_log_lines,
    plan_status_fields,
    write_failure_log,
)
from recovery_core.run import FailureView, Run, RunView
from recovery_core.store import default_store_url

__all__ = [
    "Aborted",
    "Completed",
    "Halted",
    "Outcome",
    "Runner",
    "RunnerIdentity",
    "check_step_kinds",
    "component_from_traceback",
    "decision_commands",
    "rebuild_failure_log",
]

BUILD: Final = "build"
VALIDATION: Final = "post_build_validation"
RUNTIME: Final = "runtime_execution"


@attrs.frozen
class Completed:
    """Every batch was verified or skipped."""

    run_id: str
    view: RunView
    exit_code: int = 0


@attrs.frozen
class Halted:
    """A batch failed; the run waits for one of ``decisions``."""

    run_id: str
    view: RunView
    failure: FailureView
    decisions: tuple[str, ...]
    commands: tuple[str, ...]
    exit_code: int = 3


@attrs.frozen
class Aborted:
    """The run was aborted."""

    run_id: str
    view: RunView
    reason: str
    exit_code: int = 4


Outcome = Completed | Halted | Aborted


@attrs.frozen
class RunnerIdentity:
    """Who drives a run: recorded in ``RunnerClaimed``."""

    host: str = attrs.field(factory=socket.gethostname)
    pid: int = attrs.field(factory=os.getpid)
    runner_id: str = attrs.field(factory=new_runner_id)


def _pid_alive(pid: int) -> bool:
    # Signal 0 checks that the process exists without touching it.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def component_from_traceback(text: str, root: Path) -> str:
    """The innermost ``file:line`` of a Python traceback that lies in ``root``, as a
    path relative to it; empty when no frame does."""
    found = ""
    resolved = root.resolve()
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith('File "'):
            continue
        name, _, rest = stripped[len('File "') :].partition('"')
        lineno = rest.split("line ", 1)[1].split(",", 1)[0] if "line " in rest else ""
        path = Path(name)
        if not path.is_absolute():
            path = resolved / path
        try:
            relative = path.resolve().relative_to(resolved)
        except (ValueError, OSError):
            continue
        found = f"{relative.as_posix()}:{lineno}" if lineno else relative.as_posix()
    return found


def decision_commands(
    run_id: str, batch_id: str, decisions: Sequence[str], store: str | None
) -> tuple[str, ...]:
    """The exact ``recovery decide`` commands an operator may run, then resume."""
    store_arg = f" --store '{store}'" if store else ""
    commands = [
        f"recovery decide{store_arg} {run_id} {batch_id} {decision}"
        for decision in decisions
    ]
    commands.append(f"recovery resume{store_arg} {run_id}")
    return tuple(commands)


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def check_step_kinds(
    plan: ExecutionPlan, step_runners: Mapping[str, StepRunner]
) -> None:
    """Refuses (exit 2) a plan with a step kind that no runner here can run, before
    anything is recorded."""
    problems = []
    for i, batch in enumerate(plan.batches):
        if batch.actions and "command" not in step_runners:
            problems.append(f"batches[{i}].actions: no runner for commands")
        for j, step in enumerate(batch.validation):
            if step.kind not in step_runners:
                problems.append(
                    f"batches[{i}].validation[{j}].kind: step kind {step.kind!r} "
                    "has no runner in this installation (available: "
                    f"{', '.join(sorted(step_runners))})"
                )
    if problems:
        raise PlanError(plan.source, problems)


class Runner:
    """Drives the run of one plan in one workspace; see the module's docstring."""

    def __init__(
        self,
        app: RecoveryApp,
        plan: ExecutionPlan,
        *,
        workspace: Workspace,
        step_runners: Mapping[str, StepRunner],
        strategy: RecoveryStrategy,
        notifiers: Sequence[Notifier] = (),
        progress: Progress | None = None,
        plan_path: str | os.PathLike[str] | None = None,
        failure_log: str | os.PathLike[str] | None = None,
        identity: RunnerIdentity | None = None,
        run_id: UUID | None = None,
    ) -> None:
        self.app = app
        self.plan = plan
        self.workspace = workspace
        self.step_runners = dict(step_runners)
        self.strategy = strategy
        self.notifiers = tuple(notifiers)
        self.progress = progress
        self.plan_path = Path(plan_path) if plan_path is not None else None
        self.failure_log = (
            Path(failure_log)
            if failure_log is not None
            else default_failure_log(workspace.root)
        )
        self.identity = identity or RunnerIdentity()
        self.run_id = run_id
        self._check_step_kinds()

    # -- set-up -------------------------------------------------------------

    def _check_step_kinds(self) -> None:
        check_step_kinds(self.plan, self.step_runners)

    @property
    def _store_hint(self) -> str | None:
        """The store to name in printed commands, when it is not the default one
        that commands find by themselves from the workspace."""
        url = self.app.store.url
        if url == default_store_url(self.workspace.root):
            return None
        return self.app.store.display

    def _note(self, message: str) -> None:
        note = getattr(self.progress, "note", None)
        if callable(note):
            note(message)

    def open_run(self) -> UUID:
        """Finds the unfinished run of this plan here, or starts one; returns its id."""
        if self.run_id is None:
            self.workspace.prepare()
            found = self.app.unfinished_run(self.plan, self.workspace.root)
            if found is None:
                found = self.app.start_run(
                    self.plan,
                    workspace=self.workspace.root,
                    runner_id=self.identity.runner_id,
                )
            self.run_id = found
        return self.run_id

    def _claim(self, run_id: UUID) -> None:
        ident = self.identity

        def claim(run: Run) -> None:
            held = run.claim
            take_over = (
                held is not None
                and held.host == ident.host
                and (held.pid == ident.pid or not _pid_alive(held.pid))
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

    # -- the loop -----------------------------------------------------------

    def run(
        self,
        *,
        wait: bool = False,
        poll_s: float = 1.0,
        wait_timeout_s: float | None = None,
    ) -> Outcome:
        """Runs the plan's remaining batches until the run completes, aborts or
        halts. With ``wait``, a halt waits for an operator's decision (recorded
        by ``recovery decide`` from anywhere that reaches the store) and goes on.
        """
        run_id = self.open_run()
        view = self.app.view(run_id)
        if view.state in ("completed", "aborted"):
            return self._ended(view)
        self._claim(run_id)
        try:
            return self._loop(
                run_id, wait=wait, poll_s=poll_s, wait_timeout_s=wait_timeout_s
            )
        except KeyboardInterrupt:
            view = self.app.view(run_id)
            running = next((b for b in view.batches if b.status == "running"), None)
            if running:
                self._fail(
                    run_id,
                    self.plan.batch(running.batch_id),
                    running.attempts,
                    phase=RUNTIME,
                    name="interrupted",
                    kind="interrupt",
                    outcome=StepOutcome(
                        passed=False,
                        duration_s=0.0,
                        error="the runner was interrupted (SIGINT) during the batch",
                        component=self.plan.batch(running.batch_id).component or "",
                    ),
                    changed=(),
                )
                return self._halted(run_id)
            raise

    def _ended(self, view: RunView) -> Outcome:
        if view.state == "completed":
            return Completed(run_id=view.run_id, view=view)
        return Aborted(run_id=view.run_id, view=view, reason=view.abort_reason or "")

    def _loop(
        self, run_id: UUID, *, wait: bool, poll_s: float, wait_timeout_s: float | None
    ) -> Outcome:
        while True:
            view = self.app.view(run_id)
            if view.state in ("completed", "aborted"):
                return self._ended(view)
            running = next((b for b in view.batches if b.status == "running"), None)
            if running is not None:
                # A runner stopped in the middle of this attempt: record it as the
                # attempt's failure, so that an operator decides what happens.
                batch = self.plan.batch(running.batch_id)
                self._fail(
                    run_id,
                    batch,
                    running.attempts,
                    phase=RUNTIME,
                    name="interrupted",
                    kind="interrupt",
                    outcome=StepOutcome(
                        passed=False,
                        duration_s=0.0,
                        error="the runner stopped during this attempt "
                        "(killed or crashed); its result is unknown",
                        component=batch.component or "",
                    ),
                    changed=self._changed(running.origin),
                )
                continue
            if view.state == "halted":
                decision = view.decision
                if decision is None or decision.carried_out:
                    if not wait:
                        return self._halted(run_id)
                    if not self._wait_for_decision(run_id, poll_s, wait_timeout_s):
                        return self._halted(run_id)
                    continue
                if decision.decision == "skip":
                    self.app.update(run_id, lambda run: run.skip_batch())
                    self._project(run_id)
                    continue
                # retry: the next attempt starts below.
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
            self._attempt(run_id, self.plan.batch(next_id))

    def _wait_for_decision(
        self, run_id: UUID, poll_s: float, timeout_s: float | None
    ) -> bool:
        self._release(run_id)
        self._note("waiting for an operator decision")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            view = self.app.view(run_id)
            if view.state != "halted" or (
                view.decision is not None and not view.decision.carried_out
            ):
                if view.state not in ("completed", "aborted"):
                    self._claim(run_id)
                return True
            time.sleep(poll_s)
        return False

    def _changed(self, baseline: str | None) -> tuple[str, ...]:
        try:
            return self.workspace.changed_files(baseline)
        except RecoveryError as exc:
            self._note(f"could not list the changed files: {exc}")
            return ()

    def _run_step(self, step: Step, context: StepContext) -> StepOutcome:
        if self.progress:
            self.progress.step_started(context.batch.batch_id, context.phase, step.name)
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

    def _attempt(self, run_id: UUID, batch: Batch) -> None:
        started = time.monotonic()
        baseline = self.workspace.snapshot(
            run_id=str(run_id),
            batch_id=batch.batch_id,
            attempt=self._next_attempt(run_id, batch),
        )
        attempt = self.app.update(
            run_id, lambda run: run.start_batch(batch.batch_id, baseline)
        )
        view = self._project(run_id)
        origin = view.batch(batch.batch_id).origin
        index = self.plan.batch_ids.index(batch.batch_id) + 1
        if self.progress:
            self.progress.batch_started(
                batch.batch_id,
                attempt,
                index,
                len(self.plan.batches),
                batch.description,
            )
        root = self.workspace.root
        context = StepContext(
            root=root,
            run_id=str(run_id),
            batch=batch,
            attempt=attempt,
            baseline=baseline,
            changed_files=(),
            phase=BUILD,
        )
        for action in batch.actions:
            step = Step(
                name=action.name,
                kind=StepKind("command"),
                run=action.run,
                timeout_s=action.timeout_s,
            )
            outcome = self._run_step(step, context)
            if not self._record_step(
                run_id, batch, attempt, BUILD, step, outcome, origin
            ):
                self._finished(batch, attempt, "failed", started)
                return
        changed = self._changed(origin)
        context = attrs.evolve(context, changed_files=changed, phase=VALIDATION)
        for step in batch.validation:
            outcome = self._run_step(step, context)
            if not self._record_step(
                run_id, batch, attempt, VALIDATION, step, outcome, origin, changed
            ):
                self._finished(batch, attempt, "failed", started)
                return
        self.app.update(run_id, lambda run: run.verify_batch(batch.batch_id, attempt))
        if batch.commit_strategy == "commit":
            commit = self.workspace.commit(
                baseline=origin,
                files=changed,
                message=f"{batch.batch_id}: {batch.description or 'verified batch'}",
                trailers={
                    "Recovery-Run": str(run_id),
                    "Recovery-Batch": batch.batch_id,
                    "Recovery-Chain": self.app.view(run_id).head_digest,
                },
            )
            self.app.update(
                run_id, lambda run: run.batch_committed(batch.batch_id, attempt, commit)
            )
        self._project(run_id)
        self._finished(batch, attempt, "verified", started)

    def _next_attempt(self, run_id: UUID, batch: Batch) -> int:
        return self.app.view(run_id).batch(batch.batch_id).attempts + 1

    def _finished(
        self, batch: Batch, attempt: int, status: str, started: float
    ) -> None:
        if self.progress:
            self.progress.batch_finished(
                batch.batch_id, attempt, status, time.monotonic() - started
            )

    def _record_step(
        self,
        run_id: UUID,
        batch: Batch,
        attempt: int,
        phase: str,
        step: Step,
        outcome: StepOutcome,
        baseline: str | None,
        changed: tuple[str, ...] | None = None,
    ) -> bool:
        if self.progress:
            self.progress.step_finished(batch.batch_id, phase, step.name, outcome)
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
            return True
        if changed is None:
            changed = self._changed(baseline)
        self._fail(
            run_id,
            batch,
            attempt,
            phase=phase,
            name=step.name,
            kind=step.kind,
            outcome=outcome,
            changed=changed,
        )
        return False

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
    ) -> None:
        error = outcome.error or f"{kind} step {name} failed"
        reason = f"{phase}.{name} failed: {_first_line(error)}"
        component = outcome.component or batch.component or ""

        def record(run: Run) -> None:
            run.step_failed(
                batch.batch_id,
                attempt,
                step=name,
                phase=phase,
                kind=kind,
                component=component,
                error=error,
                traceback=outcome.traceback,
                output_tail=outcome.output_tail,
                exit_code=outcome.exit_code,
                duration_s=round(outcome.duration_s, 6),
                changed_files=changed,
                timed_out=outcome.timed_out,
            )
            run.mark_failed(batch.batch_id, attempt, reason)

        self.app.update(run_id, record)
        self._project(run_id, failures=True)
        view = self.app.view(run_id)
        failure = view.batch(batch.batch_id).failure
        assert failure is not None
        answer = self._ask_strategy(run_id, view, batch, attempt, failure)
        self.app.update(
            run_id,
            lambda run: run.recovery_attempted(
                batch.batch_id,
                attempt,
                strategy=self.strategy.name,
                outcome=answer.as_event_data(),
            ),
        )
        self._notify(run_id, batch, attempt, failure, answer)

    def _ask_strategy(
        self,
        run_id: UUID,
        view: RunView,
        batch: Batch,
        attempt: int,
        failure: FailureView,
    ) -> RecoveryOutcome:
        context = FailureContext(
            run_id=str(run_id),
            plan_id=view.plan_id,
            batch=batch,
            attempt=attempt,
            failure=failure,
            root=self.workspace.root,
            baseline=failure.baseline,
        )
        try:
            return self.strategy.on_failure(context)
        except Exception as exc:
            return RecoveryOutcome(
                analysis=f"strategy {self.strategy.name} raised {type(exc).__name__}: {exc}",
                details={"traceback": traceback.format_exc()},
            )

    def _decisions(self, answer: RecoveryOutcome) -> tuple[str, ...]:
        return (
            ("retry", "skip", "recover", "abort")
            if answer.proposal
            else ("retry", "skip", "abort")
        )

    def _notify(
        self,
        run_id: UUID,
        batch: Batch,
        attempt: int,
        failure: FailureView,
        answer: RecoveryOutcome,
    ) -> None:
        decisions = self._decisions(answer)
        notification = Notification(
            run_id=str(run_id),
            plan_id=self.plan.plan_id,
            batch_id=batch.batch_id,
            attempt=attempt,
            step=f"{failure.phase}.{failure.step}",
            component=failure.component,
            error=failure.error,
            failure_reason=failure.failure_reason or "",
            output_tail=failure.output_tail or failure.traceback,
            decisions=decisions,
            commands=decision_commands(
                str(run_id), batch.batch_id, decisions, self._store_hint
            ),
            strategy=self.strategy.name,
            analysis=answer.analysis,
            workspace=str(self.workspace.root),
        )
        for notifier in self.notifiers:
            error: str | None = None
            try:
                notifier.notify(notification)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            self._record_notification(
                run_id, batch.batch_id, attempt, notifier.channel, error
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
        self._release(run_id)
        view = self.app.view(run_id)
        assert view.awaiting is not None
        batch_id, _attempt = view.awaiting
        failure = view.batch(batch_id).failure
        assert failure is not None
        decisions = (
            ("retry", "skip", "recover", "abort")
            if view.proposal
            else ("retry", "skip", "abort")
        )
        return Halted(
            run_id=view.run_id,
            view=view,
            failure=failure,
            decisions=decisions,
            commands=decision_commands(
                view.run_id, batch_id, decisions, self._store_hint
            ),
        )

    # -- projections --------------------------------------------------------

    def _project(self, run_id: UUID, *, failures: bool = False) -> RunView:
        """Writes the plan file's status keys and, after a failure, the failure log.

        The events are already saved: a projection that cannot be written is
        reported and can be rebuilt later, it never stops the run.
        """
        view = self.app.view(run_id)
        if self.plan_path is not None:
            try:
                write_plan_status(self.plan_path, plan_status_fields(view))
            except (OSError, ValueError) as exc:
                self._note(f"could not write the plan file {self.plan_path}: {exc}")
        if failures:
            try:
                rebuild_failure_log(self.app, self.failure_log, view.workspace)
            except OSError as exc:
                self._note(f"could not write the failure log {self.failure_log}: {exc}")
        return view


def rebuild_failure_log(app: RecoveryApp, path: Path, workspace: str) -> bool:
    """Writes the failure log of ``workspace`` from the store's events; returns
    whether its bytes changed."""
    lines = failure_log_lines(
        app.notifications(FAILURE_LOG_TOPICS), workspace=workspace
    )
    return write_failure_log(path, lines)
