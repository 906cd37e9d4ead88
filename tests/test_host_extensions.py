"""Extending and inspecting a run as a host or an integrator would: a custom step
kind, strategy and notifier, manual-git chosen explicitly, and the typed values
a host reads back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from recovery_adapters import GitWorkspace, ManualGitStrategy, manual_git
from recovery_core import (
    BatchOutcome,
    BatchSession,
    BatchView,
    ClaimView,
    Decision,
    FailureContext,
    FailureView,
    Halted,
    Hooks,
    Notification,
    Notifier,
    Outcome,
    PluginError,
    Quarantine,
    RecoveryApp,
    RecoveryOutcome,
    RecoveryStrategy,
    RunState,
    RunSummary,
    Step,
    StepContext,
    StepOutcome,
    StepRunner,
    Verified,
    Workspace,
    get_strategy,
    parse_plan,
    register_step_kind,
)
from recovery_core.run import Run
from recovery_core.steps import STEP_KINDS
from support import git


def readme_mentions_usage(step: Step, context: StepContext) -> StepOutcome:
    """A host's own step kind: README.md must mention 'Usage'."""
    started = time.monotonic()
    text = (
        (context.root / "README.md").read_text()
        if (context.root / "README.md").exists()
        else ""
    )
    if "Usage" in text:
        return StepOutcome(passed=True, duration_s=time.monotonic() - started)
    return StepOutcome(
        passed=False,
        duration_s=time.monotonic() - started,
        error="README.md has no Usage section",
        component="README.md",
    )


@pytest.fixture
def doc_kind() -> Iterator[StepRunner]:
    """Registers the host's step kind for one test."""
    runner: StepRunner = readme_mentions_usage
    register_step_kind("readme_usage", runner)
    yield runner
    STEP_KINDS.unregister("readme_usage")


PLAN = {
    "plan_id": "docs-plan",
    "batches": [
        {
            "batch_id": "readme",
            "validation": [{"name": "usage", "kind": "readme_usage"}],
        }
    ],
}


def test_a_registered_step_kind_is_accepted_and_run(
    repo: Path, doc_kind: StepRunner
) -> None:
    """A kind registered with register_step_kind is accepted by the plan loader
    and runs: failing, then passing on retry."""
    app = RecoveryApp.open("memory://")
    runner = app.runner(parse_plan(PLAN), workspace=GitWorkspace(repo))
    with runner.batch("readme") as first:
        (repo / "README.md").write_text("# calc\n")
    halted: BatchOutcome | None = first.outcome
    assert isinstance(halted, Halted)
    failure: FailureView = halted.failure
    assert (failure.step, failure.kind, failure.component) == (
        "usage",
        "readme_usage",
        "README.md",
    )
    retry: Decision = "retry"
    app.decide(halted.run_id, "readme", retry, operator="host")
    with runner.batch("readme") as second:
        (repo / "README.md").write_text("# calc\n\n## Usage\n")
    session: BatchSession = second
    assert isinstance(session.outcome, Verified)


def test_unregistered_kind_is_refused_at_load(repo: Path) -> None:
    """Without the registration, the same plan is a bad plan."""
    with pytest.raises(ValueError, match="unknown step kind 'readme_usage'"):
        parse_plan(PLAN)


@attrs.frozen
class KeepAside:
    """An integrator's strategy: records a quarantine of its own making."""

    name: str = "keep-aside"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        return RecoveryOutcome(
            analysis=f"kept {len(context.failure.changed_files)} file(s) aside",
            quarantine=Quarantine(
                ref="refs/keep-aside/1",
                files=context.failure.changed_files,
                tree_id="0" * 40,
            ),
            hints=("look in refs/keep-aside/1",),
        )


class Collect:
    """An integrator's notifier."""

    channel = "collect"

    def __init__(self) -> None:
        self.seen: list[Notification] = []

    def notify(self, notification: Notification) -> None:
        self.seen.append(notification)


