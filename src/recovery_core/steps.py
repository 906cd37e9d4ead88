"""Step kinds: the registry of step runners, by kind.

The runners of the built-in kinds live in :mod:`recovery_adapters` (they run
processes) and are registered through this project's own entry points, group
``recovery_core.steps``; plugins add kinds the same way, or a host registers
one with :func:`register_step_kind`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from recovery_core.registry import Registry

if TYPE_CHECKING:  # the plan and the ports need the kinds, not the other way round
    from recovery_core.ports import StepRunner

__all__ = [
    "BUILTIN_STEP_KINDS",
    "ENTRY_POINT_GROUP",
    "STEP_KINDS",
    "known_step_kinds",
    "register_step_kind",
    "step_runners",
]

ENTRY_POINT_GROUP: Final = "recovery_core.steps"

#: The kinds the design names; their runners come from recovery_adapters.
BUILTIN_STEP_KINDS: Final = frozenset({"command", "lint", "smoke", "surface", "syntax"})

#: The step runners by kind.
STEP_KINDS: Final[Registry[StepRunner]] = Registry(
    "step kind", ENTRY_POINT_GROUP, check=callable
)


def register_step_kind(kind: str, runner: StepRunner) -> None:
    """Registers ``runner`` for steps of ``kind``."""
    STEP_KINDS.register(kind, runner)


def known_step_kinds() -> frozenset[str]:
    """The kinds a plan may use: the design's, and every registered one."""
    return BUILTIN_STEP_KINDS | frozenset(STEP_KINDS.names())


def step_runners() -> Mapping[str, StepRunner]:
    """Every registered step runner, loaded, by kind."""
    return STEP_KINDS.all()
