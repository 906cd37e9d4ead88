"""Strategies and notifiers: the registry with real entry points, and what a run
records when a plugin misbehaves."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import attrs
import pytest

from recovery_adapters import GitWorkspace, default_step_runners
from recovery_core import (
    FailureContext,
    Halted,
    Notification,
    RecoveryApp,
    RecoveryOutcome,
    Runner,
    load_plan,
)
from recovery_core import strategies as registry
from recovery_core.run import Run
from support import run_cli, unit_tests_step, write_file_action, write_plan


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path where tests install real distributions with entry
    points (a dist-info folder and a module), as pip would."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in ("acme", "broken", "mine"):
        registry.STRATEGIES.unregister(name)


def install_plugin(
    site: Path, dist: str, name: str, target: str, module_source: str
) -> None:
    """Installs distribution ``dist`` with a strategy entry point ``name``."""
    module = target.split(":")[0]
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[recovery_core.strategies]\n{name} = {target}\n"
    )


def test_entry_point_strategy_is_found_and_listed(plugin_path: Path) -> None:
    """A strategy installed by another package is found by name and listed with it."""
    install_plugin(
        plugin_path,
        "acme_recovery",
        "acme",
        "acme_strategy:Acme",
        """
        from recovery_core import RecoveryOutcome

        class Acme:
            name = "acme"

            def on_failure(self, context):
                return RecoveryOutcome(analysis="acme looked at " + context.batch.batch_id)
        """,
    )
    assert registry.available_strategies()["acme"] == "acme_recovery"
    strategy = registry.get_strategy("acme")
    assert strategy.name == "acme"


def test_plugin_that_fails_to_load_names_plugin_and_package(plugin_path: Path) -> None:
    """A plugin whose import fails becomes one clear error naming it (exit 2)."""
    install_plugin(
        plugin_path,
        "broken_pkg",
        "broken",
        "broken_strategy:Nope",
        "raise ImportError('no')\n",
    )
    with pytest.raises(registry.UnknownStrategy) as caught:
        registry.get_strategy("broken")
    message = str(caught.value)
    assert (
        "'broken'" in message and "broken_pkg" in message and "ImportError" in message
    )
    assert caught.value.exit_code == 2


def test_explicit_registration_wins_over_an_entry_point(plugin_path: Path) -> None:
    """register_strategy() takes precedence over an installed entry point."""
    install_plugin(
        plugin_path,
        "other_pkg",
        "mine",
        "other_strategy:Other",
        "class Other:\n    name = 'x'\n",
    )

    @attrs.frozen
    class Mine:
        name: str = "mine"

        def on_failure(self, context: FailureContext) -> RecoveryOutcome:
            return RecoveryOutcome(analysis="mine")

    registry.register_strategy("mine", Mine)
    assert isinstance(registry.get_strategy("mine"), Mine)


def test_unknown_strategy_lists_the_known_ones() -> None:
    """An unknown name is refused with the names that exist."""
    with pytest.raises(registry.UnknownStrategy, match=r"known: .*noop"):
        registry.get_strategy("does-not-exist")


def test_unknown_strategy_on_the_command_line_writes_nothing(repo: Path) -> None:
    """`run --strategy nope` exits 2 before any store is made."""
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "p",
            "batches": [{"batch_id": "b", "validation": [unit_tests_step()]}],
        },
    )
    done = run_cli("run", "plan.json", "--strategy", "nope", cwd=repo)
    assert done.returncode == 2
    assert "unknown strategy 'nope'" in done.stderr
    assert not (repo / ".recovery").exists()


@attrs.frozen
class Exploding:
    """A strategy with a bug."""

    name: str = "exploding"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        raise RuntimeError("strategy bug")


class Unreachable:
    """A notifier whose channel is down."""

    channel = "pager"

    def notify(self, notification: Notification) -> None:
        raise ConnectionError("pager service unreachable")


class Recording:
    """A notifier that keeps what it was told."""

    channel = "memory"

    def __init__(self) -> None:
        self.received: list[Notification] = []

    def notify(self, notification: Notification) -> None:
        self.received.append(notification)


def test_misbehaving_strategy_and_notifier_lose_no_event(repo: Path) -> None:
    """A strategy that raises and a notifier that cannot deliver are recorded as
    such; the failure, the halt and the working notifier's delivery stand."""
    plan_path = write_plan(
        repo / "plan.json",
        {
            "plan_id": "p",
            "batches": [
                {
                    "batch_id": "b",
                    "actions": [
                        write_file_action(
                            "gen", "app/calc.py", "def add(a, b):\n    return 0\n"
                        )
                    ],
                    "validation": [unit_tests_step()],
                }
            ],
        },
    )
    app = RecoveryApp.open("memory://")
    recording = Recording()
    outcome = Runner(
        app,
        load_plan(plan_path),
        workspace=GitWorkspace(repo, exclude=[plan_path]),
        step_runners=default_step_runners(),
        strategy=Exploding(),
        notifiers=[Unreachable(), recording],
    ).run()
    assert isinstance(outcome, Halted)
    events = app.history(UUID(outcome.run_id))
    (attempted,) = [e for e in events if isinstance(e, Run.RecoveryAttempted)]
    assert attempted.strategy == "exploding"
    assert "RuntimeError: strategy bug" in attempted.outcome["analysis"]
    notified = [e for e in events if isinstance(e, Run.OperatorNotified)]
    assert [(e.channel, e.delivered) for e in notified] == [
        ("pager", False),
        ("memory", True),
    ]
    assert "pager service unreachable" in (notified[0].error or "")
    (note,) = recording.received
    assert note.batch_id == "b"
    assert note.failure.step_id == "post_build_validation.unit_tests"
    assert (note.open.batch_id, note.open.attempt) == ("b", 1)
    assert "retry" in note.open.choices
