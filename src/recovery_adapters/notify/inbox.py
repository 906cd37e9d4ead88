"""The inbox notifier: one JSON object per line, appended to a file that
several runners (processes, or hosts sharing a file system with working
``flock``) may append to at once."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from recovery_adapters.notify.schema import notification_body
from recovery_adapters.usage import UsageError
from recovery_core.ports import Notification

__all__ = ["InboxNotifier", "inbox_notifier"]


class InboxNotifier:
    """Appends each notification to ``path`` as one line of JSON
    (:func:`~recovery_adapters.notify.schema.notification_json`).

    The line is written with one ``write`` to a file opened with ``O_APPEND``,
    under an exclusive ``flock``, then synced: lines from several processes
    never interleave, and a delivered line is on disk. A line left without its
    newline (a writer killed mid-write) gets one first, so that every later
    line stays whole. The parent folders are made as needed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()

    @property
    def channel(self) -> str:
        """``inbox:PATH``."""
        return f"inbox:{self.path}"

    def notify(self, notification: Notification) -> None:
        """Appends the notification's line."""
        line = notification_body(notification) + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if size and _last_byte(self.path, size) != b"\n":
                    line = b"\n" + line
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _last_byte(path: Path, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, 1, size - 1)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    # One write for the whole line; the loop only finishes a short write (a
    # full disk, a signal), still under the lock.
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def inbox_notifier(arg: str) -> InboxNotifier:
    """The ``inbox:PATH`` kind of ``--notify``; a relative path is taken from
    the current directory."""
    if not arg.strip():
        raise UsageError("inbox needs a file: inbox:PATH")
    return InboxNotifier(arg)
