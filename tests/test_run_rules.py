"""The rules of the Run aggregate, one test per rule, through RecoveryApp.

Every test runs on a real SQLite file and on ``memory://``. Every refused command
is checked to have written nothing: the stored version and state are unchanged,
no event was added to the stored history, and the aggregate the command ran on
holds no pending event.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from recovery_core import (
    ConflictError,
    ExecutionPlan,
    IllegalTransition,
    IntegrityError,
    RecoveryApp,
    RecoveryError,
    UnknownBatch,
    parse_plan,
)
from recovery_core.records import Failure, RunView, apply
from recovery_core.run import Run

BATCHES = ("b1", "b2", "b3")


def make_plan(batch_ids: tuple[str, ...] = BATCHES) -> ExecutionPlan:
    """A plan whose batches each have one syntax step."""
    return parse_plan(
        {
            "plan_id": "rules",
            "batches": [
                {"batch_id": b, "validation": [{"name": "syntax", "kind": "syntax"}]}
                for b in batch_ids
            ],
        }
    )


@pytest.fixture(params=["sqlite", "memory"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecoveryApp]:
    """A RecoveryApp on a real SQLite file, or in memory."""
    url = (
        f"sqlite:///{tmp_path}/events.sqlite3"
        if request.param == "sqlite"
        else "memory://"
    )
    application = RecoveryApp.open(url)
    yield application
    application.close()


@pytest.fixture
def run_id(app: RecoveryApp, tmp_path: Path) -> UUID:
    """A new run of the three-batch plan."""
    return app.start_run(make_plan(), workspace=tmp_path)


# -- helpers ------------------------------------------------------------------


def topics(app: RecoveryApp, run_id: UUID) -> list[str]:
    """The topics of the run's stored events, in order."""
    return [type(e).TOPIC for e in app.history(run_id)]


def refused(
    app: RecoveryApp,
    run_id: UUID,
    command: Callable[[Run], object],
    expected: type[RecoveryError],
) -> RecoveryError:
    """Runs ``command`` through ``app.update`` and checks that it raised exactly
    ``expected`` and wrote nothing; returns the error."""
    before = app.view(run_id)
    stored_before = topics(app, run_id)
    seen: list[Run] = []

    def wrapped(run: Run) -> object:
        seen.append(run)
        return command(run)

    with pytest.raises(RecoveryError) as info:
        app.update(run_id, wrapped)
        written = topics(app, run_id)[len(stored_before) :]
        pytest.fail(f"expected {expected.__name__}; the command wrote {written}")
    assert type(info.value) is expected, f"{type(info.value).__name__}: {info.value}"
    assert len(seen) == 1
    assert seen[0].pending_events == []
    assert seen[0].version == before.version
    after = app.view(run_id)
    assert after.version == before.version
    assert after == before
    assert topics(app, run_id) == stored_before
    return info.value


def starting(batch_id: str) -> Callable[[Run], int]:
    """A command that starts the next attempt of ``batch_id``."""
    return lambda run: run.start_batch(batch_id, None)


def start(app: RecoveryApp, run_id: UUID, batch_id: str) -> int:
    """Starts the next attempt of ``batch_id``; returns the attempt number."""
    return app.update(run_id, lambda run: run.start_batch(batch_id, f"base-{batch_id}"))


def verify(app: RecoveryApp, run_id: UUID, batch_id: str) -> None:
    """Starts ``batch_id`` and verifies the attempt after one passing step."""
    attempt = start(app, run_id, batch_id)

    def command(run: Run) -> None:
        run.step_passed(batch_id, attempt, step="syntax", phase="p", duration_s=0.1)
        run.verify_batch(batch_id, attempt)

    app.update(run_id, command)


def fail(app: RecoveryApp, run_id: UUID, batch_id: str) -> int:
    """Starts ``batch_id`` and fails the attempt; the run halts. Returns the
    attempt number."""
    attempt = start(app, run_id, batch_id)

    def command(run: Run) -> None:
        run.step_failed(
            Failure(
                batch_id,
                attempt,
                step="syntax",
                phase="post_build_validation",
                kind="syntax",
                component="app/x.py",
                error="SyntaxError: invalid syntax",
            )
        )
        run.mark_failed(batch_id, attempt, "post_build_validation.syntax failed")

    app.update(run_id, command)
    return attempt


