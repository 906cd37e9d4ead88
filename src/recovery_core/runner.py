"""The batch loop: claim, attempt, validate, halt, decide, resume.

A :class:`Runner` drives one run of a plan in a workspace. It holds the
workspace, claims the run, and, batch after batch, decides what comes next from
the run's state: an attempt (:mod:`recovery_core.attempt`: the actions, then the
validation steps, stopping at the first failure), a failure's halt
(:mod:`recovery_core.halting`: recorded, projected, answered by the strategy,
notified; the runner then stops with a :class:`Halted` outcome), an attempt a
stopped runner left (:mod:`recovery_core.interruption`), a decision to carry
out, or the run's end. Run again after a decision, it carries the decision out
and goes on.

A host application may instead make a batch's change in its own code, inside
``with runner.batch(batch_id) as session:``: entering takes the baseline,
leaving runs the validation steps; an exception raised in the block is the
attempt's ``runtime_execution`` failure, handled like any other. A retry of a
batch the host makes (one with no actions) is the host's to carry out:
:meth:`Runner.run` stops there instead of validating a change nobody made.

The runner keeps nothing between calls but the id of the run it drives: what to
do next is read from the run's state each time, and every step it takes is
first an event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import attrs

from recovery_core.attempt import BUILD, RUNTIME, VALIDATION, Attempts
from recovery_core.errors import IllegalTransition, RecoveryError
from recovery_core.halting import Halting
from recovery_core.hooks import Hooks, call_hooks
from recovery_core.interruption import LOST, SIGNALLED, interrupted, settled
from recovery_core.lease import HEARTBEAT_S, STALE_AFTER_S, RunnerLease
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
from recovery_core.plan import Batch, ExecutionPlan
from recovery_core.ports import (
    Notifier,
    Projection,
    ProjectionUpdate,
    RecoveryStrategy,
    RunnerHost,
    StepRunner,
    Workspace,
)
from recovery_core.records import ClaimView, RunView
from recovery_core.run import Run, new_runner_id
from recovery_core.runtime import default_host
from recovery_core.strategies import batch_strategies
from recovery_core.tracebacks import component_from_traceback

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


#: How a runner waits at a halt: between looks at the store, for how long at
#: most, and whom it asks first (see :meth:`Runner.run`).
_Waiting = tuple[float, "float | None", "Callable[[RunView], None] | None"]


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
        stale_after_s: float = STALE_AFTER_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.app = app
        #: How old the heartbeat of another host's runner may be before this
        #: runner takes its claim over, and how often this one records its own
        #: (:mod:`recovery_core.lease`).
        self.stale_after_s, self.heartbeat_s = stale_after_s, heartbeat_s
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
        halting = Halting(
            app=app,
            plan=plan,
            workspace=workspace,
            strategy=strategy,
            notifiers=self.notifiers,
            project=self._project,
            hook=self._hook,
            strategies=batch_strategies(plan),
        )
        self._attempts = Attempts(
            app=app,
            plan=plan,
            workspace=workspace,
            step_runners=self.step_runners,
            strategy=strategy,
            halting=halting,
            project=self._project,
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
        ask: Callable[[RunView], None] | None = None,
    ) -> Outcome:
        """Runs the plan's remaining batches until the run completes, aborts or
        halts. With ``wait``, a halt waits for an operator's decision (recorded
        by ``recovery decide`` from anywhere that reaches the store, or by
        :meth:`RecoveryApp.decide`) and goes on; ``wait_timeout_s`` bounds it.
        ``ask`` (with ``wait``) is called first at each halt with the run's
        state, to ask an operator at hand (a terminal) who records a decision
        through :meth:`RecoveryApp.decide`, or none to wait for one from
        elsewhere.
        """
        with self._holding() as run_id:
            self._project(run_id, failures=True)  # as the events say, first
            if self.app.view(run_id).state not in ("completed", "aborted"):
                try:
                    waiting = (poll_s, wait_timeout_s, ask) if wait else None
                    while batch := self._next(run_id, waiting):
                        self._attempts.make(run_id, batch)
                except KeyboardInterrupt:
                    if not interrupted(self._attempts, self.host, run_id, SIGNALLED):
                        self._release(run_id)  # stopped while it waited: halted
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
            try:
                session = self._attempts.start(
                    run_id, self._host_may_start(run_id, batch)
                )
            except RecoveryError:
                self._release(run_id)  # refused: this runner drives nothing
                raise
            try:
                yield session
            except Exception as exc:
                self._attempts.host_failed(session, exc)
            except BaseException:
                if interrupted(self._attempts, self.host, run_id, SIGNALLED):
                    self._stop(run_id)
                raise
            else:
                if self._attempts.guarded(session, RUNTIME):
                    self._attempts.validate(session)
            session.outcome = self._batch_outcome(session)

    # -- what comes next ----------------------------------------------------

    def _next(
        self, run_id: UUID, waiting: _Waiting | None = None, *, by_host: bool = False
    ) -> Batch | None:
        """The batch to attempt now, after recording a lost attempt, carrying
        out a skip, waiting for a decision or completing the run; None when the
        run stops here. ``by_host``: for a host's block, which carries out the
        retry of a batch it makes, and never a recover."""
        while True:
            view = self.app.view(run_id)
            if view.state in ("completed", "aborted"):
                return None
            if view.plan_digest != self.plan.digest:
                self._adopt(run_id)  # amended with a retry decision meanwhile
            if interrupted(self._attempts, self.host, run_id, LOST):
                continue  # a runner died mid-attempt: that attempt failed
            if settled(self._attempts, view):
                continue  # a runner died after an outcome, before its effects
            open_now = view.open_decision
            decision = None if open_now is None else open_now.recorded
            if open_now is not None and decision is None:
                if waiting is not None and self._waited(run_id, *waiting):
                    continue
                return None
            if decision is not None:
                batch = self.plan.batch(decision.batch_id)
                if decision.decision == "retry" and not batch.actions and not by_host:
                    self._note(
                        f"batch {batch.batch_id} is made by the host application: "
                        "the retry decided for it is carried out by the host's "
                        f"`with runner.batch({batch.batch_id!r})`"
                    )
                    return None
                self._require_recover(decision.decision, batch, by_host, view)
                self._project(run_id, failures=True)  # the log shows who decided
                self._hook("on_decision", decision)
                if decision.decision == "skip":
                    self.app.update(run_id, lambda run: run.skip_batch())
                    self._project(run_id)
                    continue
            upcoming = view.next_batch
            if upcoming is None:
                self.app.update(run_id, lambda run: run.complete())
                self._project(run_id)
                return None
            return self.plan.batch(upcoming.batch_id)

    def _adopt(self, run_id: UUID) -> None:
        """Follows the run's amended plan (``PlanAmended``) from now on."""
        plan = self.app.recorded_plan(run_id)
        plan.require_runners(self.step_runners)
        halting = attrs.evolve(
            self._attempts.halting, plan=plan, strategies=batch_strategies(plan)
        )
        self._attempts = attrs.evolve(self._attempts, plan=plan, halting=halting)
        self.plan = plan
        self._note(f"following the amended plan {plan.plan_id} ({plan.digest[:12]})")

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

    def _require_recover(
        self, decision: str, batch: Batch, by_host: bool, view: RunView
    ) -> None:
        """A recover is carried out by run(), with the strategy that proposed
        the fix (``RecoveryAttempted`` names it)."""
        if decision != "recover":
            return
        if by_host:
            raise IllegalTransition(
                f"batch {batch.batch_id} has a recover decision: run() carries it "
                "out by applying the strategy's proposed fix"
            )
        proposer = self._attempts.halting.proposer(view.strategy)
        if proposer is None or not callable(getattr(proposer, "recover", None)):
            name = view.strategy or self.strategy.name
            raise IllegalTransition(
                f"strategy {name} cannot carry out a recover decision"
                + (" (this runner does not have it)" if proposer is None else "")
                + f"; decide abort for batch {batch.batch_id}, "
                "or resume with the strategy that proposed the fix"
            )

    def _waited(
        self,
        run_id: UUID,
        poll_s: float,
        timeout_s: float | None,
        ask: Callable[[RunView], None] | None,
    ) -> bool:
        """Waits for a decision (asking ``ask`` first), the run still claimed
        (no other runner takes it meanwhile: a decision is carried out once, by
        this runner); whether one came."""
        view = self.app.view(run_id)
        if ask is not None:
            ask(view)
        if view.awaiting is not None:
            batch_id, attempt = view.awaiting
            self._note(
                f"waiting for a decision on batch {batch_id} attempt {attempt} "
                "(from any process or host that reaches the store); Ctrl-C stops "
                "waiting and leaves the run halted"
            )
        decided = self.app.wait_for_decision(
            run_id, timeout_s=timeout_s, poll_s=poll_s, sleep=self.host.sleep
        )
        if decided is None:
            return False
        if self.app.view(run_id).state not in ("completed", "aborted"):
            self._claim(run_id)  # still this runner's (not taken over as stale)
        return True

    # -- around -------------------------------------------------------------

    @contextmanager
    def _holding(self) -> Iterator[UUID]:
        """The workspace held for this runner (before the run is known, and
        then naming it), with the run to drive."""
        with self.workspace.locked(self._holder(self.run_id)):
            run_id = self.open_run()
            self.app.check_chain(run_id)  # before anything is acted on
            with self.workspace.locked(self._holder(run_id)):
                if self.app.view(run_id).state not in ("completed", "aborted"):
                    self._claim(run_id)  # before the workspace is touched
                with self._alive(run_id):
                    yield run_id

    @contextmanager
    def _alive(self, run_id: UUID) -> Iterator[None]:
        """Records this runner's heartbeat while it holds the run, through its
        host's ``keep_alive`` (a host without one records none: its claims are
        then taken over as stale from other hosts; see
        :mod:`recovery_core.lease`)."""
        keep_alive = getattr(self.host, "keep_alive", None)
        if keep_alive is None:
            yield
            return
        ident, leases = self.identity, list[RunnerLease]()

        def beat() -> None:
            if not leases:
                leases.append(
                    RunnerLease.start(run_id, ident.runner_id, ident.host, ident.pid)
                )
            else:
                leases[0].beat()
            self.app.save(leases[0])

        with keep_alive(beat, self.heartbeat_s):
            yield

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
                or (held.host != ident.host and self._stale(run_id, held))
            )
            run.claim_runner(
                host=ident.host,
                pid=ident.pid,
                runner_id=ident.runner_id,
                take_over=take_over,
            )

        self.app.update(run_id, claim)

    def _stale(self, run_id: UUID, held: ClaimView) -> bool:
        """Whether the claim ``held`` (of a runner on another host) has had no
        heartbeat for longer than :attr:`stale_after_s`."""
        seen = self.app.last_seen(run_id, held.runner_id) or held.since
        return time.time() - seen > self.stale_after_s

    def _release(self, run_id: UUID) -> None:
        try:
            self.app.update(
                run_id, lambda run: run.release_runner(self.identity.runner_id)
            )
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

    def _project(
        self, run_id: UUID, failures: bool = False, *, view: RunView | None = None
    ) -> RunView:
        """Brings the projections up to the run's state, ``view`` when the
        caller has it from its save (and, after a failure, the workspace's
        failure log). The events are saved already: one that cannot be written
        is reported and rebuilt later, never stops the run."""
        view = self.app.view(run_id) if view is None else view
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
