"""The command notifier: a program of the operator's, given the notification
as JSON on its standard input."""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from recovery_adapters.notify.schema import SCHEMA, notification_body
from recovery_adapters.usage import UsageError
from recovery_adapters.validation.process import output_tail, run_process
from recovery_core.ports import Notification

__all__ = ["COMMAND_TIMEOUT_S", "CommandNotifier", "command_notifier"]

#: How long a notifier command may run before its process group is ended.
COMMAND_TIMEOUT_S: Final = 30.0


class CommandNotifier:
    """Runs ``argv`` (never through a shell) in its own process group, in the
    current directory, with the notification's JSON on standard input and
    ``RECOVERY_NOTIFICATION_SCHEMA`` in its environment. Exit 0 means
    delivered; any other exit, or running past ``timeout_s`` (the whole group
    is then ended: SIGTERM, then SIGKILL), raises an error that names the
    command and ends with its output's last lines."""

    def __init__(
        self, argv: Sequence[str], *, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> None:
        if not argv:
            raise UsageError("command needs a program: command:ARGV")
        self.argv = tuple(argv)
        self.timeout_s = timeout_s

    @property
    def channel(self) -> str:
        """``command:PROGRAM``."""
        return f"command:{self.argv[0]}"

    def notify(self, notification: Notification) -> None:
        """Runs the command; raises unless it exits 0 in time."""
        with tempfile.TemporaryDirectory(prefix="recovery-notify-") as folder:
            stdin = Path(folder) / "notification.json"
            stdin.write_bytes(notification_body(notification) + b"\n")
            done = run_process(
                self.argv,
                cwd=Path.cwd(),
                timeout_s=self.timeout_s,
                env={"RECOVERY_NOTIFICATION_SCHEMA": SCHEMA},
                stdin=stdin,
            )
        command = shlex.join(self.argv)
        tail = output_tail(done.output, lines=10, chars=1000)
        said = f"; its output ends:\n{tail}" if tail else ""
        if done.timed_out:
            raise RuntimeError(
                f"notifier command {command} timed out after {self.timeout_s:g} s; "
                f"its process group was ended with {done.ended_by or 'SIGTERM'}" + said
            )
        if done.exit_code != 0:
            raise RuntimeError(
                f"notifier command {command} exited {done.exit_code}" + said
            )


def command_notifier(arg: str) -> CommandNotifier:
    """The ``command:ARGV`` kind of ``--notify``: ARGV split as a shell would
    (:func:`shlex.split`), never run through one."""
    try:
        argv = shlex.split(arg)
    except ValueError as exc:
        raise UsageError(f"command {arg!r} cannot be split: {exc}") from exc
    return CommandNotifier(argv)