def decide(
    batch_id: str,
    decision: str,
    *,
    operator: str = "alice",
    attempt: int | None = None,
) -> Callable[[Run], None]:
    """A command that records a decision (for ``app.update`` or :func:`refused`)."""

    def command(run: Run) -> None:
        run.decide(batch_id, decision, operator=operator, attempt=attempt)

    return command


def strategy_answers(
    app: RecoveryApp, run_id: UUID, batch_id: str, attempt: int, outcome: dict[str, Any]
) -> None:
    """Records a RecoveryAttempted with ``outcome`` for the awaiting failure."""
    app.update(
        run_id,
        lambda run: run.recovery_attempted(
            batch_id, attempt, strategy="test-strategy", outcome=outcome
        ),
    )


# -- a batch starts only when the previous one is verified or skipped ----------


def test_batch_starts_only_after_previous_is_verified(
    app: RecoveryApp, run_id: UUID
) -> None:
    """A later batch cannot start before the earlier ones are verified, nor while
    one is running; a verified batch cannot start again; once the previous batch
    is verified, the next starts as attempt 1."""
    refused(app, run_id, lambda run: run.start_batch("b2", None), IllegalTransition)
    refused(app, run_id, lambda run: run.start_batch("b3", None), IllegalTransition)
    assert start(app, run_id, "b1") == 1
    # b1 is running: neither b1 again nor b2 may start.
    refused(app, run_id, lambda run: run.start_batch("b1", None), IllegalTransition)
    refused(app, run_id, lambda run: run.start_batch("b2", None), IllegalTransition)
    app.update(run_id, lambda run: run.verify_batch("b1", 1))
    error = refused(
        app, run_id, lambda run: run.start_batch("b1", None), IllegalTransition
    )
    assert "verified" in str(error)
    refused(app, run_id, lambda run: run.start_batch("b3", None), IllegalTransition)
    assert start(app, run_id, "b2") == 1
    view = app.view(run_id)
    assert [b.status for b in view.batches] == ["verified", "running", "pending"]


def test_a_verified_batch_left_uncommitted_says_why(
    app: RecoveryApp, run_id: UUID
) -> None:
    """BatchLeftUncommitted is accepted only for the verified attempt; the
    batch stays verified, with no commit and the reason in its view."""
    attempt = start(app, run_id, "b1")
    refused(
        app,
        run_id,
        lambda run: run.batch_left_uncommitted("b1", attempt, "too early"),
        IllegalTransition,
    )
    app.update(
        run_id,
        lambda run: run.step_passed("b1", attempt, step="s", phase="p", duration_s=0),
    )
    app.update(run_id, lambda run: run.verify_batch("b1", attempt))
    refused(
        app,
        run_id,
        lambda run: run.batch_left_uncommitted("b1", attempt + 1, "wrong attempt"),
        IllegalTransition,
    )
    app.update(run_id, lambda run: run.batch_left_uncommitted("b1", attempt, "overlap"))
    batch = app.view(run_id).batch("b1")
    assert (batch.status, batch.verified, batch.commit) == ("verified", True, None)
    assert batch.uncommitted_reason == "overlap"
    assert topics(app, run_id)[-1] == "recovery:BatchLeftUncommitted"


def test_batch_starts_after_previous_is_skipped(app: RecoveryApp, run_id: UUID) -> None:
    """A skipped batch counts as done: the next batch starts after it, and the
    skipped batch itself cannot start again."""
    fail(app, run_id, "b1")
    app.update(run_id, decide("b1", "skip"))
    refused(app, run_id, lambda run: run.start_batch("b2", None), IllegalTransition)
    assert app.update(run_id, lambda run: run.skip_batch()) == "b1"
    refused(app, run_id, lambda run: run.start_batch("b1", None), IllegalTransition)
    refused(app, run_id, lambda run: run.start_batch("b3", None), IllegalTransition)
    assert start(app, run_id, "b2") == 1
    view = app.view(run_id)
    assert [b.status for b in view.batches] == ["skipped", "running", "pending"]


# -- nothing starts while a failure awaits a decision ---------------------------