def test_custom_strategy_and_notifier_are_recorded(
    repo: Path, doc_kind: StepRunner
) -> None:
    """A plain class satisfies RecoveryStrategy and Notifier; the quarantine it
    reports is recorded (ChangesQuarantined) and reaches the failure log, and its
    hints reach the notification."""
    strategy: RecoveryStrategy = KeepAside()
    collect = Collect()
    notifier: Notifier = collect
    app = RecoveryApp.open("memory://")
    runner = app.runner(
        parse_plan(PLAN),
        workspace=GitWorkspace(repo),
        strategy=strategy,
        notifiers=[notifier],
    )
    with runner.batch("readme") as session:
        (repo / "README.md").write_text("no usage\n")
    assert isinstance(session.outcome, Halted)
    events = app.history(session.outcome.run_id)
    (kept,) = [e for e in events if isinstance(e, Run.ChangesQuarantined)]
    assert (kept.quarantine_ref, kept.files) == ("refs/keep-aside/1", ["README.md"])
    (entry,) = app.failure_log(run_id=session.outcome.run_id)
    assert entry.failure.quarantine_ref == "refs/keep-aside/1"
    (note,) = collect.seen
    assert note.hints == ("look in refs/keep-aside/1",)
    assert note.strategy == "keep-aside"


def test_manual_git_chosen_explicitly_quarantines_and_restores(repo: Path) -> None:
    """manual_git() keeps the faulty change under refs/recovery/.../quarantine and
    puts the tree back; it is also the default in a git workspace."""
    workspace = GitWorkspace(repo)
    assert isinstance(workspace, Workspace)
    app = RecoveryApp.open("memory://")
    plan = parse_plan(
        {
            "plan_id": "p",
            "batches": [
                {"batch_id": "b", "validation": [{"name": "s", "kind": "syntax"}]}
            ],
        }
    )
    assert isinstance(app.runner(plan, workspace=workspace).strategy, ManualGitStrategy)
    assert isinstance(get_strategy("manual-git"), ManualGitStrategy)
    runner = app.runner(plan, workspace=workspace, strategy=manual_git())
    before = (repo / "app" / "calc.py").read_text()
    with runner.batch("b") as session:
        (repo / "app" / "calc.py").write_text("def add(:\n")
    assert isinstance(session.outcome, Halted)
    assert (repo / "app" / "calc.py").read_text() == before
    ref = f"refs/recovery/{session.outcome.run_id}/b/1/quarantine"
    assert git(repo, "show", f"{ref}:app/calc.py") == "def add(:\n"
    assert session.outcome.view.batch("b").failure is not None


def test_typed_values_a_host_reads_back(repo: Path) -> None:
    """runs(), the claim, batch views and the run state come back as typed values."""
    app = RecoveryApp.open("memory://")
    plan = parse_plan(
        {
            "plan_id": "p",
            "batches": [
                {"batch_id": "b", "validation": [{"name": "s", "kind": "syntax"}]}
            ],
        }
    )
    runner = app.runner(plan, workspace=GitWorkspace(repo))
    with runner.batch("b"):
        (repo / "new.py").write_text("X = 1\n")
    view = app.view(runner.open_run())
    claim: ClaimView | None = view.claim
    assert claim is not None and claim.runner_id
    batch: BatchView = view.batch("b")
    assert (batch.status, batch.verified, batch.attempts) == ("verified", True, 1)
    outcome: Outcome = runner.run()
    state: RunState = outcome.view.state
    assert state == "completed"
    (summary,) = app.runs()
    assert isinstance(summary, RunSummary)
    assert summary.plan_id == "p"


def test_unknown_plugin_is_a_plugin_error() -> None:
    """A strategy name nobody registered is a PluginError with exit code 2."""
    with pytest.raises(PluginError) as caught:
        get_strategy("nobody-registered-this")
    assert caught.value.exit_code == 2


@attrs.frozen
class Proposes:
    """A strategy that proposes a fix (writing Usage into the README) and, when
    ``can_apply``, applies it on a recover decision."""

    can_apply: bool = True
    name: str = "proposes"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        return RecoveryOutcome(
            analysis="add a Usage section",
            proposal=True,
            details={"where": Path("README.md")},
        )

    def recover(self, context: FailureContext) -> None:
        if not self.can_apply:
            raise RuntimeError("the patch no longer applies")
        (context.root / "README.md").write_text("# calc\n\n## Usage\n")


