"""The public API from a host's point of view, for the type checker.

This module is not run: ``mypy --strict`` checks it (CI runs it over tests/).
Each ``assert_type`` pins the type a host gets, so a change that would make a
host's code stop type-checking fails CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

from recovery_adapters import ConsoleNotifier, GitWorkspace
from recovery_core import (
    Aborted,
    BatchEnd,
    BatchOutcome,
    BatchSession,
    BatchStart,
    BatchView,
    Completed,
    Decision,
    DecisionView,
    ExecutionPlan,
    FailureContext,
    FailureLogEntry,
    FailureReport,
    FailureView,
    Halted,
    Hooks,
    Notification,
    Outcome,
    RecoveryApp,
    RecoveryError,
    RecoveryOutcome,
    RecoveryStrategy,
    Runner,
    RunState,
    RunView,
    StepContext,
    StepOutcome,
    StepResult,
    StepRunner,
    StepStart,
    Verified,
    load_plan,
    register_step_kind,
    register_strategy,
)


class MyStrategy:
    """An integrator's strategy: a plain class, no base class."""

    name = "mine"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        return RecoveryOutcome(analysis=f"{context.failure.step} failed")


class MyNotifier:
    """An integrator's notifier."""

    channel = "mine"

    def notify(self, notification: Notification) -> None:
        print(notification.batch_id, notification.open.choices)


def my_step(step: object, context: StepContext) -> StepOutcome:
    """An integrator's step kind."""
    return StepOutcome(passed=True, duration_s=0.0)


def on_start(event: BatchStart) -> None:
    print(event.batch_id, event.attempt, event.index, event.total)


def on_step(event: StepStart) -> None:
    print(event.phase, event.step)


def on_result(event: StepResult) -> None:
    print(event.outcome.passed, event.outcome.duration_s)


def on_end(event: BatchEnd) -> None:
    print(event.status, event.duration_s)


def on_failure(event: FailureReport) -> None:
    print(event.failure.component, event.decisions)


def on_decision(decision: DecisionView) -> None:
    print(decision.decision, decision.operator)


def host(plan_file: Path) -> int:
    """What a host application writes."""
    app = RecoveryApp.open("sqlite:///.recovery/events.sqlite3")
    plan = load_plan(plan_file)
    assert_type(plan, ExecutionPlan)
    strategy: RecoveryStrategy = MyStrategy()
    register_strategy("mine", MyStrategy)
    register_step_kind("mine", my_step)
    runner = app.runner(
        plan,
        workspace=GitWorkspace("."),
        strategy=strategy,
        notifiers=[ConsoleNotifier(), MyNotifier()],
        hooks=Hooks(
            on_batch_start=on_start,
            on_step_start=on_step,
            on_step_result=on_result,
            on_batch_end=on_end,
            on_failure=on_failure,
            on_decision=on_decision,
            on_note=print,
        ),
    )
    assert_type(runner, Runner)
    with runner.batch(plan.batch_ids[0]) as session:
        assert_type(session, BatchSession)
        (session.root / "generated.py").write_text("X = 1\n")
    block = session.outcome
    assert_type(block, BatchOutcome | None)
    if isinstance(block, Verified):
        assert_type(block.commit, str | None)
    elif isinstance(block, Halted):
        failure = block.failure
        assert_type(failure, FailureView)
        assert_type(block.decisions, tuple[str, ...])
        decision: Decision = "retry"
        view = app.decide(block.run_id, failure.batch_id, decision, operator="host")
        assert_type(view, RunView)
        waited = app.wait_for_decision(block.run_id, timeout_s=1.0)
        assert_type(waited, DecisionView | None)
    outcome = runner.run()
    assert_type(outcome, Outcome)
    state = outcome.view.state
    assert_type(state, RunState)
    batches = outcome.view.batches
    assert_type(batches, tuple[BatchView, ...])
    entries = app.failure_log(run_id=outcome.run_id)
    assert_type(entries, list[FailureLogEntry])
    if isinstance(outcome, Completed):
        return 0
    if isinstance(outcome, Aborted):
        assert_type(outcome.reason, str)
    return outcome.exit_code


def integrator_types() -> tuple[StepRunner, RecoveryStrategy]:
    """Plain functions and classes satisfy the plugin Protocols."""
    return my_step, MyStrategy()


def errors() -> None:
    """Every error a host catches has an exit code."""
    try:
        RecoveryApp.open("bogus://")
    except RecoveryError as exc:
        assert_type(exc.exit_code, int)