def test_nothing_starts_while_a_failure_awaits_a_decision(
    app: RecoveryApp, run_id: UUID
) -> None:
    """After a failure the run is halted: neither the failed batch nor any other
    starts, even after the strategy answered and the operator was notified."""
    verify(app, run_id, "b1")
    attempt = fail(app, run_id, "b2")
    view = app.view(run_id)
    assert view.state == "halted"
    assert view.awaiting == ("b2", attempt)
    for batch_id in BATCHES:
        refused(app, run_id, starting(batch_id), IllegalTransition)
    strategy_answers(app, run_id, "b2", attempt, {"analysis": "a", "proposal": True})
    app.update(
        run_id,
        lambda run: run.operator_notified(
            "b2", attempt, channel="console", delivered=True
        ),
    )
    error = refused(
        app, run_id, lambda run: run.start_batch("b2", None), IllegalTransition
    )
    assert error.exit_code == 2
    assert "awaits an operator decision" in str(error)
    refused(app, run_id, lambda run: run.skip_batch(), IllegalTransition)


# -- retry ------------------------------------------------------------------------


def test_retry_decision_lets_the_failed_batch_start_again_as_attempt_2(
    app: RecoveryApp, run_id: UUID
) -> None:
    """A retry decision is recorded as not yet carried out; starting the failed
    batch then makes attempt 2, clears the failure, resumes the run and marks the
    decision carried out; the origin stays the first attempt's baseline."""
    fail(app, run_id, "b1")
    view = app.decide(run_id, "b1", "retry", operator="alice")
    assert view.state == "halted"
    assert view.decision is not None
    assert (view.decision.batch_id, view.decision.attempt) == ("b1", 1)
    assert view.decision.decision == "retry"
    assert not view.decision.carried_out
    # Only the failed batch may start, not the next one.
    refused(app, run_id, lambda run: run.start_batch("b2", None), IllegalTransition)
    assert app.update(run_id, lambda run: run.start_batch("b1", "second")) == 2
    view = app.view(run_id)
    batch = view.batch("b1")
    assert (batch.status, batch.attempts) == ("running", 2)
    assert batch.failure is None
    assert batch.failure_reason is None
    assert batch.baseline == "second"
    assert batch.origin == "base-b1"
    assert view.state == "running"
    assert view.awaiting is None
    assert view.decision is not None
    assert view.decision.carried_out
    # Attempt 1 is over: only attempt 2 can record steps.
    refused(
        app,
        run_id,
        lambda run: run.step_passed("b1", 1, step="s", phase="p", duration_s=0.0),
        IllegalTransition,
    )
    app.update(run_id, lambda run: run.verify_batch("b1", 2))
    assert app.view(run_id).batch("b1").status == "verified"


# -- skip -------------------------------------------------------------------------


def test_skip_batch_carries_out_a_skip_decision(app: RecoveryApp, run_id: UUID) -> None:
    """skip_batch after a skip decision records BatchSkipped for the decided batch,
    resumes the run and marks the decision carried out; it cannot be carried out
    twice, and the failed batch cannot be retried instead."""
    fail(app, run_id, "b1")
    app.update(run_id, decide("b1", "skip", operator="bob"))
    error = refused(
        app, run_id, lambda run: run.start_batch("b1", None), IllegalTransition
    )
    assert "skip" in str(error)
    assert app.update(run_id, lambda run: run.skip_batch()) == "b1"
    view = app.view(run_id)
    assert view.batch("b1").status == "skipped"
    assert not view.batch("b1").verified
    assert view.state == "running"
    assert view.awaiting is None
    assert view.decision is not None
    assert view.decision.carried_out
    last = app.history(run_id)[-1]
    assert isinstance(last, Run.BatchSkipped)
    assert (last.batch_id, last.operator) == ("b1", "bob")
    refused(app, run_id, lambda run: run.skip_batch(), IllegalTransition)


@pytest.mark.parametrize("situation", ["running", "no-decision", "retry-decision"])
def test_skip_batch_is_refused_without_a_pending_skip_decision(
    app: RecoveryApp, run_id: UUID, situation: str
) -> None:
    """skip_batch needs a recorded skip decision not yet carried out: with no
    failure, with a failure not yet decided, or with a retry decision, it is
    refused."""
    if situation == "running":
        start(app, run_id, "b1")
    else:
        fail(app, run_id, "b1")
    if situation == "retry-decision":
        app.update(run_id, decide("b1", "retry"))
    error = refused(app, run_id, lambda run: run.skip_batch(), IllegalTransition)
    assert error.exit_code == 2


