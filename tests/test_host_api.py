"""The public API as a host application uses it: open an app, make a runner,
drive batches from its own code, read typed outcomes, query, decide, wait, and
hear what happens through hooks."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters import ConsoleNotifier, GitWorkspace
from recovery_adapters.stores import store_for_workspace
from recovery_core import (
    Aborted,
    BatchEnd,
    BatchStart,
    Completed,
    ConflictError,
    DecisionView,
    FailureLogEntry,
    FailureReport,
    Halted,
    Hooks,
    IllegalTransition,
    RecoveryApp,
    Runner,
    RunView,
    StepResult,
    StepStart,
    UnknownRun,
    Verified,
    load_plan,
    parse_plan,
)
from recovery_core.run import Run
from support import git, run_cli, unit_tests_step, write_plan

GOOD_CALC = "def add(a: int, b: int) -> int:\n    return a + b\n\n\ndef neg(a: int) -> int:\n    return -a\n"
BAD_CALC = "def add(a: int, b: int) -> int:\n    return a - b\n"

HOST_PLAN = {
    "plan_id": "host-plan",
    "batches": [
        {
            "batch_id": "calc",
            "validation": [
                {"name": "syntax_check", "kind": "syntax"},
                unit_tests_step(),
            ],
        },
        {
            "batch_id": "docs",
            "validation": [{"name": "syntax_check", "kind": "syntax"}],
        },
    ],
}


def make_runner(app: RecoveryApp, repo: Path, **options: Any) -> Runner:
    """A runner for the host plan in ``repo``."""
    return app.runner(parse_plan(HOST_PLAN), workspace=GitWorkspace(repo), **options)


def test_batch_block_verified_then_run_completes(repo: Path) -> None:
    """A change made in the block is validated on leaving; the outcome is
    Verified; run() then does the remaining batches and completes."""
    app = RecoveryApp.open("memory://")
    runner = make_runner(app, repo)
    with runner.batch("calc") as session:
        assert session.attempt == 1
        assert session.root == repo.resolve()
        (repo / "app" / "calc.py").write_text(GOOD_CALC)
    outcome = session.outcome
    assert isinstance(outcome, Verified)
    assert (outcome.batch_id, outcome.attempt, outcome.commit) == ("calc", 1, None)
    assert outcome.view.batch("calc").steps_passed == ("syntax_check", "unit_tests")
    final = runner.run()
    assert isinstance(final, Completed)
    assert final.exit_code == 0
    assert [b.status for b in final.view.batches] == ["verified", "verified"]


def test_exception_in_block_is_a_runtime_failure_handled_like_any_other(
    repo: Path,
) -> None:
    """An exception in the host's block is recorded as runtime_execution.host_code
    with its traceback and component; the run halts, the strategy answers and the
    notifiers are told; the exception does not escape the block."""
    app = RecoveryApp.open("memory://")
    helper = repo / "app" / "generator.py"
    helper.write_text(
        "def generate():\n    raise ValueError('template variable missing: name')\n"
    )
    sys.path.insert(0, str(repo))
    try:
        from app import generator  # type: ignore[import-not-found]

        told: list[str] = []

        class Told:
            channel = "test"

            def notify(self, notification: Any) -> None:
                told.append(notification.failure.step_id)

        runner = make_runner(app, repo, notifiers=[Told()])
        with runner.batch("calc") as session:
            generator.generate()
    finally:
        sys.path.remove(str(repo))
        sys.modules.pop("app.generator", None)
        sys.modules.pop("app", None)
    outcome = session.outcome
    assert isinstance(outcome, Halted)
    assert outcome.exit_code == 3
    failure = outcome.failure
    assert (failure.phase, failure.step) == ("runtime_execution", "host_code")
    assert failure.error == "ValueError: template variable missing: name"
    assert "Traceback (most recent call last)" in failure.traceback
    assert failure.component == "app/generator.py:2"
    assert outcome.decisions == ("retry", "skip", "abort")
    assert outcome.open.batch_id == "calc" and "retry" in outcome.open.choices
    assert told == ["runtime_execution.host_code"]
    events = app.history(outcome.run_id)
    assert any(isinstance(e, Run.RecoveryAttempted) for e in events)
    (entry,) = app.failure_log(run_id=outcome.run_id)
    assert isinstance(entry, FailureLogEntry)
    assert entry.failure.step_id == "runtime_execution.host_code"
    assert entry.failure.kind == "host_code"


def test_failed_validation_then_retry_from_code(repo: Path) -> None:
    """A block whose change fails validation halts; a retry decided from code
    lets the same batch run again as attempt 2."""
    app = RecoveryApp.open("memory://")
    runner = make_runner(app, repo)
    with runner.batch("calc") as first:
        (repo / "app" / "calc.py").write_text(BAD_CALC)
    halted = first.outcome
    assert isinstance(halted, Halted)
    assert halted.failure.step == "unit_tests"
    with (
        pytest.raises(IllegalTransition, match="awaits a decision"),
        runner.batch("calc"),
    ):
        pytest.fail("a halted batch must not start without a decision")
    view = app.decide(halted.run_id, "calc", "retry", operator="host", reason="fixed")
    assert isinstance(view, RunView)
    assert view.decision == DecisionView("calc", 1, "retry", "host", "fixed")
    with runner.batch("calc") as second:
        (repo / "app" / "calc.py").write_text(GOOD_CALC)
    assert isinstance(second.outcome, Verified)
    assert second.outcome.attempt == 2


def test_batch_out_of_order_is_refused_before_anything_is_recorded(repo: Path) -> None:
    """Starting a batch that is not next raises IllegalTransition on entering, and
    the body never runs."""
    app = RecoveryApp.open("memory://")
    runner = make_runner(app, repo)
    ran = False
    with (
        pytest.raises(IllegalTransition, match="batch calc comes first"),
        runner.batch("docs"),
    ):
        ran = True
    assert not ran
    assert runner.run_id is not None
    assert app.view(runner.run_id).batch("docs").attempts == 0


def test_skip_decided_from_code_is_carried_out_by_the_next_block(repo: Path) -> None:
    """After a skip decision, entering the next batch's block carries it out."""
    app = RecoveryApp.open("memory://")
    runner = make_runner(app, repo)
    with runner.batch("calc") as first:
        (repo / "app" / "calc.py").write_text(BAD_CALC)
    assert isinstance(first.outcome, Halted)
    app.decide(first.outcome.run_id, "calc", "skip", operator="host")
    with runner.batch("docs") as second:
        (repo / "README.md").write_text("docs\n")
    assert isinstance(second.outcome, Verified)
    assert second.outcome.view.batch("calc").status == "skipped"
    assert isinstance(runner.run(), Completed)


