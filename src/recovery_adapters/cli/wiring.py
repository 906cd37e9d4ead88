"""How the command line wires a runner: its notifiers from ``--notify`` specs
and its step runners, strategy and progress printer. Shared by the commands and
the demo."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from recovery_adapters.cli.output import ProgressPrinter
from recovery_adapters.git import GitWorkspace
from recovery_adapters.notify import ConsoleNotifier
from recovery_core import (
    ExecutionPlan,
    Notifier,
    RecoveryApp,
    RecoveryError,
    Runner,
    get_strategy,
)

__all__ = ["NOTIFIER_KINDS", "UsageError", "make_notifiers", "make_runner"]

NOTIFIER_KINDS = ("console",)


class UsageError(RecoveryError):
    """A command line that asks for something that cannot be done."""

    exit_code = 2


def make_notifiers(specs: Sequence[str]) -> list[Notifier]:
    """Notifiers from ``--notify`` specs; console when none is given."""
    notifiers: list[Notifier] = []
    for spec in specs or ["console"]:
        kind, _, _arg = spec.partition(":")
        if kind == "console":
            notifiers.append(ConsoleNotifier())
        else:
            raise UsageError(
                f"--notify {spec!r}: unknown notifier {kind!r} "
                f"(available: {', '.join(NOTIFIER_KINDS)})"
            )
    return notifiers


def make_runner(
    app: RecoveryApp,
    plan: ExecutionPlan,
    *,
    workspace: GitWorkspace,
    strategy: str | None,
    notifiers: Sequence[Notifier],
    run_id: UUID | None = None,
) -> Runner:
    """A runner with the registered step runners, printing its progress."""
    return app.runner(
        plan,
        workspace=workspace,
        strategy=None if strategy is None else get_strategy(strategy),
        notifiers=notifiers,
        hooks=ProgressPrinter().hooks(),
        run_id=run_id,
    )