# -- a decision answers the failure that awaits one, once -----------------------


def test_decision_without_a_failure_is_refused(app: RecoveryApp, run_id: UUID) -> None:
    """No failure awaits a decision on a fresh run, a running batch or a verified
    one: every decision is an IllegalTransition (exit 2)."""
    for decision in ("retry", "skip", "abort", "recover"):
        error = refused(app, run_id, decide("b1", decision), IllegalTransition)
        assert error.exit_code == 2
    start(app, run_id, "b1")
    refused(app, run_id, decide("b1", "retry"), IllegalTransition)
    app.update(run_id, lambda run: run.verify_batch("b1", 1))
    refused(app, run_id, decide("b1", "skip", attempt=1), IllegalTransition)


def test_decision_for_the_wrong_batch_is_refused(
    app: RecoveryApp, run_id: UUID
) -> None:
    """When b2 awaits a decision, a decision on b1 (verified) or b3 (pending) is
    an IllegalTransition (exit 2) naming the batch that does await one."""
    verify(app, run_id, "b1")
    fail(app, run_id, "b2")
    for other in ("b1", "b3"):
        error = refused(app, run_id, decide(other, "retry"), IllegalTransition)
        assert error.exit_code == 2
        assert "b2" in str(error)
    assert app.view(run_id).decision is None


def test_decision_for_the_wrong_attempt_is_refused(
    app: RecoveryApp, run_id: UUID
) -> None:
    """A decision naming an attempt other than the failed one awaiting a decision
    is refused (exit 2), including a stale decision on attempt 1 once attempt 2
    has failed; the right attempt is then accepted."""
    fail(app, run_id, "b1")
    for attempt in (0, 2):
        error = refused(
            app, run_id, decide("b1", "retry", attempt=attempt), IllegalTransition
        )
        assert error.exit_code == 2
    app.update(run_id, decide("b1", "retry", attempt=1))
    assert app.update(run_id, lambda run: run.start_batch("b1", None)) == 2

    def fail_again(run: Run) -> None:
        run.step_failed(
            Failure(
                "b1",
                2,
                step="syntax",
                phase="p",
                kind="syntax",
                component="",
                error="e",
            )
        )
        run.mark_failed("b1", 2, "again")

    app.update(run_id, fail_again)
    error = refused(app, run_id, decide("b1", "skip", attempt=1), IllegalTransition)
    assert error.exit_code == 2
    app.update(run_id, decide("b1", "skip", attempt=2))
    view = app.view(run_id)
    assert view.decision is not None
    assert (view.decision.attempt, view.decision.decision) == (2, "skip")


def test_unknown_decision_word_is_refused(app: RecoveryApp, run_id: UUID) -> None:
    """Only retry, skip, recover and abort are decisions."""
    fail(app, run_id, "b1")
    error = refused(app, run_id, decide("b1", "later"), IllegalTransition)
    assert "later" in str(error)


@pytest.mark.parametrize("first", ["retry", "skip", "abort", "recover"])
@pytest.mark.parametrize("second", ["retry", "skip", "abort"])
def test_second_decision_on_the_same_failure_is_a_conflict(
    app: RecoveryApp, run_id: UUID, first: str, second: str
) -> None:
    """Once a failure is decided, any further decision on it (with or without the
    attempt) is a ConflictError (exit 5) and the first decision stands, even when
    the first decision was abort and the run is over."""
    attempt = fail(app, run_id, "b1")
    strategy_answers(app, run_id, "b1", attempt, {"analysis": "fix", "proposal": True})
    app.update(run_id, decide("b1", first, operator="alice"))
    for explicit in (None, attempt):
        error = refused(
            app,
            run_id,
            decide("b1", second, operator="bob", attempt=explicit),
            ConflictError,
        )
        assert error.exit_code == 5
        assert "alice" in str(error)
    decided = [e for e in app.history(run_id) if isinstance(e, Run.OperatorDecided)]
    assert [(e.decision, e.operator) for e in decided] == [(first, "alice")]
    assert app.view(run_id).state == ("aborted" if first == "abort" else "halted")


