"""Random runs of the Runner, against a model of what it must do.

A Hypothesis state machine drives a Runner, through its public API only, on a
``memory://`` store with in-memory fakes (``tests/fakes.py``): a plan of 1 to 4
batches, each with 0 to 2 actions and 1 or 2 ``command`` validation steps,
committed or not, some with a policy of 1 or 2 automatic retries (the model
retries while it lasts, unless the attempt failed the same way as the one
before: the same step and kind of failure). A fake step runner follows a
script the machine draws for each call: a step passes, fails, crashes
(raises an Exception), hangs (a timed-out failure) or kills the runner (raises
a BaseException that is neither an Exception nor a KeyboardInterrupt, leaving
the attempt under way). The rules
run the plan, decide on the failure (retry, skip, abort, and wrong decisions),
resume with a fresh runner (after a kill: the lost attempt is a failure), try
a fresh runner while the killed one is still thought alive (refused), and make
a batch without actions in the host's own ``with runner.batch(...)`` block.

After every rule:

1. the events and the state agree: the history replayed is the view, and its
   hash chain verifies to the view's head digest;
2. the plan status projection agrees with the view (unless an attempt is under
   way, its runner killed);
3. the failure log given to the projection is the app's, with one entry per
   ``StepFailed``, in order, each the state's failure record and the one the
   model expects; each failure was notified once;
4. the model (each batch's status and attempts, the run's state, the failure
   awaiting a decision, the decision recorded) matches the view;
5. only a verified attempt's change is ever committed.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final, Literal

import attrs
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from fakes import (
    FakeHost,
    KeepingProjection,
    MemoryWorkspace,
    RaisingProjection,
    RecordingNotifier,
)
from recovery_core import (
    Aborted,
    Completed,
    ConflictError,
    ExecutionPlan,
    Halted,
    IllegalTransition,
    NoopStrategy,
    RecoveryApp,
    RecoveryError,
    Runner,
    RunView,
    Step,
    StepContext,
    StepOutcome,
    UnknownBatch,
    Verified,
    parse_plan,
    verify_chain,
)
from recovery_core.ports import Projection, RunnerHost
from recovery_core.projections import plan_status_fields
from recovery_core.records import Failure, apply

BUILD: Final = "build"
VALIDATION: Final = "post_build_validation"
RUNTIME: Final = "runtime_execution"
PLAN_ID: Final = "machine"
UNKNOWN: Final = "zz-unknown"
OPERATOR: Final = "ada"
HOST_ERROR: Final = "the host's code broke"
CHOICES: Final = ("retry", "skip", "abort")

Result = Literal["pass", "fail", "crash", "hang", "kill"]
Body = Literal["ok", "raise"]

#: What the fake step runner does at each call, mostly pass.
RESULTS: Final[tuple[Result, ...]] = (
    *(("pass",) * 7),
    "fail",
    "crash",
    "hang",
    "kill",
)
#: A script: the results of the next calls; every call past its end passes.
SCRIPTS = st.lists(st.sampled_from(RESULTS), max_size=6)
BATCHES = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2),
        st.integers(min_value=1, max_value=2),
        st.sampled_from(["commit", "none"]),
        st.sampled_from([0, 1, 2]),
    ),
    min_size=1,
    max_size=4,
)
WORDS = st.sampled_from(["retry", "retry", "skip", "skip", "abort", "recover"])
#: The answers to a failure that awaits one.
ANSWERS = st.sampled_from(["retry", "retry", "retry", "skip", "skip", "abort"])
#: Which batch a decision names: mostly the right one.
PICKS = st.sampled_from(["right", "right", "right", "right", 0, 1, 2, 3, "unknown"])
#: Which attempt a decision names: mostly none (the one awaiting) or the right one.
ATTEMPTS = st.sampled_from([None, None, "right", "right", 1, -1])


class RunnerKilled(BaseException):
    """The runner's process died mid-attempt: neither an Exception (which a
    step runner's crash is) nor a KeyboardInterrupt (which the runner records
    as an interruption itself), so nothing in the runner handles it."""


def tag(batch_id: str, attempt: int) -> str:
    """The content an attempt writes to each file it makes."""
    return f"{batch_id} attempt {attempt}"


def action_file(batch_id: str, name: str) -> str:
    return f"{batch_id}/{name}.txt"


def host_file(batch_id: str) -> str:
    return f"{batch_id}/host.txt"


@attrs.frozen
class Call:
    """One call of the step runner."""

    batch_id: str
    attempt: int
    phase: str
    step: str


class ScriptedSteps:
    """The ``command`` step runner: each call takes the next result of
    ``script`` (pass when it is used up). An action first writes its file, so
    a failed attempt leaves a change behind."""

    def __init__(self, workspace: MemoryWorkspace) -> None:
        self.workspace = workspace
        self.script: list[Result] = []
        self.calls: list[Call] = []

    def __call__(self, step: Step, context: StepContext) -> StepOutcome:
        batch_id, attempt = context.batch.batch_id, context.attempt
        self.calls.append(Call(batch_id, attempt, context.phase, step.name))
        if context.phase == BUILD:
            self.workspace.files[action_file(batch_id, step.name)] = tag(
                batch_id, attempt
            )
        result = self.script.pop(0) if self.script else "pass"
        if result == "pass":
            return StepOutcome(passed=True, duration_s=0.001)
        if result == "fail":
            return StepOutcome(
                passed=False,
                duration_s=0.002,
                error=failed_error(step.name, attempt),
                exit_code=1,
            )
        if result == "hang":
            return StepOutcome(
                passed=False,
                duration_s=600.0,
                error="timed out",
                exit_code=None,
                timed_out=True,
            )
        if result == "crash":
            raise RuntimeError(crash_message(step.name, attempt))
        raise RunnerKilled(f"killed in {step.name}")


def failed_error(step: str, attempt: int) -> str:
    return f"AssertionError: {step} failed on attempt {attempt}"


def crash_message(step: str, attempt: int) -> str:
    return f"{step} crashed on attempt {attempt}"


# -- the model -----------------------------------------------------------------


@attrs.frozen
class ExpectedFailure:
    """A failure the model expects: its record's fields; ``error`` exactly, or
    ``error_has`` as part of it (a crash, an interruption)."""

    batch_id: str
    attempt: int
    step: str
    phase: str
    kind: str
    changed_files: tuple[str, ...]
    error: str | None = None
    error_has: str = ""
    exit_code: int | None = None
    timed_out: bool = False


@attrs.define
class BatchModel:
    batch_id: str
    actions: tuple[str, ...]
    validation: tuple[str, ...]
    commits: bool
    status: str = "pending"
    attempts: int = 0
    #: The files this batch's attempts wrote (all new since its origin).
    written: set[str] = attrs.Factory(set)
    #: The attempt whose change must be committed, once verified.
    committed: int | None = None
    #: The batch's policy's ``auto_retry``, and the retries it decided.
    auto_retry: int = 0
    policy_retries: int = 0


@attrs.define
class Model:
    """What the run must be: see the module's docstring."""

    batches: list[BatchModel]
    state: str = "running"
    awaiting: tuple[str, int] | None = None
    #: The decision recorded on the failure awaiting one, not yet carried out.
    pending: str | None = None
    #: The attempt under way when the runner was killed.
    killed: tuple[str, int] | None = None
    #: The decision that aborted the run: its batch and attempt.
    aborted_at: tuple[str, int] | None = None
    abort_reason: str | None = None
    failures: list[ExpectedFailure] = attrs.Factory(list)
    #: The failures the batch's policy decided (retry): nobody is notified.
    by_policy: set[tuple[str, int]] = attrs.Factory(set)

    @property
    def ended(self) -> bool:
        return self.state in ("completed", "aborted")

    def batch(self, batch_id: str) -> BatchModel:
        return next(b for b in self.batches if b.batch_id == batch_id)

    def next_batch(self) -> BatchModel | None:
        done = ("verified", "skipped")
        return next((b for b in self.batches if b.status not in done), None)

    def run(self, script: list[Result]) -> tuple[str, list[Call]]:
        """What ``Runner.run()`` does: the step calls it makes and how it ends
        (``completed``, ``aborted``, ``halted`` or ``killed``)."""
        calls: list[Call] = []
        if self.ended:
            return self.state, calls
        if self.killed is not None:
            self._lost()
            if self.pending != "retry":
                return "halted", calls
        while True:
            if self.awaiting is not None:
                batch = self.batch(self.awaiting[0])
                if self.pending is None:
                    return "halted", calls
                if self.pending == "retry" and not batch.actions:
                    return "halted", calls  # the host's block carries it out
                if self.pending == "skip":
                    self._skip()
                    continue
            upcoming = self.next_batch()
            if upcoming is None:
                self.state = "completed"
                return "completed", calls
            ended = self.attempt(upcoming, script, calls)
            if ended == "halted" and self.pending == "retry":
                continue  # the policy decided: carried out at once
            if ended != "verified":
                return ended, calls

    def host_batch(self) -> BatchModel | None:
        """The batch a host's block may make now: one without actions."""
        if self.ended or self.killed is not None:
            return None
        candidate: BatchModel | None
        if self.awaiting is None:
            candidate = self.next_batch()
        elif self.pending == "retry":
            candidate = self.batch(self.awaiting[0])
        elif self.pending == "skip":
            skipped = self.batch(self.awaiting[0])
            rest = self.batches[self.batches.index(skipped) + 1 :]
            done = ("verified", "skipped")
            candidate = next((b for b in rest if b.status not in done), None)
        else:
            candidate = None
        return candidate if candidate is not None and not candidate.actions else None

    def host_attempt(self, body: Body, script: list[Result]) -> tuple[str, list[Call]]:
        """What a host's ``with runner.batch(...)`` block does."""
        if self.pending == "skip":
            self._skip()
        batch = self.next_batch()
        assert batch is not None and not batch.actions
        calls: list[Call] = []
        return self.attempt(batch, script, calls, body=body), calls

    def attempt(
        self,
        batch: BatchModel,
        script: list[Result],
        calls: list[Call],
        *,
        body: Body | None = None,
    ) -> str:
        """One attempt at ``batch``: ``verified``, ``halted`` or ``killed``."""
        batch.attempts += 1
        attempt = batch.attempts
        batch.status = "running"
        self.state, self.awaiting, self.pending = "running", None, None
        bid = batch.batch_id
        if body is not None:
            batch.written.add(host_file(bid))
            if body == "raise":
                self._failed(
                    ExpectedFailure(
                        bid,
                        attempt,
                        "host_code",
                        RUNTIME,
                        "host_code",
                        tuple(sorted(batch.written)),
                        error_has=HOST_ERROR,
                    )
                )
                return "halted"
        steps = [(BUILD, a) for a in batch.actions]
        steps += [(VALIDATION, v) for v in batch.validation]
        for phase, name in steps:
            calls.append(Call(bid, attempt, phase, name))
            if phase == BUILD:
                batch.written.add(action_file(bid, name))
            result = script.pop(0) if script else "pass"
            if result == "pass":
                continue
            if result == "kill":
                self.killed = (bid, attempt)
                return "killed"
            changed = tuple(sorted(batch.written))
            failure = ExpectedFailure(bid, attempt, name, phase, "command", changed)
            if result == "fail":
                failure = attrs.evolve(
                    failure, error=failed_error(name, attempt), exit_code=1
                )
            elif result == "hang":
                failure = attrs.evolve(failure, error="timed out", timed_out=True)
            else:
                failure = attrs.evolve(failure, error_has=crash_message(name, attempt))
            self._failed(failure)
            return "halted"
        batch.status = "verified"
        if batch.commits and batch.written:
            batch.committed = attempt
        return "verified"

    def decide(
        self, word: str, batch_id: str, attempt: int | None, reason: str
    ) -> type[RecoveryError] | None:
        """Records the decision if it fits; else the error it must raise
        (RecoveryError: some subclass of it)."""
        if self.pending is not None and self.awaiting is not None:
            awaited_batch, awaited_attempt = self.awaiting
            if batch_id == awaited_batch and attempt in (None, awaited_attempt):
                return ConflictError  # a second decision on one failure
        if self.state == "aborted" or self.pending is not None:
            return RecoveryError
        if batch_id not in {b.batch_id for b in self.batches}:
            return UnknownBatch if not self.ended else RecoveryError
        if self.awaiting is None:
            return IllegalTransition if not self.ended else RecoveryError
        awaited_batch, awaited_attempt = self.awaiting
        if batch_id != awaited_batch or attempt not in (None, awaited_attempt):
            return IllegalTransition
        if word == "recover":
            return IllegalTransition  # noop proposes no fix
        if word == "abort":
            self.state = "aborted"
            self.aborted_at, self.awaiting = self.awaiting, None
            self.abort_reason = reason or f"operator aborted at batch {batch_id}"
        else:
            self.pending = word
        return None

    def _skip(self) -> None:
        assert self.awaiting is not None
        self.batch(self.awaiting[0]).status = "skipped"
        self.state, self.awaiting, self.pending = "running", None, None

    def _lost(self) -> None:
        assert self.killed is not None
        bid, attempt = self.killed
        self.killed = None
        changed = tuple(sorted(self.batch(bid).written))
        self._failed(
            ExpectedFailure(bid, attempt, "interrupted", RUNTIME, "interrupt", changed)
        )

    def _failed(self, failure: ExpectedFailure) -> None:
        batch = self.batch(failure.batch_id)
        batch.status = "failed"
        self.state = "halted"
        self.awaiting = (failure.batch_id, failure.attempt)
        self.pending = None
        before = next(
            (
                f
                for f in reversed(self.failures)
                if (f.batch_id, f.attempt) == (failure.batch_id, failure.attempt - 1)
            ),
            None,
        )
        self.failures.append(failure)
        # The policy: a retry while its budget lasts, never for an attempt
        # that failed the same way as the one before (the same fingerprint).
        same = before is not None and same_failure(before, failure)
        if batch.policy_retries < batch.auto_retry and not same:
            batch.policy_retries += 1
            self.pending = "retry"
            self.by_policy.add(self.awaiting)


