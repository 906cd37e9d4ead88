"""The console notifier: the failure and the exact commands to decide, on stderr."""

from __future__ import annotations

import sys
from typing import TextIO

from recovery_adapters.usage import UsageError
from recovery_adapters.words import host_made_text, next_commands, recovery_command
from recovery_core.ports import Notification

__all__ = ["ConsoleNotifier", "console_notifier", "format_notification"]


def format_notification(n: Notification) -> str:
    """The notification as a block of text for a terminal."""
    failure = n.failure
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
    lines.append(f"  strategy {n.strategy}: {n.analysis}")
    if n.policy_note:
        lines.append(f"  policy: not decided automatically: {n.policy_note}")
    if n.hints:
        lines.append("  look at the change, or bring it back, with:")
        lines.extend(f"    {h}" for h in n.hints)
    if n.made_by_host:
        lines.append(f"  {host_made_text(n.batch_id)}")
    commands = next_commands(n.run_id, n.open, n.store, command=recovery_command())
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