# -- recover ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [None, {"analysis": "nothing to propose"}, {"analysis": "no", "proposal": False}],
    ids=["no-answer", "no-proposal-key", "proposal-false"],
)
def test_recover_is_refused_when_the_strategy_proposed_nothing(
    app: RecoveryApp, run_id: UUID, outcome: dict[str, Any] | None
) -> None:
    """A recover decision needs a proposal: with no RecoveryAttempted, or one whose
    outcome proposes nothing, it is an IllegalTransition (exit 2); the other
    decisions stay available."""
    attempt = fail(app, run_id, "b1")
    if outcome is not None:
        strategy_answers(app, run_id, "b1", attempt, outcome)
    error = refused(app, run_id, decide("b1", "recover"), IllegalTransition)
    assert error.exit_code == 2
    assert "proposed no fix" in str(error)
    app.update(run_id, decide("b1", "retry"))
    assert app.view(run_id).decision is not None


def test_recover_is_accepted_when_the_strategy_proposed_a_fix(
    app: RecoveryApp, run_id: UUID
) -> None:
    """With outcome {"proposal": True}, recover is recorded as the decision on the
    failure awaiting one."""
    attempt = fail(app, run_id, "b1")
    strategy_answers(app, run_id, "b1", attempt, {"proposal": True})
    assert app.view(run_id).proposal
    app.update(run_id, decide("b1", "recover", operator="carol"))
    view = app.view(run_id)
    assert view.decision is not None
    assert (view.decision.batch_id, view.decision.attempt) == ("b1", attempt)
    assert (view.decision.decision, view.decision.operator) == ("recover", "carol")
    assert topics(app, run_id)[-1] == "recovery:OperatorDecided"


def test_a_proposal_answers_only_its_own_failure(
    app: RecoveryApp, run_id: UUID
) -> None:
    """A proposal made for attempt 1 does not allow recover on attempt 2's failure:
    a new attempt clears it."""
    fail(app, run_id, "b1")
    strategy_answers(app, run_id, "b1", 1, {"proposal": True})
    app.update(run_id, decide("b1", "retry"))
    app.update(run_id, lambda run: run.start_batch("b1", None))
    assert not app.view(run_id).proposal

    def fail_again(run: Run) -> None:
        run.step_failed(
            Failure("b1", 2, step="s", phase="p", kind="k", component="", error="e")
        )
        run.mark_failed("b1", 2, "again")

    app.update(run_id, fail_again)
    refused(app, run_id, decide("b1", "recover"), IllegalTransition)


# -- abort, and nothing after the end -------------------------------------------


def _end_run(app: RecoveryApp, run_id: UUID, how: str) -> None:
    """Ends the run ``how``; the runner r1 holds a claim throughout."""
    app.update(run_id, lambda run: run.claim_runner(host="h", pid=1, runner_id="r1"))
    if how == "aborted-while-running":
        start(app, run_id, "b1")
        app.update(run_id, lambda run: run.abort(operator="alice", reason="enough"))
    elif how == "aborted-by-decision":
        fail(app, run_id, "b1")
        app.update(run_id, decide("b1", "abort"))
    else:
        for batch_id in BATCHES:
            verify(app, run_id, batch_id)
        app.update(run_id, lambda run: run.complete())