def test_abort_decided_from_code_gives_aborted(repo: Path) -> None:
    """An abort decision ends the run: run() returns Aborted with the reason."""
    app = RecoveryApp.open("memory://")
    runner = make_runner(app, repo)
    with runner.batch("calc") as first:
        (repo / "app" / "calc.py").write_text(BAD_CALC)
    assert isinstance(first.outcome, Halted)
    app.decide(
        first.outcome.run_id, "calc", "abort", operator="host", reason="giving up"
    )
    outcome = runner.run()
    assert isinstance(outcome, Aborted)
    assert (outcome.reason, outcome.exit_code) == ("giving up", 4)
    with pytest.raises(ConflictError):
        app.decide(first.outcome.run_id, "calc", "retry", operator="other")


def test_hooks_hear_every_step_in_order(repo: Path) -> None:
    """Each hook is called with a typed value, after its event was saved."""
    app = RecoveryApp.open("memory://")
    heard: list[str] = []
    failures: list[FailureReport] = []
    decisions: list[DecisionView] = []

    def on_batch_start(event: BatchStart) -> None:
        saved = app.view(event.run_id).batch(event.batch_id)
        heard.append(
            f"start {event.batch_id} {event.attempt} {event.index}/{event.total} {saved.status}"
        )

    def on_step_start(event: StepStart) -> None:
        heard.append(f"step {event.step}")

    def on_step_result(event: StepResult) -> None:
        heard.append(f"{'pass' if event.outcome.passed else 'fail'} {event.step}")

    def on_batch_end(event: BatchEnd) -> None:
        heard.append(f"end {event.batch_id} {event.status}")

    hooks = Hooks(
        on_batch_start=on_batch_start,
        on_step_start=on_step_start,
        on_step_result=on_step_result,
        on_batch_end=on_batch_end,
        on_failure=failures.append,
        on_decision=decisions.append,
    )
    runner = make_runner(app, repo, hooks=hooks)
    with runner.batch("calc") as session:
        (repo / "app" / "calc.py").write_text(BAD_CALC)
    assert isinstance(session.outcome, Halted)
    assert heard == [
        "start calc 1 1/2 running",
        "step syntax_check",
        "pass syntax_check",
        "step unit_tests",
        "fail unit_tests",
        "end calc failed",
    ]
    (report,) = failures
    assert report.failure.step == "unit_tests" and report.decisions == (
        "retry",
        "skip",
        "abort",
    )
    app.decide(session.outcome.run_id, "calc", "skip", operator="host")
    assert isinstance(runner.run(), Completed)
    assert [d.decision for d in decisions] == ["skip"]


