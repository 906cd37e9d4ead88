"""The environment's failures as our errors: what the machine raised (a SQLite
file that is corrupt, truncated or locked; a read-only or full file system)
becomes one :class:`~recovery_core.RecoveryError` that says which, where, and
what holds a lock, with its documented exit code instead of a traceback."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Final

from recovery_adapters.words import recovery_command
from recovery_core import ConflictError, EnvironmentFailure, IntegrityError
from recovery_core.errors import RecoveryError

__all__ = ["as_recovery_error", "lock_holders"]

_ENVIRONMENT_ERRNOS: Final = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is too large for this system's limits",
}


def _after() -> str:
    return (
        "what was recorded before stays; once that is fixed, "
        f"`{recovery_command()} resume` goes on from there"
    )


def lock_holders(path: Path) -> list[str]:
    """The processes of this host (that this user can see) that have ``path``
    (or its ``-wal`` or ``-journal`` file) open, as ``pid N (command)``."""
    wanted = {str(path), f"{path}-wal", f"{path}-journal"}
    found: list[str] = []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():
            continue
        try:
            opened = {str(fd.readlink()) for fd in (entry / "fd").iterdir()}
            if opened & wanted:
                command = (entry / "comm").read_text().strip()
                found.append(f"pid {entry.name} ({command})")
        except OSError:
            continue  # gone, or another user's
    return found


def as_recovery_error(exc: BaseException, store: Path | None) -> RecoveryError | None:
    """Our error for what the environment raised, or None when ``exc`` is not
    an environment failure (a bug). ``store``: the SQLite file in use, if any."""
    found: BaseException | None = exc
    while found is not None:  # eventsourcing wraps sqlite3's errors in its own
        if isinstance(found, sqlite3.Error | OSError):
            return _ours(found, store)
        found = found.__cause__ or found.__context__
    return None


def _ours(exc: BaseException, store: Path | None) -> RecoveryError | None:
    where = f"the store {store}" if store is not None else "the store"
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "locked" in text:
            holders = lock_holders(store) if store is not None else []
            held = f" (held by {', '.join(holders)})" if holders else ""
            return ConflictError(
                f"{where} is locked by another process{held}; nothing was "
                "recorded by this command: try again when it is done"
            )
        if "unable to open" in text:
            return EnvironmentFailure(
                f"{where} cannot be opened: {text} (a read-only folder or file "
                "system, or missing permissions: SQLite writes beside the file even "
                f"to read it); {_after()}"
            )
        return EnvironmentFailure(f"{where} cannot be written: {text}; {_after()}")
    if isinstance(exc, sqlite3.DatabaseError):
        return IntegrityError(
            f"{where} cannot be read: {exc} (a corrupt or truncated SQLite file); "
            "nothing was done: restore it from a copy, or move it away to start "
            "afresh"
        )
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        what = _ENVIRONMENT_ERRNOS[exc.errno]
        name = f" {exc.filename}" if exc.filename else ""
        return EnvironmentFailure(f"cannot write{name}: {what}; {_after()}")
    return None
