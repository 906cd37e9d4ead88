"""The error of a command line (or a ``--notify`` spec) that asks for something
that cannot be done; the command line and the notifiers share it."""

from __future__ import annotations

import os

from recovery_core import RecoveryError

__all__ = ["UsageError", "positive_setting"]


class UsageError(RecoveryError):
    """A command line that asks for something that cannot be done."""

    exit_code = 2


def positive_setting(name: str) -> float | None:
    """The positive number the environment variable ``name`` holds (None when
    it is not set); a :class:`UsageError` naming it for anything else."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise UsageError(f"{name}={value!r}: a number above 0 is needed")
    return number