def _every_command() -> dict[str, Callable[[Run], object]]:
    return {
        "start_batch b1": lambda run: run.start_batch("b1", None),
        "start_batch b2": lambda run: run.start_batch("b2", None),
        "step_passed": lambda run: run.step_passed(
            "b1", 1, step="s", phase="p", duration_s=0.0
        ),
        "step_failed": lambda run: run.step_failed(
            Failure("b1", 1, step="s", phase="p", kind="k", component="", error="e")
        ),
        "mark_failed": lambda run: run.mark_failed("b1", 1, "late"),
        "changes_quarantined": lambda run: run.changes_quarantined(
            "b1", 1, quarantine_ref="refs/x", files=["a"], tree_id="t"
        ),
        "recovery_attempted": lambda run: run.recovery_attempted(
            "b1", 1, strategy="s", outcome={"proposal": True}
        ),
        "operator_notified": lambda run: run.operator_notified(
            "b1", 1, channel="console", delivered=True
        ),
        "decide other batch": lambda run: run.decide("b2", "retry", operator="x"),
        "skip_batch": lambda run: run.skip_batch(),
        "verify_batch": lambda run: run.verify_batch("b1", 1),
        "batch_committed": lambda run: run.batch_committed("b1", 1, "abc"),
        "batch_left_uncommitted": lambda run: run.batch_left_uncommitted(
            "b1", 1, "overlap"
        ),
        "complete": lambda run: run.complete(),
        "abort": lambda run: run.abort(operator="x", reason="again"),
        "claim_runner same": lambda run: run.claim_runner(
            host="h", pid=1, runner_id="r1"
        ),
        "claim_runner take over": lambda run: run.claim_runner(
            host="h", pid=2, runner_id="r2", take_over=True
        ),
        "release_runner holder": lambda run: run.release_runner("r1"),
    }


@pytest.mark.parametrize(
    "how", ["aborted-while-running", "aborted-by-decision", "completed"]
)
@pytest.mark.parametrize("command", sorted(_every_command()))
def test_nothing_happens_after_abort_or_completion(
    app: RecoveryApp, run_id: UUID, how: str, command: str
) -> None:
    """Once a run is aborted or completed, every command raises IllegalTransition
    (exit 2) and writes nothing, whoever holds the run."""
    _end_run(app, run_id, how)
    view = app.view(run_id)
    assert view.state == ("completed" if how == "completed" else "aborted")
    error = refused(app, run_id, _every_command()[command], IllegalTransition)
    assert error.exit_code == 2


def test_abort_ends_the_run(app: RecoveryApp, run_id: UUID) -> None:
    """abort() records RunAborted with who and why; the run is aborted with that
    reason and no failure awaits a decision any more."""
    fail(app, run_id, "b1")
    app.update(run_id, lambda run: run.abort(operator="alice", reason="give up"))
    view = app.view(run_id)
    assert view.state == "aborted"
    assert view.abort_reason == "give up"
    assert view.awaiting is None
    last = app.history(run_id)[-1]
    assert isinstance(last, Run.RunAborted)
    assert (last.operator, last.reason) == ("alice", "give up")


def test_abort_decision_ends_the_run_at_once(app: RecoveryApp, run_id: UUID) -> None:
    """An abort decision records OperatorDecided then RunAborted in one save."""
    fail(app, run_id, "b1")
    before = app.view(run_id).version
    app.update(run_id, decide("b1", "abort", operator="dave"))
    view = app.view(run_id)
    assert view.version == before + 2
    assert topics(app, run_id)[-2:] == [
        "recovery:OperatorDecided",
        "recovery:RunAborted",
    ]
    assert view.state == "aborted"
    assert view.decision is not None
    assert view.decision.decision == "abort"


# -- complete ---------------------------------------------------------------------


def test_complete_is_refused_while_a_batch_is_not_verified_or_skipped(
    app: RecoveryApp, run_id: UUID
) -> None:
    """complete() is refused while any batch is pending, running or failed, and
    accepted once each is verified or skipped, with a summary of the outcome."""
    error = refused(app, run_id, lambda run: run.complete(), IllegalTransition)
    assert "b1" in str(error)
    verify(app, run_id, "b1")
    refused(app, run_id, lambda run: run.complete(), IllegalTransition)
    start(app, run_id, "b2")
    refused(app, run_id, lambda run: run.complete(), IllegalTransition)

    def fail_b2(run: Run) -> None:
        run.step_failed(
            Failure("b2", 1, step="s", phase="p", kind="k", component="", error="e")
        )
        run.mark_failed("b2", 1, "broken")

    app.update(run_id, fail_b2)
    error = refused(app, run_id, lambda run: run.complete(), IllegalTransition)
    assert "failed" in str(error)
    app.update(run_id, decide("b2", "skip"))
    refused(app, run_id, lambda run: run.complete(), IllegalTransition)
    app.update(run_id, lambda run: run.skip_batch())
    refused(app, run_id, lambda run: run.complete(), IllegalTransition)
    verify(app, run_id, "b3")
    app.update(run_id, lambda run: run.complete())
    assert app.view(run_id).state == "completed"
    last = app.history(run_id)[-1]
    assert isinstance(last, Run.RunCompleted)
    assert last.summary == {"batches": 3, "verified": 2, "skipped": 1, "attempts": 3}


