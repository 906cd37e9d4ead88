"""How the command line wires a runner: its notifiers from ``--notify`` specs
and its step runners, strategy and progress printer. Shared by the commands and
the demo."""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

import attrs

from recovery_adapters.cli.output import ProgressPrinter
from recovery_adapters.git import GitWorkspace
from recovery_adapters.notify.kinds import NOTIFIERS, make_notifier
from recovery_adapters.stores import find_store
from recovery_adapters.strategies.agent import AgentError, split_command
from recovery_adapters.strategies.architect import ArchitectAgentStrategy
from recovery_adapters.usage import UsageError, positive_setting
from recovery_adapters.words import no_runs_text
from recovery_core import (
    ExecutionPlan,
    Notifier,
    RecoveryApp,
    RecoveryStrategy,
    Runner,
    UnknownRun,
    get_strategy,
)

__all__ = [
    "NOTIFIERS",
    "UsageError",
    "make_notifiers",
    "make_runner",
    "make_strategy",
    "open_existing",
    "operator_name",
    "runner_timing",
]


def make_notifiers(specs: Sequence[str]) -> list[Notifier]:
    """Notifiers from ``--notify KIND[:ARG]`` specs (console when none is
    given), each kind found in the registry of the entry point group
    ``recovery_core.notifiers``. Every spec is checked here, before anything is
    written: an unknown kind or a bad argument is a :class:`UsageError`."""
    return [make_notifier(spec) for spec in specs or ["console"]]


def make_runner(
    app: RecoveryApp,
    plan: ExecutionPlan,
    *,
    workspace: GitWorkspace,
    strategy: str | None,
    notifiers: Sequence[Notifier],
    run_id: UUID | None = None,
    agent: str | None = None,
) -> Runner:
    """A runner with the registered step runners, printing its progress."""
    return app.runner(
        plan,
        workspace=workspace,
        strategy=make_strategy(strategy, agent),
        notifiers=notifiers,
        hooks=ProgressPrinter().hooks(),
        run_id=run_id,
        stale_after_s=positive_setting("RECOVERY_STALE_AFTER_S"),
        heartbeat_s=positive_setting("RECOVERY_HEARTBEAT_S"),
    )


def make_strategy(name: str | None, agent: str | None) -> RecoveryStrategy | None:
    """The strategy ``--strategy`` names (None: the workspace's default), with
    the agent command ``--agent`` (which implies ``architect-agent``); a
    :class:`UsageError` for an agent given to another strategy."""
    if agent is not None and name is None:
        name = "architect-agent"
    if name is None:
        return None
    strategy = get_strategy(name)
    if agent is None:
        return strategy
    if not isinstance(strategy, ArchitectAgentStrategy):
        raise UsageError(f"--agent is for the architect-agent strategy, not {name!r}")
    try:
        argv = split_command(agent)
    except AgentError as exc:
        raise UsageError(f"--agent: {exc}") from None
    return attrs.evolve(strategy, agent=tuple(argv))


def runner_timing() -> tuple[float | None, float | None]:
    """A runner's ``stale_after_s`` and ``heartbeat_s``, from the variables
    ``RECOVERY_STALE_AFTER_S`` and ``RECOVERY_HEARTBEAT_S`` (None: the
    defaults); a :class:`UsageError` for a value that is no positive number."""
    return positive_setting("RECOVERY_STALE_AFTER_S"), positive_setting(
        "RECOVERY_HEARTBEAT_S"
    )


def operator_name(explicit: str | None) -> str:
    """``--operator``, else ``RECOVERY_OPERATOR``, else the login name."""
    if explicit:
        return explicit
    from_env = os.environ.get("RECOVERY_OPERATOR")
    if from_env:
        return from_env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def open_existing(args: argparse.Namespace) -> RecoveryApp:
    """The store the command names (``--store``, else found from here), which
    must hold a run; :class:`UnknownRun` (exit 2) naming it otherwise."""
    app = find_store(Path.cwd(), args.store)
    if not app.has_runs():
        raise UnknownRun(no_runs_text(app.store.display, args.store))
    return app
