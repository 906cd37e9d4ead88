"""The console notifier: the failure and the exact commands to decide, on stderr."""

from __future__ import annotations

import sys
from typing import TextIO

import attrs

from recovery_adapters.stores import store_to_name
from recovery_adapters.usage import UsageError
from recovery_adapters.words import (
    host_made_text,
    kept_change_commands,
    next_commands,
    recovery_command,
)
from recovery_core.ports import Notification

__all__ = ["ConsoleNotifier", "console_notifier", "format_notification"]


def format_notification(n: Notification) -> str:
    """The notification as a block of text for the terminal it is printed on,
    its commands as they are typed there (:func:`recovery_command`, and the
    ``--store`` to name from the current folder)."""
    failure = n.failure
    # Typed here: the store to name may differ from the one seen from the
    # workspace (a run started with --workspace from another folder).
    n = attrs.evolve(n, store=store_to_name(n.store, n.workspace))
    lines = [
        "",
        f"== run {n.run_id} halted: batch {n.batch_id} attempt {n.attempt} failed ==",
        f"  plan:      {n.plan_id}",
        f"  step:      {failure.step_id}",
        f"  component: {failure.component or '(unknown)'}",
        f"  error:     {failure.error.splitlines()[0] if failure.error else ''}",
    ]
    output = failure.output_tail or failure.traceback
    if output:
        lines.append("  output (last lines):")
        lines.extend(f"    | {line}" for line in output.splitlines()[-12:])
    # An analysis of several lines (a proposal's checks and pre-validation)
    # keeps its lines under the strategy's.
    analysis = "\n    ".join(n.analysis.splitlines())
    lines.append(f"  strategy {n.strategy}: {analysis}")
    if n.policy_note:
        lines.append(f"  policy: not decided automatically: {n.policy_note}")
    if n.hints:
        lines.append("  the strategy suggests:")
        lines.extend(f"    {h}" for h in n.hints)
    command = recovery_command()
    kept = kept_change_commands(n, command=command)
    if kept is not None:
        # The ref, for those who audit with git itself.
        base = f" (baseline {failure.baseline[:12]})" if failure.baseline else ""
        lines.append(f"  quarantine: {failure.quarantine_ref}{base}")
        lines.append(
            "  look at the change"
            + (", or bring it back into the working tree" if kept.restore else "")
            + ", with:"
        )
        lines.extend(f"    {c}" for c in kept.all)
    if n.made_by_host:
        lines.append(f"  {host_made_text(n.batch_id)}")
    commands = next_commands(n.run_id, n.open, n.store, command=command)
    lines.append("  decide with one of:")
    lines.extend(f"    {c}" for c in commands.decide)
    lines.append("  then carry the decision out with:")
    lines.append(f"    {commands.resume}")
    return "\n".join(lines) + "\n"


class ConsoleNotifier:
    """Writes the notification to a stream (standard error by default)."""

    channel = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def notify(self, notification: Notification) -> None:
        """Prints the failure and the decide commands."""
        stream = self._stream or sys.stderr
        stream.write(format_notification(notification))
        stream.flush()


def console_notifier(arg: str) -> ConsoleNotifier:
    """The ``console`` kind of ``--notify`` (``console`` or ``console:stderr``)."""
    if arg not in ("", "stderr"):
        raise UsageError(f"console writes to stderr only, not {arg!r}")
    return ConsoleNotifier()
