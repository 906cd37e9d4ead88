"""Random command sequences on one run, against a simple model of the rules.

A Hypothesis state machine drives one run of a plan with 1 to 4 batches through
RecoveryApp on ``memory://``: starts, passed and failed steps, decisions (right
and wrong), skips, verifications, completion, abort, claims and releases. Each
command either succeeds, when the model says it is legal, writing exactly the
events the model expects, or raises the RecoveryError subclass the model names,
writing nothing. After every step the run rebuilt from the store equals the live
aggregate, the hash chain verifies to the live head, and the batches' statuses
and the run's state match the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar
from uuid import UUID

import attrs
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from recovery_core import (
    ConflictError,
    IllegalTransition,
    RecoveryApp,
    RecoveryError,
    UnknownBatch,
    parse_plan,
    verify_chain,
)
from recovery_core.records import DECISIONS, Failure
from recovery_core.run import Run

T = TypeVar("T")

UNKNOWN: Final = "zz-unknown"
RUNNERS: Final = ("r1", "r2")
STATES: Final = frozenset({"running", "halted", "completed", "aborted"})

#: A batch choice: mostly "the right one for this command", else one of the
#: plan's (maybe the right one too), or one it does not have.
PICKS = st.sampled_from(["right", "right", "right", "right", 0, 1, 2, 3, "unknown"])
#: An attempt choice relative to the batch's current attempt: mostly right.
DELTAS = st.sampled_from([0, 0, 0, 0, 1, -1])
#: What happens to a running batch, when a rule makes progress.
OUTCOMES = st.sampled_from(["pass", "verify", "fail", "fail"])
#: Decisions, weighted so that most runs go on after a decision.
WORDS = st.sampled_from(["retry", "retry", "skip", "skip", "recover", "abort", "later"])


@attrs.define
class BatchModel:
    """What the model expects of one batch."""

    status: str = "pending"
    attempts: int = 0


@attrs.define
class DecisionModel:
    """The last decision recorded."""

    batch_id: str
    attempt: int
    decision: str
    carried_out: bool = False


@attrs.define
class Model:
    """The expected state of the run."""

    order: list[str]
    batches: dict[str, BatchModel]
    state: str = "running"
    awaiting: tuple[str, int] | None = None
    decision: DecisionModel | None = None
    proposal: bool = False
    claim: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ("completed", "aborted")

    def running(self) -> str | None:
        return next(
            (b for b in self.order if self.batches[b].status == "running"), None
        )

    def next_batch(self) -> str | None:
        return next(
            (
                b
                for b in self.order
                if self.batches[b].status not in ("verified", "skipped")
            ),
            None,
        )


class RunMachine(RuleBasedStateMachine):
    """One run, driven at random; see the module's docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.app = RecoveryApp.open("memory://")
        self.run_id: UUID | None = None
        self.live: Run | None = None
        self.model = Model(order=[], batches={})

    def teardown(self) -> None:
        self.app.close()

    # -- plumbing -------------------------------------------------------------

    @property
    def rid(self) -> UUID:
        assert self.run_id is not None
        return self.run_id

    def _topics(self) -> list[str]:
        return [type(e).TOPIC for e in self.app.history(self.rid)]

    def _do(
        self,
        command: Callable[[Run], T],
        *,
        refused: type[RecoveryError] | None,
        writes: list[str],
    ) -> T | None:
        """Runs ``command`` through ``app.update``. With ``refused``, checks that it
        raised exactly that class and wrote nothing; otherwise that it wrote the
        events ``writes`` names (by class name), in that order."""
        event(f"refused: {refused.__name__}" if refused else f"wrote {writes}")
        stored = self._topics()
        version = self.app.view(self.rid).version
        seen: list[Run] = []

        def wrapped(run: Run) -> T:
            seen.append(run)
            return command(run)

        if refused is not None:
            with pytest.raises(RecoveryError) as info:
                self.app.update(self.rid, wrapped)
                written = self._topics()[len(stored) :]
                pytest.fail(f"expected {refused.__name__}; the command wrote {written}")
            assert type(info.value) is refused, (
                f"expected {refused.__name__}, got "
                f"{type(info.value).__name__}: {info.value}"
            )
            assert seen[0].pending_events == []
            assert self._topics() == stored
            assert self.app.view(self.rid).version == version
            self.live = seen[0]
            return None
        result = self.app.update(self.rid, wrapped)
        self.live = seen[0]
        assert self.live.pending_events == []
        expected = [f"recovery:{name}" for name in writes]
        assert self._topics() == stored + expected
        assert self.app.view(self.rid).version == version + len(writes)
        return result

    def _batch(self, pick: Any, right: str | None) -> str:
        if pick == "unknown":
            return UNKNOWN
        if pick == "right":
            return right or self.model.order[0]
        index: int = pick
        return self.model.order[index % len(self.model.order)]

    def _attempt(self, batch_id: str, delta: int) -> int:
        batch = self.model.batches.get(batch_id)
        return (batch.attempts if batch else 1) + delta

    def _running_attempt_error(
        self, batch_id: str, attempt: int
    ) -> type[RecoveryError] | None:
        if self.model.ended:
            return IllegalTransition
        batch = self.model.batches.get(batch_id)
        if batch is None:
            return UnknownBatch
        if batch.status != "running" or batch.attempts != attempt:
            return IllegalTransition
        return None

    def _carry_out(self) -> None:
        if self.model.decision is not None:
            self.model.decision.carried_out = True

    # -- set-up ---------------------------------------------------------------

    @initialize(count=st.integers(min_value=1, max_value=4))
    def start_run(self, count: int) -> None:
        ids = [f"b{i}" for i in range(1, count + 1)]
        plan = parse_plan(
            {
                "plan_id": "machine",
                "batches": [
                    {"batch_id": b, "validation": [{"name": "s", "kind": "syntax"}]}
                    for b in ids
                ],
            }
        )
        self.run_id = self.app.start_run(plan, workspace=".", runner_id="r0")
        self.live = self.app.get_run(self.run_id)
        self.model = Model(order=ids, batches={b: BatchModel() for b in ids})

    # -- rules ------------------------------------------------------------------

    @rule(pick=PICKS)
    def start_batch(self, pick: Any) -> None:
        m = self.model
        batch_id = self._batch(pick, m.next_batch())
        error: type[RecoveryError] | None = None
        if m.ended:
            error = IllegalTransition
        elif batch_id not in m.batches:
            error = UnknownBatch
        elif (
            m.running() is not None
            or batch_id != m.next_batch()
            # A failure awaits a decision, and it is not (yet) a retry or recover.
            or (
                m.state == "halted"
                and (
                    m.decision is None
                    or m.decision.decision not in ("retry", "recover")
                )
            )
        ):
            error = IllegalTransition
        attempt = self._do(
            lambda run: run.start_batch(batch_id, f"base-{batch_id}"),
            refused=error,
            writes=["BatchStarted"],
        )
        if error is None:
            batch = m.batches[batch_id]
            batch.attempts += 1
            batch.status = "running"
            assert attempt == batch.attempts
            if attempt > 1:
                event(f"started attempt {attempt}")
            self._carry_out()
            m.state = "running"
            m.awaiting = None
            m.proposal = False

    @rule(pick=PICKS, delta=DELTAS)
    def step_passed(self, pick: Any, delta: int) -> None:
        batch_id = self._batch(pick, self.model.running())
        attempt = self._attempt(batch_id, delta)
        self._do(
            lambda run: run.step_passed(
                batch_id,
                attempt,
                step="s",
                phase="post_build_validation",
                duration_s=0.25,
            ),
            refused=self._running_attempt_error(batch_id, attempt),
            writes=["StepPassed"],
        )

    @rule(pick=PICKS, delta=DELTAS)
    def step_failed(self, pick: Any, delta: int) -> None:
        m = self.model
        batch_id = self._batch(pick, m.running())
        attempt = self._attempt(batch_id, delta)

        def command(run: Run) -> None:
            run.step_failed(
                Failure(
                    batch_id,
                    attempt,
                    step="s",
                    phase="post_build_validation",
                    kind="syntax",
                    component="app/x.py",
                    error="SyntaxError: invalid syntax",
                    traceback="Traceback ...\n",
                    exit_code=1,
                    duration_s=0.5,
                    changed_files=("app/x.py",),
                )
            )
            run.mark_failed(batch_id, attempt, "post_build_validation.s failed")

        error = self._running_attempt_error(batch_id, attempt)
        self._do(command, refused=error, writes=["StepFailed", "BatchMarkedFailed"])
        if error is None:
            m.batches[batch_id].status = "failed"
            m.state = "halted"
            m.awaiting = (batch_id, attempt)
            m.decision = None

    @rule(pick=PICKS, delta=DELTAS, proposal=st.booleans())
    def strategy_answers(self, pick: Any, delta: int, proposal: bool) -> None:
        m = self.model
        right = m.awaiting[0] if m.awaiting else None
        batch_id = self._batch(pick, right)
        attempt = self._attempt(batch_id, delta)
        error: type[RecoveryError] | None = None
        if m.ended or m.awaiting != (batch_id, attempt):
            error = IllegalTransition
        self._do(
            lambda run: run.recovery_attempted(
                batch_id,
                attempt,
                strategy="test",
                outcome={"analysis": "looked", "proposal": proposal},
            ),
            refused=error,
            writes=["RecoveryAttempted"],
        )
        if error is None:
            m.proposal = proposal

    @rule(
        pick=PICKS,
        word=WORDS,
        attempt_choice=st.sampled_from(["none", "right", "next", "previous"]),
        operator=st.sampled_from(["alice", "bob"]),
    )
    def decide(self, pick: Any, word: str, attempt_choice: str, operator: str) -> None:
        m = self.model
        right = m.awaiting or (
            (m.decision.batch_id, m.decision.attempt) if m.decision else None
        )
        batch_id = self._batch(pick, right[0] if right else None)
        base = right[1] if right else 1
        attempt = {"none": None, "right": base, "next": base + 1, "previous": base - 1}[
            attempt_choice
        ]
        taken = m.decision
        error: type[RecoveryError] | None = None
        if (
            taken is not None
            and (not taken.carried_out or m.state == "aborted")
            and taken.batch_id == batch_id
            and attempt in (None, taken.attempt)
        ):
            # A second decision on the failure already decided.
            error = ConflictError
        elif m.ended:
            error = IllegalTransition
        elif batch_id not in m.batches:
            error = UnknownBatch
        elif (
            word not in DECISIONS
            or m.awaiting is None
            or batch_id != m.awaiting[0]
            or (attempt is not None and attempt != m.awaiting[1])
            or (word == "recover" and not m.proposal)
        ):
            error = IllegalTransition
        writes = (
            ["OperatorDecided", "RunAborted"]
            if word == "abort"
            else ["OperatorDecided"]
        )
        self._do(
            lambda run: run.decide(batch_id, word, operator=operator, attempt=attempt),
            refused=error,
            writes=writes,
        )
        if error is None:
            assert m.awaiting is not None
            m.decision = DecisionModel(batch_id, m.awaiting[1], word)
            if word == "abort":
                m.decision.carried_out = True
                m.state = "aborted"
                m.awaiting = None

    @rule()
    def skip_batch(self) -> None:
        m = self.model
        d = m.decision
        error: type[RecoveryError] | None = None
        if m.ended or d is None or d.carried_out or d.decision != "skip":
            error = IllegalTransition
        skipped = self._do(
            lambda run: run.skip_batch(), refused=error, writes=["BatchSkipped"]
        )
        if error is None:
            assert d is not None
            assert skipped == d.batch_id
            m.batches[d.batch_id].status = "skipped"
            d.carried_out = True
            m.state = "running"
            m.awaiting = None

    @rule(pick=PICKS, delta=DELTAS)
    def verify_batch(self, pick: Any, delta: int) -> None:
        batch_id = self._batch(pick, self.model.running())
        attempt = self._attempt(batch_id, delta)
        error = self._running_attempt_error(batch_id, attempt)
        self._do(
            lambda run: run.verify_batch(batch_id, attempt),
            refused=error,
            writes=["BatchVerified"],
        )
        if error is None:
            self.model.batches[batch_id].status = "verified"

    @rule()
    def complete(self) -> None:
        m = self.model
        error: type[RecoveryError] | None = None
        if m.ended or m.next_batch() is not None:
            error = IllegalTransition
        self._do(lambda run: run.complete(), refused=error, writes=["RunCompleted"])
        if error is None:
            m.state = "completed"

    @rule(draw=st.integers(min_value=0, max_value=9))
    def abort(self, draw: int) -> None:
        if draw:
            # Abort only one time in ten, so that most runs live long enough to
            # fail, be decided and go on; after the end every command is refused.
            return
        m = self.model
        error = IllegalTransition if m.ended else None
        self._do(
            lambda run: run.abort(operator="alice", reason="stop"),
            refused=error,
            writes=["RunAborted"],
        )
        if error is None:
            self._carry_out()
            m.state = "aborted"
            m.awaiting = None

    @rule(runner=st.sampled_from(RUNNERS), take_over=st.booleans())
    def claim(self, runner: str, take_over: bool) -> None:
        m = self.model
        error: type[RecoveryError] | None = None
        writes = ["RunnerClaimed"]
        if m.ended:
            error = IllegalTransition
        elif m.claim == runner:
            writes = []
        elif m.claim is not None and not take_over:
            error = ConflictError
        self._do(
            lambda run: run.claim_runner(
                host="host",
                pid=RUNNERS.index(runner),
                runner_id=runner,
                take_over=take_over,
            ),
            refused=error,
            writes=writes,
        )
        if error is None:
            m.claim = runner

    @rule(runner=st.sampled_from(RUNNERS))
    def release(self, runner: str) -> None:
        m = self.model
        # Nothing happens after abort or completion: a release too is refused.
        error = IllegalTransition if m.ended else None
        writes = ["RunnerReleased"] if m.claim == runner else []
        self._do(lambda run: run.release_runner(runner), refused=error, writes=writes)
        if error is None and m.claim == runner:
            m.claim = None

    # Four rules make progress, so that one step in four or so does what a runner
    # or an operator would do next, and runs go far: fail, decide, retry, skip.

    @rule(outcome=OUTCOMES, word=WORDS)
    def progress(self, outcome: str, word: str) -> None:
        self._progress(outcome, word)

    @rule(outcome=OUTCOMES, word=WORDS)
    def keep_going(self, outcome: str, word: str) -> None:
        self._progress(outcome, word)

    @rule(outcome=OUTCOMES, word=WORDS)
    def carry_on(self, outcome: str, word: str) -> None:
        self._progress(outcome, word)

    @rule(outcome=OUTCOMES, word=WORDS)
    def press_on(self, outcome: str, word: str) -> None:
        self._progress(outcome, word)

    def _progress(self, outcome: str, word: str) -> None:
        """Starts the next batch; passes, verifies or fails the running one; lets
        the strategy answer a failure, or decides it; carries out the decision;
        or completes the run."""
        m = self.model
        running = m.running()
        if m.ended:
            self.complete()
        elif running is not None:
            if outcome == "pass":
                self.step_passed("right", 0)
            elif outcome == "verify":
                self.verify_batch("right", 0)
            else:
                self.step_failed("right", 0)
        elif m.state == "halted" and m.decision is None:
            if outcome == "pass":
                self.strategy_answers("right", 0, proposal=word != "later")
            else:
                self.decide("right", word, "none", "alice")
        elif m.state == "halted" and m.decision is not None:
            if m.decision.decision == "skip":
                self.skip_batch()
            else:
                # retry and recover both start the next attempt.
                self.start_batch("right")
        elif m.next_batch() is not None:
            self.start_batch("right")
        else:
            self.complete()

    # -- invariants -------------------------------------------------------------

    @invariant()
    def stored_run_equals_live_run(self) -> None:
        if self.run_id is None or self.live is None:
            return
        stored: Run = self.app.repository.get(self.run_id)
        assert stored is not self.live
        assert stored.view() == self.live.view()
        assert self.app.view(self.run_id) == self.live.view()

    @invariant()
    def chain_verifies_to_live_head(self) -> None:
        if self.run_id is None or self.live is None:
            return
        history = self.app.history(self.run_id)
        assert verify_chain(history) == self.live.view().head_digest
        assert history[-1].digest == self.live.view().head_digest
        assert len(history) == self.live.version

    @invariant()
    def matches_the_model(self) -> None:
        if self.run_id is None:
            return
        view = self.app.view(self.run_id)
        m = self.model
        assert view.state in STATES
        assert view.state == m.state
        assert [(b.batch_id, b.status, b.attempts) for b in view.batches] == [
            (b, m.batches[b].status, m.batches[b].attempts) for b in m.order
        ]
        assert all(b.verified == (b.status == "verified") for b in view.batches)
        assert view.awaiting == m.awaiting
        assert (view.claim.runner_id if view.claim else None) == m.claim
        if m.decision is None:
            assert view.decision is None
        else:
            assert view.decision is not None
            assert (
                view.decision.batch_id,
                view.decision.attempt,
                view.decision.decision,
                view.decision.carried_out,
            ) == (
                m.decision.batch_id,
                m.decision.attempt,
                m.decision.decision,
                m.decision.carried_out,
            )


RunMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Collected by pytest: the state machine as a unittest TestCase.
TestRunStateMachine = RunMachine.TestCase
TestRunStateMachine.__doc__ = (
    "Random command sequences keep the run's rules, its stored history and its "
    "hash chain consistent with a model of the run."
)