def same_failure(a: ExpectedFailure, b: ExpectedFailure) -> bool:
    """Whether two failures of consecutive attempts have one fingerprint: the
    same step, and the same kind of failure (the errors differ only in the
    attempt's number, which normalising replaces)."""

    def shape(f: ExpectedFailure) -> tuple[object, ...]:
        return (f.step, f.phase, f.kind, f.exit_code, f.timed_out, f.error is None)

    return shape(a) == shape(b)


# -- the machine ---------------------------------------------------------------


def topic(e: Any) -> str:
    name: str = type(e).TOPIC
    return name.removeprefix("recovery:")


class RunnerMachine(RuleBasedStateMachine):
    """Drives a Runner at random; see the module's docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.app = RecoveryApp.open("memory://")
        self.workspace = MemoryWorkspace()
        self.steps = ScriptedSteps(self.workspace)
        self.kept = KeepingProjection()
        self.broken: RaisingProjection | None = None
        self.notifier = RecordingNotifier("inbox")
        self.dead: set[tuple[str, int]] = set()
        self.pid = 1000
        self.model = Model(batches=[])
        self.run_id = ""
        self.plan: ExecutionPlan | None = None
        self.runner: Runner | None = None
        #: Whether ``runner`` holds the run's claim (it was killed mid-attempt, or
        #: its host's block verified a batch and goes on driving the run).
        self.holding = False

    def teardown(self) -> None:
        self.app.close()

    # -- plumbing -------------------------------------------------------------

    def _runner(self) -> Runner:
        """A new runner, as a new process would make: a pid of its own."""
        assert self.plan is not None
        self.pid += 1
        projections: list[Projection] = [self.kept]
        if self.broken is not None:
            projections.insert(0, self.broken)
        return self.app.runner(
            self.plan,
            workspace=self.workspace,
            strategy=NoopStrategy(),
            notifiers=[self.notifier],
            projections=projections,
            host=FakeHost(self.pid, dead=self.dead),
            step_runners={"command": self.steps},
        )

    def _history(self) -> list[Any]:
        return list(self.app.history(self.run_id))

    def _view(self) -> RunView:
        return self.app.view(self.run_id)

    def _run(self, runner: Runner, script: list[Result]) -> None:
        """``runner.run()``, checked against what the model says it does."""
        before = self._history()
        was_ended = self.model.ended
        decided = len(self.model.by_policy)
        ended, calls = self.model.run(list(script))
        event(f"run: {ended}")
        if len(self.model.by_policy) > decided:
            event("run: the policy retried")
        self.steps.script, self.steps.calls = list(script), []
        outcome: Completed | Halted | Aborted | None = None
        with contextlib.suppress(RunnerKilled):
            outcome = runner.run()
        assert self.steps.calls == calls, "the runner ran other steps than expected"
        if ended == "killed":
            assert outcome is None, f"the kill did not end the runner: {outcome}"
            self.runner, self.holding = runner, True
            return
        assert outcome is not None, "the runner died but no step killed it"
        self.runner = runner
        view = self._view()
        assert outcome.run_id == self.run_id
        assert outcome.view == view
        if was_ended:
            assert self._history() == before, "something happened after the run ended"
        if ended == "completed":
            assert isinstance(outcome, Completed), outcome
        elif ended == "aborted":
            assert isinstance(outcome, Aborted), outcome
            assert outcome.reason == self.model.abort_reason
        else:
            assert isinstance(outcome, Halted), outcome
            assert self.model.awaiting is not None
            assert (outcome.open.batch_id, outcome.open.attempt) == (
                self.model.awaiting
            )
            assert outcome.failure == view.failure
            assert view.claim is None, "a halted runner did not release the run"
            self.holding = False
            batch = self.model.batch(self.model.awaiting[0])
            assert outcome.made_by_host == (not batch.actions)

    # -- set-up -----------------------------------------------------------------

    @initialize(
        batches=BATCHES,
        notifier_fails=st.booleans(),
        broken_projection=st.booleans(),
    )
    def make_plan(
        self,
        batches: list[tuple[int, int, str, int]],
        notifier_fails: bool,
        broken_projection: bool,
    ) -> None:
        raw = {
            "plan_id": PLAN_ID,
            "batches": [
                {
                    "batch_id": f"b{i}",
                    "actions": [
                        {"name": f"make{j}", "run": ["make"]} for j in range(actions)
                    ],
                    "validation": [
                        {"name": f"check{j}", "kind": "command", "run": ["check"]}
                        for j in range(checks)
                    ],
                    "commit_strategy": strategy,
                    **({"policy": {"auto_retry": retries}} if retries else {}),
                }
                for i, (actions, checks, strategy, retries) in enumerate(
                    batches, start=1
                )
            ],
        }
        self.plan = parse_plan(raw)
        self.model = Model(
            batches=[
                BatchModel(
                    batch_id=f"b{i}",
                    actions=tuple(f"make{j}" for j in range(actions)),
                    validation=tuple(f"check{j}" for j in range(checks)),
                    commits=strategy == "commit",
                    auto_retry=retries,
                )
                for i, (actions, checks, strategy, retries) in enumerate(
                    batches, start=1
                )
            ]
        )
        self.notifier.fail = notifier_fails
        self.broken = RaisingProjection() if broken_projection else None
        self.runner = self._runner()
        self.run_id = str(self.runner.open_run())

    # -- rules ------------------------------------------------------------------

    @precondition(lambda self: self.model.killed is None)
    @rule(script=SCRIPTS)
    def run(self, script: list[Result]) -> None:
        """The same runner runs the plan again."""
        assert self.runner is not None
        self._run(self.runner, script)

    @precondition(lambda self: not self.model.ended)
    @rule(script=SCRIPTS)
    def resume(self, script: list[Result]) -> None:
        """A fresh runner (a new process) resumes the run; the last one is gone,
        killed or not."""
        assert self.runner is not None
        self.dead.add((self.runner.host.host, self.runner.host.pid))
        if self.model.killed is not None:
            event("resume after a kill")
        self._run(self._runner(), script)

    @precondition(lambda self: self.holding and not self.model.ended)
    @rule()
    def a_fresh_runner_is_refused_while_a_live_one_holds_the_run(self) -> None:
        """A fresh runner is refused while the run's claim is a live runner's
        (one killed but not known to be gone, or a host's that goes on)."""
        before = self._history()
        self.steps.calls = []
        with pytest.raises(ConflictError):
            self._runner().run()
        assert self.steps.calls == []
        assert self._history() == before

    @rule(word=WORDS, pick=PICKS, attempt=ATTEMPTS, reason=st.sampled_from(["", "r"]))
    def decide(self, word: str, pick: Any, attempt: Any, reason: str) -> None:
        """An operator decides, maybe on the wrong batch or attempt."""
        m = self.model
        right = m.awaiting or m.aborted_at or (m.batches[0].batch_id, 1)
        if pick == "unknown":
            batch_id = UNKNOWN
        elif pick == "right":
            batch_id = right[0]
        else:
            batch_id = m.batches[int(pick) % len(m.batches)].batch_id
        number: int | None = right[1] if attempt == "right" else attempt
        self._decide(word, batch_id, number, reason)

    @precondition(
        lambda self: self.model.awaiting is not None and self.model.pending is None
    )
    @rule(word=ANSWERS, reason=st.sampled_from(["", "r"]))
    def answer(self, word: str, reason: str) -> None:
        """An operator answers the failure awaiting a decision, as asked."""
        assert self.model.awaiting is not None
        self._decide(word, self.model.awaiting[0], None, reason)

    def _decide(
        self, word: str, batch_id: str, number: int | None, reason: str
    ) -> None:
        """``app.decide``: recorded if the model says it fits, else refused
        with nothing recorded."""
        m = self.model
        before = self._history()
        refused = m.decide(word, batch_id, number, reason)
        event(f"decide {word}: " + (refused.__name__ if refused else "recorded"))
        if refused is not None:
            with pytest.raises(RecoveryError) as info:
                self.app.decide(
                    self.run_id,
                    batch_id,
                    word,
                    operator=OPERATOR,
                    reason=reason,
                    attempt=number,
                )
            assert isinstance(info.value, refused), repr(info.value)
            assert self._history() == before, "a refused decision recorded events"
            return
        view = self.app.decide(
            self.run_id,
            batch_id,
            word,
            operator=OPERATOR,
            reason=reason,
            attempt=number,
        )
        assert view == self._view()
        added = [topic(e) for e in self._history()[len(before) :]]
        expected = ["OperatorDecided"] + (["RunAborted"] if word == "abort" else [])
        assert added == expected

    @precondition(lambda self: self.model.host_batch() is not None)
    @rule(script=SCRIPTS, body=st.sampled_from(["ok", "ok", "raise"]))
    def host_block(self, script: list[Result], body: Body) -> None:
        """The host makes a batch without actions in its own block."""
        assert self.runner is not None
        made = self.model.host_batch()
        assert made is not None
        ended, calls = self.model.host_attempt(body, list(script))
        event(f"host block: {ended}")
        self.steps.script, self.steps.calls = list(script), []
        killed = False
        try:
            with self.runner.batch(made.batch_id) as session:
                assert session.attempt == made.attempts
                assert session.run_id == self.run_id
                self.workspace.files[host_file(made.batch_id)] = tag(
                    made.batch_id, session.attempt
                )
                if body == "raise":
                    raise ValueError(HOST_ERROR)
        except RunnerKilled:
            killed = True
        assert self.steps.calls == calls
        assert killed == (ended == "killed")
        self.holding = ended != "halted"
        if killed:
            return
        if ended == "verified":
            assert isinstance(session.outcome, Verified), session.outcome
            assert session.outcome.attempt == made.attempts
            assert session.outcome.view == self._view()
        else:
            assert isinstance(session.outcome, Halted), session.outcome
            assert session.outcome.made_by_host

    # -- invariants -------------------------------------------------------------

    @invariant()
    def events_and_state_agree(self) -> None:
        history = self._history()
        view = self._view()
        replayed: RunView | None = None
        for e in history:
            replayed = apply(replayed, e)
        assert replayed == view
        assert verify_chain(history) == view.head_digest
        assert verify_chain(self.app.stored_records(self.run_id)) == view.head_digest

    @invariant()
    def the_plan_status_projection_agrees(self) -> None:
        if self.model.killed is not None:
            return  # an attempt is under way: its runner died before projecting
        view = self._view()
        updates = self.kept.updates
        if not updates:
            assert {b.status for b in view.batches} == {"pending"}
            return
        assert plan_status_fields(updates[-1].view) == plan_status_fields(view)
        if self.broken is not None:
            assert self.broken.calls == len(updates), "a raising projection stopped"

    @invariant()
    def the_failure_log_agrees(self) -> None:
        view = self._view()
        history = self._history()
        log = self.app.failure_log(workspace=view.workspace)
        assert self.app.failure_log(run_id=self.run_id) == log
        if log:
            last = self.kept.last_failure_log
            assert last is not None, "the projection never got the failure log"
            # An operator's decision recorded through the app (no runner) shows
            # in the projected log once a runner carries it out (or runs again).
            taken = view.decision
            if taken is None or (taken.carried_out and view.state != "aborted"):
                assert last.failure_log == tuple(log)
            else:

                def undecided(entries: Any) -> list[Any]:
                    return [attrs.evolve(e, decision=None) for e in entries]

                assert undecided(last.failure_log) == undecided(log)
                shown = last.failure_log or ()
                for entry, full in zip(shown, log, strict=True):
                    assert entry.decision in (None, full.decision)
        # The state's failure record once each failure was marked, and the
        # baseline each attempt started from.
        marked: list[Failure] = []
        baselines: dict[tuple[str, int], str | None] = {}
        state: RunView | None = None
        for e in history:
            state = apply(state, e)
            if topic(e) == "BatchMarkedFailed":
                record = state.batch(e.batch_id).failure
                assert record is not None
                marked.append(record)
            if topic(e) == "BatchStarted":
                baselines[(e.batch_id, e.attempt)] = e.baseline
        failed = [e.record for e in history if topic(e) == "StepFailed"]
        assert len(failed) == len(log) == len(marked) == len(self.model.failures)
        for entry, record, kept, want in zip(
            log, failed, marked, self.model.failures, strict=True
        ):
            got = entry.failure
            assert entry.run_id == self.run_id
            assert entry.plan_id == PLAN_ID
            assert got == kept
            assert (got.batch_id, got.attempt, got.step_id, got.error) == (
                record.batch_id,
                record.attempt,
                record.step_id,
                record.error,
            )
            assert (got.batch_id, got.attempt, got.step, got.phase, got.kind) == (
                want.batch_id,
                want.attempt,
                want.step,
                want.phase,
                want.kind,
            )
            if want.error is not None:
                assert got.error == want.error
            assert want.error_has in got.error and got.error
            assert (got.exit_code, got.timed_out) == (want.exit_code, want.timed_out)
            assert got.changed_files == want.changed_files
            assert got.baseline == baselines[(got.batch_id, got.attempt)]
            first = got.error.strip().splitlines()[0].strip()
            assert got.failure_reason == f"{got.step_id} failed: {first}"
        # Each failure was notified once, and that was recorded; but those
        # the batch's policy decided, which nobody is asked about.
        asked = [
            e
            for e in log
            if (e.failure.batch_id, e.failure.attempt) not in self.model.by_policy
        ]
        assert [n.failure for n in self.notifier.got] == [e.failure for e in asked]
        for note in self.notifier.got:
            assert (note.open.batch_id, note.open.attempt) == (
                note.failure.batch_id,
                note.failure.attempt,
            )
            assert note.open.choices == CHOICES
            assert note.run_id == self.run_id
        notified = [
            (e.batch_id, e.attempt, e.channel, e.delivered)
            for e in history
            if topic(e) == "OperatorNotified"
        ]
        assert notified == [
            (e.failure.batch_id, e.failure.attempt, "inbox", not self.notifier.fail)
            for e in asked
        ]
        decided = [
            (e.batch_id, e.attempt) for e in history if topic(e) == "PolicyDecided"
        ]
        assert set(decided) == self.model.by_policy
        assert len(decided) == len(self.model.by_policy)

    @invariant()
    def the_model_matches_the_view(self) -> None:
        m, view = self.model, self._view()
        assert view.state == m.state
        assert [(b.batch_id, b.status, b.attempts) for b in view.batches] == [
            (b.batch_id, b.status, b.attempts) for b in m.batches
        ]
        for b in view.batches:
            assert b.verified == (b.status == "verified")
        assert view.awaiting == m.awaiting
        opened = view.open_decision
        if m.awaiting is None:
            assert opened is None
        else:
            assert opened is not None
            recorded = None if opened.recorded is None else opened.recorded.decision
            assert recorded == m.pending
            assert opened.choices == (() if m.pending else CHOICES)
        if m.killed is not None:
            running = view.running_batch
            assert running is not None
            assert (running.batch_id, running.attempts) == m.killed
        else:
            assert view.running_batch is None
        if self.holding and not m.ended:
            assert self.runner is not None
            assert view.claim is not None
            assert (view.claim.host, view.claim.pid) == (
                self.runner.host.host,
                self.runner.host.pid,
            )
        if m.state == "aborted":
            assert view.abort_reason == m.abort_reason

    @invariant()
    def only_verified_attempts_are_committed(self) -> None:
        history = self._history()
        index = {e.digest: i for i, e in enumerate(history)}
        failed = {(e.batch_id, e.attempt) for e in history if topic(e) == "StepFailed"}
        origins = {
            e.batch_id: e.baseline
            for e in history
            if topic(e) == "BatchStarted" and e.attempt == 1
        }
        committed = [
            (i, e) for i, e in enumerate(history) if topic(e) == "BatchCommitted"
        ]
        calls = self.workspace.commits
        assert len(calls) == len(committed)
        for call, (at, e) in zip(calls, committed, strict=True):
            batch_id = call.trailers["Recovery-Batch"]
            assert call.trailers["Recovery-Run"] == self.run_id
            assert (e.batch_id, e.commit) == (batch_id, call.commit)
            verified_at = index[call.trailers["Recovery-Chain"]]
            verified = history[verified_at]
            assert topic(verified) == "BatchVerified"
            assert (verified.batch_id, verified.attempt) == (batch_id, e.attempt)
            assert verified_at < at
            assert (batch_id, e.attempt) not in failed, "a failed attempt committed"
            assert call.baseline == origins[batch_id]
            assert call.files == tuple(sorted(self.model.batch(batch_id).written))
            assert set(call.contents.values()) == {tag(batch_id, e.attempt)}, (
                "the commit holds another attempt's change"
            )
        view = self._view()
        assert {e.batch_id: e.attempt for _, e in committed} == {
            b.batch_id: b.committed
            for b in self.model.batches
            if b.committed is not None and b.status == "verified"
        }
        for b in view.batches:
            want = next(
                (c.commit for c in calls if c.trailers["Recovery-Batch"] == b.batch_id),
                None,
            )
            assert b.commit == want


RunnerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Collected by pytest: the state machine as a unittest TestCase.
TestRunnerStateMachine = RunnerMachine.TestCase
TestRunnerStateMachine.__doc__ = (
    "Random runs, decisions, kills and resumptions keep the Runner's events, "
    "state, projections, failure log and commits consistent with a model."
)


def test_a_refused_host_block_leaves_the_run_to_other_runners() -> None:
    """A ``with runner.batch(...)`` that is refused (the run awaits a decision)
    releases the claim it took: another runner may drive the run at once."""
    plan = parse_plan(
        {
            "plan_id": "refused",
            "batches": [
                {
                    "batch_id": "b1",
                    "validation": [{"name": "c", "kind": "command", "run": ["x"]}],
                }
            ],
        }
    )

    def failing(step: Step, context: StepContext) -> StepOutcome:
        return StepOutcome(passed=False, duration_s=0.0, error="boom", exit_code=1)

    app = RecoveryApp.open("memory://")
    workspace, dead = MemoryWorkspace(), set[tuple[str, int]]()

    def runner(pid: int) -> Any:
        return app.runner(
            plan,
            workspace=workspace,
            strategy=NoopStrategy(),
            projections=[],
            host=FakeHost(pid, dead=dead),
            step_runners={"command": failing},
        )

    first = runner(1)
    halted = first.run()
    assert isinstance(halted, Halted)
    with (
        pytest.raises(IllegalTransition, match="awaits a decision"),
        first.batch("b1"),
    ):
        pass
    assert app.view(halted.run_id).claim is None
    assert isinstance(runner(2).run(), Halted)  # not ConflictError


def test_the_local_host_is_a_runner_host_that_knows_a_gone_process() -> None:
    """``LocalHost`` (the default) and the fake are ``RunnerHost``s; the local
    one says this process lives, a finished child is gone, and a runner on
    another host may live (it cannot be told from here)."""
    import subprocess
    import sys

    from recovery_adapters.host import LocalHost

    local: RunnerHost = LocalHost()
    assert isinstance(local, RunnerHost)
    assert isinstance(FakeHost(1), RunnerHost)
    assert local.alive(local.host, local.pid)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not local.alive(local.host, int(child.stdout))
    assert local.alive(f"not-{local.host}", int(child.stdout))