def test_recover_decision_applies_the_proposed_fix(
    repo: Path, doc_kind: StepRunner
) -> None:
    """recover runs the strategy's fix as the next attempt (build.recover), which
    is then validated; details JSON cannot hold are recorded as text."""
    app = RecoveryApp.open("memory://")
    runner = app.runner(
        parse_plan(PLAN), workspace=GitWorkspace(repo), strategy=Proposes()
    )
    with runner.batch("readme") as session:
        (repo / "README.md").write_text("# calc\n")
    halted = session.outcome
    assert isinstance(halted, Halted)
    assert halted.decisions == ("retry", "skip", "recover", "abort")
    (attempted,) = [
        e for e in app.history(halted.run_id) if isinstance(e, Run.RecoveryAttempted)
    ]
    assert attempted.outcome["details"] == {"where": "README.md"}
    app.decide(halted.run_id, "readme", "recover", operator="ann")
    outcome = runner.run()
    assert outcome.view.state == "completed"
    batch = outcome.view.batch("readme")
    assert (batch.status, batch.attempts) == ("verified", 2)
    assert batch.steps_passed == ("recover", "usage")


def test_recover_that_cannot_be_applied_fails_the_attempt_and_asks_again(
    repo: Path, doc_kind: StepRunner
) -> None:
    """A fix that cannot be applied is attempt 2's build.recover failure; the run
    halts for a new decision instead of being stuck."""
    app = RecoveryApp.open("memory://")
    runner = app.runner(
        parse_plan(PLAN),
        workspace=GitWorkspace(repo),
        strategy=Proposes(can_apply=False),
    )
    with runner.batch("readme") as session:
        (repo / "README.md").write_text("# calc\n")
    assert isinstance(session.outcome, Halted)
    app.decide(session.outcome.run_id, "readme", "recover", operator="ann")
    again = runner.run()
    assert isinstance(again, Halted)
    assert (again.failure.attempt, again.failure.phase, again.failure.step) == (
        2,
        "build",
        "recover",
    )
    assert "the patch no longer applies" in again.failure.error
    app.decide(again.run_id, "readme", "abort", operator="ann")
    assert runner.run().view.state == "aborted"


def test_failed_step_is_heard_before_the_operator_is_notified(
    repo: Path, doc_kind: StepRunner
) -> None:
    """The step-result hook hears the failed step before the notification goes out,
    so progress shows the failure before the halt."""
    order: list[str] = []

    class Pager:
        channel = "pager"

        def notify(self, notification: Notification) -> None:
            order.append("notified")

    app = RecoveryApp.open("memory://")
    runner = app.runner(
        parse_plan(PLAN),
        workspace=GitWorkspace(repo),
        notifiers=[Pager()],
        hooks=Hooks(
            on_step_result=lambda r: order.append(f"step {r.outcome.passed}"),
            on_failure=lambda r: order.append("failure"),
        ),
    )
    with runner.batch("readme"):
        (repo / "README.md").write_text("nothing\n")
    assert order == ["step False", "notified", "failure"]


def test_a_batch_with_nothing_changed_makes_no_commit(repo: Path) -> None:
    """commit_strategy commit with no change verifies the batch without an empty
    commit."""
    head = git(repo, "rev-parse", "HEAD")
    app = RecoveryApp.open("memory://")
    plan = parse_plan(
        {
            "plan_id": "p",
            "batches": [
                {
                    "batch_id": "b",
                    "commit_strategy": "commit",
                    "validation": [{"name": "s", "kind": "syntax"}],
                }
            ],
        }
    )
    runner = app.runner(plan, workspace=GitWorkspace(repo))
    with runner.batch("b") as session:
        pass
    assert isinstance(session.outcome, Verified)
    assert session.outcome.commit is None
    assert git(repo, "rev-parse", "HEAD") == head
