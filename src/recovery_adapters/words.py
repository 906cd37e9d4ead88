"""Words for people and JSON for programs, made from the structured state the
core returns: the ``recovery`` commands an operator may run now, and the run as
``recovery status --json`` prints it. Shared by the command line and the
notifiers; nothing here is parsed back."""

from __future__ import annotations

import shlex
from typing import Any

import attrs

from recovery_core.records import OpenDecision, RunView, failure_json

__all__ = ["NextCommands", "host_made_text", "next_commands", "run_json"]


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
    run_id: str, open_now: OpenDecision, store: str | None = None
) -> NextCommands:
    """The commands for the decision open now; ``store`` is the ``--store`` to
    name when the commands would not find the store by themselves."""
    store_arg = f" --store {shlex.quote(store)}" if store else ""
    decide = tuple(
        f"recovery decide{store_arg} {run_id} {open_now.batch_id} {choice}"
        for choice in open_now.choices
    )
    return NextCommands(decide, f"recovery resume{store_arg} {run_id}")


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


def run_json(view: RunView, store: str | None = None) -> dict[str, Any]:
    """The run as the JSON object ``recovery status --json`` prints."""
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
            }
            for b in view.batches
        ],
        "next_commands": []
        if open_now is None
        else list(next_commands(view.run_id, open_now, store).all),
    }
