"""The kit for integrators (:mod:`recovery_core.testing`) tells a conforming
plugin from a broken one: strategies and notifiers that break a rule of their
Protocol fail the check named for that rule, and a strategy that proposes a
fix passes it all, through ``recover`` in a real run. The fakes do what they
say (the scripted steps, the workspace's quarantine)."""

from __future__ import annotations

import unittest
from collections.abc import Callable

import attrs
import pytest

from recovery_core import (
    FailureContext,
    Notification,
    Notifier,
    RecoveryOutcome,
    RecoveryStrategy,
    Step,
    StepContext,
    StepOutcome,
    parse_plan,
    testing,
)
from recovery_core.plan import Identifier, StepKind
from recovery_core.testing import MemoryWorkspace, ScriptedSteps


def run_kit(case: type[unittest.TestCase]) -> dict[str, str]:
    """Runs a kit's subclass with unittest; returns each test that did not
    pass, with ``failed``, ``error`` or ``skipped``."""
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
    result = unittest.TestResult()
    suite.run(result)
    found: dict[str, str] = {}
    for what, cases in (
        ("failed", result.failures),
        ("error", result.errors),
        ("skipped", result.skipped),
    ):
        for test, _ in cases:
            name = getattr(test, "test_case", test).id().rpartition(".")[2]
            found.setdefault(name, what)
    return found


def strategy_kit(make: Callable[[], object]) -> type[testing.StrategyConformance]:
    class Kit(testing.StrategyConformance):
        def make_strategy(self) -> RecoveryStrategy:
            return make()  # type: ignore[return-value]

    return Kit


@attrs.frozen
class Revert:
    """Proposes putting the batch's change back as the baseline had it, and
    applies that on ``recover``."""

    name: str = "revert"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        files = list(context.failure.changed_files)
        return RecoveryOutcome(
            analysis=f"revert {len(files)} file(s) to the baseline",
            proposal=bool(files) and context.failure.baseline is not None,
            details={"files": files},
        )

    def recover(self, context: FailureContext) -> None:
        baseline = context.failure.baseline
        assert baseline is not None
        context.workspace.restore(baseline, context.failure.changed_files)


@attrs.frozen
class Picky:
    """Raises for a failure without a component."""

    name: str = "picky"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        if not context.failure.component:
            raise ValueError("no component")
        return RecoveryOutcome(analysis="fine")


@attrs.frozen
class SetDetails:
    """Records a set in its details, which JSON cannot hold."""

    name: str = "set-details"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        return RecoveryOutcome(analysis="x", details={"files": set()})


@attrs.frozen
class ProposesWithoutRecover:
    """Proposes a fix it has no way to apply."""

    name: str = "no-recover"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        return RecoveryOutcome(analysis="a fix!", proposal=True)


@attrs.frozen
class Silent:
    """Answers with an empty analysis."""

    name: str = "silent"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        return RecoveryOutcome(analysis="")


class Shapeshifter:
    """A new name every time it is read."""

    def __init__(self) -> None:
        self.reads = 0

    @property
    def name(self) -> str:
        self.reads += 1
        return f"shape-{self.reads}"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        return RecoveryOutcome(analysis="x")


def test_a_proposing_strategy_passes_the_kit_through_recover() -> None:
    """A strategy that proposes and applies a fix passes every check,
    including a real run where ``recover`` is decided and the batch verifies."""
    Kit = strategy_kit(Revert)
    Kit.proposes = True
    assert run_kit(Kit) == {"test_a_quarantine_takes_the_change_out": "skipped"} | {
        "test_is_found_by_its_registered_name": "skipped"
    }


@pytest.mark.parametrize(
    ("strategy", "fails"),
    [
        (Picky, {"test_answers_odd_failures"}),
        (SetDetails, {"test_answers_a_failure", "test_answers_odd_failures"}),
        (ProposesWithoutRecover, {"test_a_proposal_can_be_applied"}),
        (Silent, {"test_answers_a_failure", "test_answers_odd_failures"}),
        (Shapeshifter, {"test_name_is_stable_text", "test_answers_in_a_run"}),
    ],
)
def test_a_broken_strategy_fails_the_check_of_its_rule(
    strategy: Callable[[], object], fails: set[str]
) -> None:
    """Each broken strategy fails (at least) the checks of the rule it breaks."""
    found = run_kit(strategy_kit(strategy))
    failed = {name for name, what in found.items() if what != "skipped"}
    assert fails <= failed, found


def test_a_strategy_registered_under_another_name_is_caught() -> None:
    """``registered_name`` that makes another strategy, or one of another
    name, fails its check."""
    Kit = strategy_kit(Revert)
    Kit.registered_name = "noop"
    assert run_kit(Kit)["test_is_found_by_its_registered_name"] == "failed"


