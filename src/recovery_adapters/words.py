"""Words for people and JSON for programs, made from the structured state the
core returns: the ``recovery`` commands an operator may run now (deciding,
resuming, and looking at or bringing back a failed attempt's quarantined
change), and the run as ``recovery status --json`` prints it. Shared by the command line and the
notifiers; nothing here is parsed back."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import attrs

from recovery_core.ports import Notification
from recovery_core.records import OpenDecision, RunView, failure_json

__all__ = [
    "ChangeCommands",
    "NextCommands",
    "change_commands",
    "host_made_text",
    "kept_change_commands",
    "next_commands",
    "no_runs_text",
    "recovery_command",
    "run_json",
]

#: The command's name, as a hint names it when PATH finds this installation's.
COMMAND = "recovery"


def recovery_command() -> str:
    """The ``recovery`` command as a user types it here, for hints that print
    commands: ``recovery`` when PATH finds this installation's (or finds one and
    this installation has no script), else the full path of the script beside
    this interpreter (a virtual environment that is not activated), else
    ``python -m recovery_adapters.cli`` with this interpreter's path. Quoted for
    a POSIX shell."""
    script = Path(sys.executable).parent / COMMAND
    ours = script if script.is_file() and os.access(script, os.X_OK) else None
    found = shutil.which(COMMAND)
    if found is not None and (ours is None or Path(found).resolve() == ours.resolve()):
        return COMMAND
    if ours is not None:
        return shlex.quote(str(ours))
    return f"{shlex.quote(sys.executable)} -m recovery_adapters.cli"


def no_runs_text(where: object, store: str | None = None, why: str = "") -> str:
    """What to say where no run was recorded yet: ``where`` (a folder or a
    store), ``why`` (in words, after it), and the command that starts a run
    (naming ``store``, the ``--store`` given, when there is one)."""
    store_arg = f" --store {shlex.quote(store)}" if store else ""
    return (
        f"no runs yet in {where}{why}: start one with "
        f"`{recovery_command()} run PLAN{store_arg}`"
    )


@attrs.frozen
class NextCommands:
    """What an operator may run now: one ``recovery decide`` per decision that
    may be taken, and the ``recovery resume`` that carries a decision out."""

    decide: tuple[str, ...]
    resume: str

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.decide, self.resume)


def next_commands(
    run_id: str,
    open_now: OpenDecision,
    store: str | None = None,
    *,
    command: str = COMMAND,
) -> NextCommands:
    """The commands for the decision open now; ``store`` is the ``--store`` to
    name when the commands would not find the store by themselves, ``command``
    how to call ``recovery`` (:func:`recovery_command` for a hint printed here;
    the bare name for a notification read elsewhere)."""
    store_arg = f" --store {shlex.quote(store)}" if store else ""
    decide = tuple(
        f"{command} decide{store_arg} {run_id} {open_now.batch_id} {choice}"
        for choice in open_now.choices
    )
    return NextCommands(decide, f"{command} resume{store_arg} {run_id}")


@attrs.frozen
class ChangeCommands:
    """What an operator may run about one failed attempt's quarantined change:
    ``recovery show``, which prints it as a diff, and ``recovery restore``,
    which brings it back into the working tree (None when the attempt changed
    no file: there is nothing to bring back)."""

    show: str
    restore: str | None

    @property
    def all(self) -> tuple[str, ...]:
        return (self.show, *((self.restore,) if self.restore else ()))


def change_commands(
    run_id: str,
    batch_id: str,
    attempt: int,
    store: str | None = None,
    *,
    changed: bool = True,
    command: str = COMMAND,
) -> ChangeCommands:
    """The ``show`` and ``restore`` commands of ``attempt`` of the batch, the
    attempt named (a later attempt may fail too); ``changed``: whether it
    changed a file; ``store`` and ``command`` as for :func:`next_commands`."""
    store_arg = f" --store {shlex.quote(store)}" if store else ""
    which = f"{run_id} {batch_id} --attempt {attempt}"
    return ChangeCommands(
        show=f"{command} show{store_arg} {which}",
        restore=f"{command} restore{store_arg} {which}" if changed else None,
    )


def kept_change_commands(
    n: Notification, *, command: str = COMMAND
) -> ChangeCommands | None:
    """:func:`change_commands` for the failed attempt a notification is about;
    None when its change was not quarantined (a strategy such as ``noop``
    leaves it in the working tree)."""
    failure = n.failure
    if failure.quarantine_ref is None:
        return None
    return change_commands(
        n.run_id,
        n.batch_id,
        n.attempt,
        n.store,
        changed=bool(failure.changed_files),
        command=command,
    )


def host_made_text(batch_id: str, retry_recorded: bool = False) -> str:
    """What to do about a failed batch that the host application makes (it has
    no actions): nothing here would remake its change."""
    head = f"batch {batch_id} is made by the host application"
    if retry_recorded:
        return (
            f"{head}: the retry decided for it is carried out by the host, in its "
            f"`with runner.batch({batch_id!r})` block; resuming here would only "
            "validate a change nobody made again"
        )
    return (
        f"{head}: retry it from the host (decide retry, then run its "
        f"`with runner.batch({batch_id!r})` block again), or decide skip or abort here"
    )


def run_json(
    view: RunView, store: str | None = None, *, command: str = COMMAND
) -> dict[str, Any]:
    """The run as the JSON object ``recovery status --json`` prints
    (``command``: as for :func:`next_commands`)."""
    open_now = view.open_decision
    return {
        "run_id": view.run_id,
        "plan_id": view.plan_id,
        "state": view.state,
        "workspace": view.workspace,
        "store": view.store,
        "started_at": view.started_at,
        "version": view.version,
        "head_digest": view.head_digest,
        "awaiting_decision": None
        if view.awaiting is None
        else {"batch_id": view.awaiting[0], "attempt": view.awaiting[1]},
        "decision": None if view.decision is None else attrs.asdict(view.decision),
        "strategy": view.strategy,
        "strategy_package": view.strategy_package,
        "strategy_version": view.strategy_version,
        "abort_reason": view.abort_reason,
        "runner": None if view.claim is None else attrs.asdict(view.claim),
        "batches": [
            {
                "batch_id": b.batch_id,
                "status": b.status,
                "verified": b.verified,
                "attempts": b.attempts,
                "failure_reason": b.failure_reason,
                "commit": b.commit,
                "uncommitted_reason": b.uncommitted_reason,
                "baseline": b.baseline,
                "flaky_steps": list(b.flaky),
                "failure": None if b.failure is None else failure_json(b.failure),
                "policy_retries": b.policy_retries,
                "policy_recovers": b.policy_recovers,
                "policy_note": b.policy_note,
            }
            for b in view.batches
        ],
        "next_commands": []
        if open_now is None
        else list(next_commands(view.run_id, open_now, store, command=command).all),
    }
