"""The ``example`` notifier kind: ``--notify example:PATH`` appends one line
per halt to the file at PATH."""

from __future__ import annotations

import os
from pathlib import Path

from recovery_core import Notification


class ExampleNotifier:
    """Appends ``RUN BATCH ATTEMPT STRATEGY: ANALYSIS`` to a file; a file that
    cannot be written raises (the delivery failed)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def channel(self) -> str:
        """``example:PATH``."""
        return f"example:{self.path}"

    def notify(self, notification: Notification) -> None:
        """Appends the notification's line."""
        analysis = " ".join(notification.analysis.split())
        line = (
            f"{notification.run_id} {notification.batch_id} "
            f"{notification.attempt} {notification.strategy}: {analysis}\n"
        )
        with self.path.open("a", encoding="utf-8") as inbox:
            inbox.write(line)


def example_notifier(arg: str) -> ExampleNotifier:
    """The ``example:PATH`` kind of ``--notify``."""
    if not arg.strip():
        raise ValueError("example needs a file: example:PATH")
    return ExampleNotifier(arg)