class Swallowing:
    """Says nothing when its channel is down."""

    channel = "swallowing"

    def __init__(self, down: bool = False) -> None:
        self.down = down

    def notify(self, notification: Notification) -> None:
        if self.down:
            return


class Exiting(Swallowing):
    """Ends the process when its channel is down."""

    def notify(self, notification: Notification) -> None:
        if self.down:
            raise SystemExit(3)


class Unnamed(Swallowing):
    """A channel that is no string."""

    channel = 42  # type: ignore[assignment]


class Fragile(Swallowing):
    """Cannot deliver a notification that is not ASCII."""

    def notify(self, notification: Notification) -> None:
        notification.failure.error.encode("ascii")


def notifier_kit(kind: type[Swallowing]) -> type[unittest.TestCase]:
    class Kit(testing.NotifierConformance):
        def make_notifier(self) -> Notifier:
            return kind()

        def make_undeliverable_notifier(self) -> Notifier:
            return kind(down=True)

    return Kit


@pytest.mark.parametrize(
    ("notifier", "fails"),
    [
        (
            Swallowing,
            {"test_raises_when_it_cannot_deliver", "test_is_recorded_in_a_run"},
        ),
        (Exiting, {"test_raises_when_it_cannot_deliver"}),
        (Unnamed, {"test_channel_is_stable_text"}),
        (Fragile, {"test_delivers_odd_notifications"}),
    ],
)
def test_a_broken_notifier_fails_the_check_of_its_rule(
    notifier: type[Swallowing], fails: set[str]
) -> None:
    """Each broken notifier fails (at least) the checks of the rule it breaks."""
    found = run_kit(notifier_kit(notifier))
    failed = {name for name, what in found.items() if what != "skipped"}
    assert fails <= failed, found


def test_a_notifier_that_loses_notifications_is_caught() -> None:
    """With ``deliveries`` filled in, a notifier whose notifications never
    arrive fails the delivery checks."""

    class Kit(testing.NotifierConformance):
        def make_notifier(self) -> Notifier:
            return testing.RecordingNotifier()

        def deliveries(self, notifier: Notifier) -> int:
            return 0

    found = run_kit(Kit)
    assert found["test_delivers_a_halt"] == "failed"
    assert found["test_raises_when_it_cannot_deliver"] == "skipped"


def test_the_base_classes_are_no_tests_of_their_own() -> None:
    """pytest collects only subclasses (``__test__``); unittest run on a base
    class skips every test, saying to subclass it."""
    assert testing.StrategyConformance.__test__ is False
    assert strategy_kit(Revert).__test__ is True
    found = run_kit(testing.NotifierConformance)
    assert set(found.values()) == {"skipped"}


def test_scripted_steps_follow_their_script() -> None:
    """Each step name takes its results in turn, then ``then``; an effect
    runs first; a scripted exception is raised; calls are kept."""
    workspace = MemoryWorkspace()
    steps = ScriptedSteps(
        {
            "check": [
                "fail",
                "hang",
                StepOutcome(passed=False, duration_s=1, error="e"),
            ],
            "make": ["pass"],
        },
        effects={"make": lambda step, context: workspace.write({"a.py": "x"})},
        then=RuntimeError("crashed"),
    )
    plan = parse_plan(
        {"plan_id": "p", "batches": [{"batch_id": "b"}]}, step_kinds={"command"}
    )
    context = StepContext(
        root=workspace.root,
        run_id="r",
        batch=plan.batch("b"),
        attempt=1,
        baseline=None,
        changed_files=(),
        phase="post_build_validation",
    )
    check = Step(name=Identifier("check"), kind=StepKind("command"))
    results = [steps(check, context) for _ in range(3)]
    assert [r.passed for r in results] == [False, False, False]
    assert results[1].timed_out
    assert results[2].error == "e"
    with pytest.raises(RuntimeError, match="crashed"):
        steps(check, context)
    assert steps(
        Step(name=Identifier("make"), kind=StepKind("command")), context
    ).passed
    assert workspace.files == {"a.py": "x"}
    assert [c.step for c in steps.calls] == ["check"] * 4 + ["make"]


def test_memory_workspace_quarantines_once_per_attempt() -> None:
    """A second quarantine of the same attempt keeps what the first kept and
    finishes the restore, as the Workspace Protocol says."""
    workspace = MemoryWorkspace(files={"a.py": "1"})
    base = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    assert base is not None
    workspace.write({"a.py": "2", "b.py": "new"})
    first = workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=base)
    assert workspace.files == {"a.py": "1"}
    assert workspace.kept[first.ref] == {"a.py": "2", "b.py": "new"}
    workspace.write({"a.py": "2"})  # a restore the killed runner left half done
    again = workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=base)
    assert again == first
    assert workspace.files == {"a.py": "1"}