# -- runners ----------------------------------------------------------------------


def test_second_runner_is_refused_unless_it_takes_over(
    app: RecoveryApp, run_id: UUID
) -> None:
    """While r1 holds the run, r2's claim is a ConflictError (exit 5); r1 claiming
    again writes nothing; r2 with take_over replaces r1; only the holder's release
    frees the run, after which anyone may claim it."""
    app.update(run_id, lambda run: run.claim_runner(host="h1", pid=10, runner_id="r1"))
    error = refused(
        app,
        run_id,
        lambda run: run.claim_runner(host="h2", pid=20, runner_id="r2"),
        ConflictError,
    )
    assert error.exit_code == 5
    assert "r1" in str(error)
    version = app.view(run_id).version
    app.update(run_id, lambda run: run.claim_runner(host="h1", pid=10, runner_id="r1"))
    assert app.view(run_id).version == version
    app.update(
        run_id,
        lambda run: run.claim_runner(host="h2", pid=20, runner_id="r2", take_over=True),
    )
    claim = app.view(run_id).claim
    assert claim is not None
    assert (claim.host, claim.pid, claim.runner_id) == ("h2", 20, "r2")
    refused(
        app,
        run_id,
        lambda run: run.claim_runner(host="h1", pid=10, runner_id="r1"),
        ConflictError,
    )
    version = app.view(run_id).version
    app.update(run_id, lambda run: run.release_runner("r1"))
    assert app.view(run_id).version == version
    assert app.view(run_id).claim == claim
    app.update(run_id, lambda run: run.release_runner("r2"))
    assert app.view(run_id).claim is None
    app.update(run_id, lambda run: run.claim_runner(host="h1", pid=11, runner_id="r1"))
    claim = app.view(run_id).claim
    assert claim is not None
    assert claim.runner_id == "r1"


# -- unknown batches ------------------------------------------------------------


def test_unknown_batch_is_refused(app: RecoveryApp, run_id: UUID) -> None:
    """A batch id the plan does not have is an UnknownBatch (exit 2) naming it
    and the plan's batches, whatever the command."""
    commands: list[Callable[[Run], object]] = [
        lambda run: run.start_batch("nope", None),
        lambda run: run.step_passed("nope", 1, step="s", phase="p", duration_s=0.0),
        lambda run: run.verify_batch("nope", 1),
        lambda run: run.decide("nope", "retry", operator="x"),
        lambda run: run.batch_committed("nope", 1, "abc"),
    ]
    for command in commands:
        error = refused(app, run_id, command, UnknownBatch)
        assert error.exit_code == 2
        assert "nope" in str(error)
        assert "b1, b2, b3" in str(error)
    fail(app, run_id, "b1")
    refused(app, run_id, commands[3], UnknownBatch)


# -- two operators at once ------------------------------------------------------


