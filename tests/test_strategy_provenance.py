"""Which strategy answered each failure, with the package and version that
ship it, is in the events (``RecoveryAttempted``), in the run's state and in
``recovery status --json``; ``recovery strategies`` shows each one's version.
A strategy in no installed package (a test's own class) is recorded with
neither."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import attrs
import cattrs

from recovery_adapters import manual_git
from recovery_core import (
    FailureContext,
    Halted,
    NoopStrategy,
    RecoveryApp,
    RecoveryOutcome,
    parse_plan,
)
from recovery_core.records import view_data, view_of
from recovery_core.registry import OWN_DISTRIBUTION, Provenance, provenance_of
from recovery_core.run import Run
from recovery_core.strategies import STRATEGIES, strategy_provenance
from recovery_core.testing import MemoryWorkspace, ScriptedSteps
from support import BUGGY_CALC, cli_json, unit_tests_step, write_file_action, write_plan

OURS = version(OWN_DISTRIBUTION)

PLAN: dict[str, Any] = {
    "plan_id": "provenance",
    "batches": [
        {
            "batch_id": "1",
            "actions": [write_file_action("generate", "app/calc.py", BUGGY_CALC)],
            "validation": [unit_tests_step()],
        }
    ],
}


@attrs.frozen
class Local:
    """A strategy of this test module, which no installed package ships."""

    name: str = "local"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        return RecoveryOutcome(analysis="local analysis")


def attempted(app: RecoveryApp, run_id: str) -> list[Run.RecoveryAttempted]:
    return [e for e in app.history(run_id) if isinstance(e, Run.RecoveryAttempted)]


def test_the_built_in_strategies_come_from_recovery_core() -> None:
    """noop and manual-git are shipped by recovery-core at its installed
    version; so are their classes and factories."""
    expected = Provenance(OWN_DISTRIBUTION, OURS)
    assert strategy_provenance(NoopStrategy()) == expected
    assert strategy_provenance(manual_git()) == expected
    assert STRATEGIES.provenance("noop") == expected
    assert STRATEGIES.provenance("manual-git") == expected
    assert provenance_of(manual_git) == expected


def test_code_in_no_package_has_no_provenance() -> None:
    """A class of a test module, and an unknown name, have neither package
    nor version."""
    assert strategy_provenance(Local()) == Provenance(None, None)
    assert STRATEGIES.provenance("no-such-strategy") == Provenance(None, None)


def test_an_installed_module_is_found_by_its_files() -> None:
    """A module of an installed package that declares no entry point is
    found through the package's file list (cattrs ships cattrs)."""
    assert provenance_of(cattrs.Converter) == Provenance("cattrs", version("cattrs"))


def test_each_failure_records_the_strategy_that_answered_it() -> None:
    """Two failures of one run, answered by two strategies: each
    RecoveryAttempted names its own strategy, package and version, and the
    run's state (and a snapshot of it) the one that answered last."""
    workspace = MemoryWorkspace()
    steps = ScriptedSteps({"check": ["fail", "fail"]})
    plan = parse_plan(
        {
            "plan_id": "two",
            "batches": [
                {
                    "batch_id": "b",
                    "actions": [{"name": "make", "run": ["make"]}],
                    "validation": [{"name": "check", "kind": "command", "run": ["x"]}],
                }
            ],
        },
        step_kinds={"command"},
    )
    app = RecoveryApp.open("memory://")

    def run(strategy: Any) -> Halted:
        runner = app.runner(
            plan,
            workspace=workspace,
            strategy=strategy,
            step_runners={"command": steps},
            projections=[],
        )
        halted = runner.run()
        assert isinstance(halted, Halted)
        return halted

    first = run(NoopStrategy())
    app.decide(first.run_id, "b", "retry", operator="op")
    second = run(Local())
    answers = [
        (e.attempt, e.strategy, e.strategy_package, e.strategy_version)
        for e in attempted(app, second.run_id)
    ]
    assert answers == [
        (1, "noop", OWN_DISTRIBUTION, OURS),
        (2, "local", None, None),
    ]
    view = app.view(second.run_id)
    assert (view.strategy, view.strategy_package, view.strategy_version) == (
        "local",
        None,
        None,
    )
    app.decide(second.run_id, "b", "skip", operator="op")
    old = view_data(app.view(first.run_id))
    for late in ("strategy_package", "strategy_version"):
        old.pop(late)
    assert view_of(old).strategy_package is None  # a snapshot from before


def test_status_json_shows_the_strategy_package_and_version(repo: Path) -> None:
    """A real run halted by a failing batch: ``status --json`` names the
    strategy (manual-git, the default in a git workspace) with its package
    and version, as the event does; ``strategies --json`` lists versions."""
    plan = write_plan(repo.parent / "plan.json", PLAN)
    halted = cli_json("run", plan, cwd=repo)
    assert halted["state"] == "halted", halted
    status = cli_json("status", cwd=repo)
    assert (
        status["strategy"],
        status["strategy_package"],
        status["strategy_version"],
    ) == ("manual-git", OWN_DISTRIBUTION, OURS)
    app = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    (event,) = attempted(app, status["run_id"])
    assert (event.strategy_package, event.strategy_version) == (
        OWN_DISTRIBUTION,
        OURS,
    )
    app.close()
    listed = {s["name"]: s for s in cli_json("strategies", cwd=repo)}
    assert listed["noop"] == {
        "name": "noop",
        "source": "built-in",
        "package": OWN_DISTRIBUTION,
        "version": OURS,
    }
    assert listed["manual-git"]["version"] == OURS
