"""The error of a command line (or a ``--notify`` spec) that asks for something
that cannot be done; the command line and the notifiers share it."""

from __future__ import annotations

from recovery_core import RecoveryError

__all__ = ["UsageError"]


class UsageError(RecoveryError):
    """A command line that asks for something that cannot be done."""

    exit_code = 2