def test_a_hook_that_raises_is_reported_and_loses_no_event(
    repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising hook is logged and reported through on_note; the run goes on and
    every event is saved."""
    app = RecoveryApp.open("memory://")
    notes: list[str] = []

    def broken(event: StepResult) -> None:
        raise RuntimeError("hook bug")

    runner = make_runner(
        app, repo, hooks=[Hooks(on_step_result=broken), Hooks(on_note=notes.append)]
    )
    with (
        caplog.at_level(logging.ERROR, logger="recovery_core.hooks"),
        runner.batch("calc") as session,
    ):
        (repo / "app" / "calc.py").write_text(GOOD_CALC)
    assert isinstance(session.outcome, Verified)
    assert notes == ["hook on_step_result raised RuntimeError: hook bug"] * 2
    assert "hook on_step_result raised" in caplog.text
    names = [type(e).__name__ for e in app.history(session.outcome.run_id)]
    assert names.count("StepPassed") == 2 and "BatchVerified" in names


def test_wait_for_decision_returns_the_decision_or_none_at_timeout(repo: Path) -> None:
    """wait_for_decision times out with None, and returns a decision recorded
    meanwhile from another thread (as another host would)."""
    app = RecoveryApp.open("memory://")
    runner = make_runner(app, repo)
    with runner.batch("calc") as session:
        (repo / "app" / "calc.py").write_text(BAD_CALC)
    assert isinstance(session.outcome, Halted)
    run_id = session.outcome.run_id
    started = time.monotonic()
    assert app.wait_for_decision(run_id, timeout_s=0.3, poll_s=0.05) is None
    assert time.monotonic() - started >= 0.3

    def decide_later() -> None:
        time.sleep(0.2)
        app.decide(run_id, "calc", "skip", operator="remote")

    thread = threading.Thread(target=decide_later)
    thread.start()
    decision = app.wait_for_decision(run_id, timeout_s=30, poll_s=0.05)
    thread.join()
    assert decision is not None
    assert (decision.decision, decision.operator) == ("skip", "remote")


def test_run_waits_for_a_decision_recorded_by_another_process(
    repo: Path, tmp_path: Path
) -> None:
    """run(wait=True) waits while an operator decides from the command line in
    another process, then carries the decision out and completes."""
    store = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    app = RecoveryApp.open(store)
    runner = make_runner(app, repo)
    with runner.batch("calc") as session:
        (repo / "app" / "calc.py").write_text(BAD_CALC)
    assert isinstance(session.outcome, Halted)
    run_id = session.outcome.run_id
    operator = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; time.sleep(1); sys.exit(subprocess.call("
            f"[sys.executable, '-m', 'recovery_adapters.cli', 'decide', '{run_id}', "
            f"'calc', 'skip', '--store', '{store}']))",
        ]
    )
    outcome = runner.run(wait=True, poll_s=0.1, wait_timeout_s=60)
    assert operator.wait(timeout=60) == 0
    assert isinstance(outcome, Completed)
    assert outcome.view.batch("calc").status == "skipped"


def test_queries_resolve_runs_by_prefix_and_latest(repo: Path) -> None:
    """A host finds runs as the command line does: by id, prefix or latest."""
    app = RecoveryApp.open("memory://")
    runner = make_runner(app, repo)
    run_id = runner.open_run()
    assert app.resolve("latest") == run_id
    assert app.resolve(str(run_id)[:8]) == run_id
    (summary,) = app.runs()
    assert (summary.run_id, summary.plan_id) == (str(run_id), "host-plan")
    with pytest.raises(UnknownRun):
        app.resolve("nope-nope")
    with pytest.raises(UnknownRun):
        app.view("not-a-uuid")


def test_plan_file_loaded_by_the_host_gets_its_status_written_back(repo: Path) -> None:
    """A plan loaded from a file inside the workspace gets its status keys written
    back, and the library's writes never count as the batch's change."""
    plan_path = write_plan(repo / "plan.json", HOST_PLAN)
    git(repo, "add", "plan.json")
    git(repo, "commit", "-q", "-m", "plan")
    app = store_for_workspace(repo)
    runner = app.runner(
        load_plan(plan_path),
        workspace=GitWorkspace(repo),
        notifiers=[ConsoleNotifier()],
    )
    with runner.batch("calc") as session:
        (repo / "app" / "calc.py").write_text(BAD_CALC)
    assert isinstance(session.outcome, Halted)
    assert session.outcome.failure.changed_files == ("app/calc.py",)
    assert '"status": "failed"' in plan_path.read_text()
    status = run_cli("status", "--json", cwd=repo)
    assert '"state": "halted"' in status.stdout


def test_example_host_app_runs_from_its_readme_command(tmp_path: Path) -> None:
    """examples/host_app generates three batches, retries the one whose template
    was wrong, and completes (exit 0)."""
    script = (
        Path(__file__).resolve().parents[1] / "examples" / "host_app" / "host_app.py"
    )
    readme = (script.parent / "README.md").read_text()
    assert "examples/host_app/host_app.py --dir" in readme
    target = tmp_path / "host"
    done = subprocess.run(
        [sys.executable, str(script), "--dir", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "correcting the circle template and retrying" in done.stdout
    assert "circle: verified after 2 attempt(s)" in done.stdout
    status = run_cli("status", "--json", cwd=target)
    assert '"state": "completed"' in status.stdout


def test_a_decision_is_tried_again_when_a_runner_wrote_meanwhile(
    repo: Path, tmp_path: Path
) -> None:
    """A runner that records its claim between an operator's read of the run
    and the save of the decision does not make the decision fail: it is
    checked again on the run as the runner left it, and recorded. Without
    tries left, the lost race is a ConflictError and nothing is recorded."""
    store = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    operator_app, runner_app = RecoveryApp.open(store), RecoveryApp.open(store)
    runner = make_runner(runner_app, repo)
    with runner.batch("calc") as session:
        (repo / "app" / "calc.py").write_text(BAD_CALC)
    assert isinstance(session.outcome, Halted)
    run_id = session.outcome.run_id
    claims = iter(["runner-b", "runner-c"])

    def decide_while_a_runner_claims(run: Run) -> RunView:
        if (ident := next(claims, None)) is not None:  # another writer, first
            runner_app.update(
                run_id,
                lambda other: other.claim_runner(
                    host="h", pid=1, runner_id=ident, take_over=True
                ),
            )
        run.decide("calc", "skip", operator="op")
        return run.view()

    before = operator_app.view(run_id).version
    with pytest.raises(ConflictError, match="changed while this command ran"):
        operator_app.update(run_id, decide_while_a_runner_claims, retries=0)
    assert operator_app.view(run_id).decision is None
    view = operator_app.update(run_id, decide_while_a_runner_claims, retries=1)
    assert view.decision is not None and view.decision.operator == "op"
    assert view.claim is not None and view.claim.runner_id == "runner-c"
    assert operator_app.view(run_id).version == before + 3