@pytest.mark.parametrize("retries", [0, 3])
def test_two_apps_deciding_at_once_record_exactly_one_decision(
    tmp_path: Path, retries: int
) -> None:
    """Two RecoveryApp instances on one SQLite file both load the halted run and
    both decide; the save that comes second fails on the run's version. Without
    retries that is a ConflictError (exit 5) at once; with them the loser's
    command runs again on the run as the winner left it, and the rule refuses
    it (a ConflictError, "already decided"). Exactly one decision is stored,
    the winner's."""
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    first = RecoveryApp.open(url)
    run_id = first.start_run(make_plan(), workspace=tmp_path)
    fail(first, run_id, "b1")
    second = RecoveryApp.open(url)
    assert second.view(run_id).state == "halted"
    version = first.view(run_id).version

    both_loaded = threading.Barrier(2, timeout=30)
    results: dict[str, object] = {}

    def operator(app: RecoveryApp, name: str, decision: str) -> None:
        first_try = iter([True])

        def command(run: Run) -> None:
            if next(first_try, False):  # both read the same run
                assert run.version == version
                assert run.view().awaiting == ("b1", 1)
                both_loaded.wait()
            run.decide("b1", decision, operator=name)

        try:
            app.update(run_id, command, retries=retries)
        except RecoveryError as exc:
            results[name] = exc
        else:
            results[name] = "saved"

    threads = [
        threading.Thread(target=operator, args=(first, "alice", "retry")),
        threading.Thread(target=operator, args=(second, "bob", "skip")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    winners = [name for name, result in results.items() if result == "saved"]
    losers = [result for result in results.values() if result != "saved"]
    assert len(winners) == 1, results
    assert len(losers) == 1
    assert type(losers[0]) is ConflictError
    assert losers[0].exit_code == 5
    said = "changed while this command ran" if retries == 0 else "already decided"
    assert said in str(losers[0])

    for app in (first, second, RecoveryApp.open(url)):
        decided = [e for e in app.history(run_id) if isinstance(e, Run.OperatorDecided)]
        assert [e.operator for e in decided] == winners
        view = app.view(run_id)
        assert view.version == version + 1
        assert view.decision is not None
        assert view.decision.operator == winners[0]
    first.close()
    second.close()


def test_a_decision_after_another_was_saved_is_a_conflict(tmp_path: Path) -> None:
    """An operator whose app loads the run after another app saved a decision gets
    ConflictError from the rule itself, and nothing is written."""
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    first = RecoveryApp.open(url)
    second = RecoveryApp.open(url)
    run_id = first.start_run(make_plan(), workspace=tmp_path)
    fail(first, run_id, "b1")
    first.decide(run_id, "b1", "retry", operator="alice")
    error = refused(second, run_id, decide("b1", "skip", operator="bob"), ConflictError)
    assert error.exit_code == 5
    with pytest.raises(ConflictError):
        second.decide(run_id, "b1", "abort", operator="bob")
    assert second.view(run_id).state == "halted"
    first.close()
    second.close()


def _passed(attempt: int, i: int) -> Callable[[Run], None]:
    """Records step ``s<i>`` of batch b1 as passed."""
    return lambda run: run.step_passed(
        "b1", attempt, step=f"s{i}", phase="p", duration_s=0.0
    )


def test_a_long_run_is_read_from_its_latest_snapshot_with_the_same_state(
    tmp_path: Path,
) -> None:
    """Every 100 events the run is snapshotted (eventsourcing's snapshots, with
    the run's state as data); a fresh app reads a long run from its latest
    snapshot and gets the state that replaying every event gives."""
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    app = RecoveryApp.open(url)
    run_id = app.start_run(make_plan(), workspace=tmp_path)
    attempt = start(app, run_id, "b1")

    for i in range(250):
        app.update(run_id, _passed(attempt, i))
    app.close()
    fresh = RecoveryApp.open(url, create=False)
    assert fresh.snapshots is not None
    versions = [s.originator_version for s in fresh.snapshots.get(run_id)]
    assert versions == [100, 200]
    replayed: RunView | None = None
    for event in fresh.history(run_id):
        replayed = apply(replayed, event)
    view = fresh.view(run_id)
    assert view == replayed
    assert view.version == 252 and len(view.batch("b1").steps_passed) == 250
    fresh.close()


def test_the_chain_is_checked_from_the_latest_snapshot_on(tmp_path: Path) -> None:
    """``check_chain`` reads the events after the latest snapshot, linked from
    the digest it holds: an event edited after it is found (exit code 6); the
    history before it is ``recovery verify``'s to check."""
    path = tmp_path / "events.sqlite3"
    app = RecoveryApp.open(f"sqlite:///{path}")
    run_id = app.start_run(make_plan(), workspace=tmp_path)
    attempt = start(app, run_id, "b1")
    for i in range(120):
        app.update(run_id, _passed(attempt, i))
    assert app.check_chain(run_id) == app.view(run_id).head_digest
    app.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE stored_events SET state = "
            "CAST(replace(state, 'duration_s\":0.0', 'duration_s\":9.0') AS BLOB) "
            "WHERE originator_version = 112"
        )
    fresh = RecoveryApp.open(f"sqlite:///{path}", create=False)
    with pytest.raises(IntegrityError) as refused:
        fresh.check_chain(run_id)
    assert refused.value.exit_code == 6
    assert "event 112 (StepPassed): content does not match its digest" in str(
        refused.value
    )
    fresh.close()
