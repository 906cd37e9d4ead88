"""The notification as JSON: one versioned object, the same for the inbox, the
command and the webhook notifiers (docs/reference/notifications.md).

The version rule: within ``recovery-core/notification/1`` fields are only ever
added, never removed, renamed or given another meaning; a change of any other
kind gets a new id (``recovery-core/notification/2``). A reader checks
``schema`` and ignores fields it does not know."""

from __future__ import annotations

import json
from typing import Any, Final

from recovery_adapters.words import kept_change_commands, next_commands, run_json
from recovery_core.ports import Notification
from recovery_core.records import failure_json

__all__ = ["SCHEMA", "notification_body", "notification_id", "notification_json"]

#: The schema's id, the value of every notification's ``schema`` field.
SCHEMA: Final = "recovery-core/notification/1"


def notification_id(n: Notification) -> str:
    """``RUN/BATCH/ATTEMPT``: the same for every delivery of the notification of
    one failure (a runner that was killed before it recorded a delivery notifies
    again), so that a receiver can drop a repeat."""
    return f"{n.run_id}/{n.batch_id}/{n.attempt}"


def notification_json(n: Notification) -> dict[str, Any]:
    """The notification as the JSON object of :data:`SCHEMA`."""
    commands = next_commands(n.run_id, n.open, n.store)
    kept = kept_change_commands(n)
    recorded = n.open.recorded
    return {
        "schema": SCHEMA,
        "id": notification_id(n),
        "event": "run_halted",
        "run_id": n.run_id,
        "plan_id": n.plan_id,
        "workspace": n.workspace,
        "store": n.store,
        "batch_id": n.batch_id,
        "attempt": n.attempt,
        "failure": failure_json(n.failure),
        "quarantine_ref": n.failure.quarantine_ref,
        "failure_log_entry": None
        if n.failure_log_entry is None
        else n.failure_log_entry.as_json(),
        "open_decision": {
            "batch_id": n.open.batch_id,
            "attempt": n.open.attempt,
            "decisions": list(n.open.choices),
            "recorded": None
            if recorded is None
            else {
                "decision": recorded.decision,
                "operator": recorded.operator,
                "reason": recorded.reason,
                "decided_by": recorded.decided_by,
                "rule": recorded.rule,
            },
        },
        "strategy": n.strategy,
        "analysis": n.analysis,
        "hints": list(n.hints),
        "policy_note": n.policy_note,
        "made_by_host": n.made_by_host,
        "next_commands": {
            "decide": list(commands.decide),
            "resume": commands.resume,
            "show": None if kept is None else kept.show,
            "restore": None if kept is None else kept.restore,
        },
        "run": None if n.view is None else run_json(n.view, n.store),
    }


def notification_body(n: Notification) -> bytes:
    """:func:`notification_json` as UTF-8 JSON on one line (no newline): the
    exact bytes a command reads, a webhook posts and signs, and an inbox line
    holds."""
    text = json.dumps(notification_json(n), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")
