"""The exceptions of recovery-core: one root, and a subclass per kind of refusal.

Each class carries the exit code that the command line gives for it, so that
every front end (the CLI, a host application) maps failures the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

__all__ = [
    "CipherKeyError",
    "ConflictError",
    "EnvironmentFailure",
    "IllegalTransition",
    "IntegrityError",
    "PatchRefused",
    "PlanCannotRun",
    "PlanError",
    "RecoveryError",
    "StoreURLError",
    "UnknownBatch",
    "UnknownPoint",
    "UnknownRun",
]


class RecoveryError(Exception):
    """The root of every error that recovery-core raises on purpose."""

    exit_code: ClassVar[int] = 1


class PlanError(RecoveryError, ValueError):
    """A plan file that cannot be used; ``problems`` lists each with its path."""

    exit_code = 2

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid plan {source}:\n{lines}")


class PlanCannotRun(PlanError):
    """A valid plan that cannot run in this workspace as it is: a program that
    cannot be found, a module that does not exist, a lint configuration ruff
    cannot read; ``problems`` lists each with its path in the plan."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__(source, problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        self.args = (f"plan {source} cannot run here:\n{lines}",)


class StoreURLError(RecoveryError, ValueError):
    """A store URL that names no supported store, or names one badly."""

    exit_code = 2


class CipherKeyError(RecoveryError, ValueError):
    """The key of an encrypted store is not a key (16, 24 or 32 bytes in
    base64), or the package that encrypts is not installed."""

    exit_code = 2


class UnknownRun(RecoveryError, LookupError):
    """No run in the store answers to the given id, prefix or name."""

    exit_code = 2


class UnknownBatch(RecoveryError, LookupError):
    """The run's plan has no batch with the given id."""

    exit_code = 2


class UnknownPoint(RecoveryError, LookupError):
    """A point of a run's history that it does not reach: a position past its
    last event, or a time before it started."""

    exit_code = 2


class IllegalTransition(RecoveryError):
    """A command that does not fit the run's state; nothing was written."""

    exit_code = 2


class ConflictError(RecoveryError):
    """Someone else came first: another runner holds the run, or another decision
    was recorded between reading the run and saving ours."""

    exit_code = 5


class IntegrityError(RecoveryError):
    """The stored history does not verify (hash chain or projections)."""

    exit_code = 6


class PatchRefused(RecoveryError):
    """A proposed patch was refused (:meth:`recovery_core.ports.Sandbox.check_patch`);
    ``check`` names the check it failed and ``reason`` says why. Nothing was
    written to the working tree."""

    exit_code = 2

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check
        self.reason = reason


class EnvironmentFailure(RecoveryError):
    """The machine stopped the command: a workspace or store that cannot be
    written (read-only, permissions), a full disk. What was recorded before
    stays; the run can be resumed once the cause is gone."""

    exit_code = 7
