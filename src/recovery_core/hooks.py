"""Hooks: plain callables a host passes to a runner to hear what happens.

Each hook is optional and typed by a Protocol, so any function or callable
object of the right shape will do. A hook is called only after the events it
reports are saved; a hook that raises is logged (logger ``recovery_core.hooks``)
and reported to the other hooks' ``on_note``, and never stops the run or loses an
event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import attrs

from recovery_core.ports import StepOutcome
from recovery_core.records import DecisionView, Failure, OpenDecision

__all__ = [
    "BatchEnd",
    "BatchStart",
    "FailureReport",
    "Hooks",
    "OnBatchEnd",
    "OnBatchStart",
    "OnDecision",
    "OnFailure",
    "OnNote",
    "OnStepResult",
    "OnStepStart",
    "StepResult",
    "StepStart",
    "call_hooks",
]

logger = logging.getLogger("recovery_core.hooks")


@attrs.frozen
class BatchStart:
    """An attempt at a batch began."""

    run_id: str
    batch_id: str
    attempt: int
    index: int
    total: int
    description: str


@attrs.frozen
class StepStart:
    """A step (or action) began."""

    run_id: str
    batch_id: str
    attempt: int
    phase: str
    step: str


@attrs.frozen
class StepResult:
    """A step (or action) ended, passed or failed."""

    run_id: str
    batch_id: str
    attempt: int
    phase: str
    step: str
    outcome: StepOutcome


@attrs.frozen
class BatchEnd:
    """An attempt ended: ``verified`` or ``failed``."""

    run_id: str
    batch_id: str
    attempt: int
    status: str
    duration_s: float


@attrs.frozen
class FailureReport:
    """A failure, recorded, answered by the strategy, and notified."""

    run_id: str
    failure: Failure
    analysis: str
    decisions: tuple[str, ...]
    open: OpenDecision


class OnBatchStart(Protocol):
    """Called when an attempt at a batch begins."""

    def __call__(self, event: BatchStart, /) -> None: ...


class OnStepStart(Protocol):
    """Called when a step or action begins."""

    def __call__(self, event: StepStart, /) -> None: ...


class OnStepResult(Protocol):
    """Called when a step or action ends."""

    def __call__(self, event: StepResult, /) -> None: ...


class OnBatchEnd(Protocol):
    """Called when an attempt ends."""

    def __call__(self, event: BatchEnd, /) -> None: ...


class OnFailure(Protocol):
    """Called when a failure has been recorded, answered and notified."""

    def __call__(self, event: FailureReport, /) -> None: ...


class OnDecision(Protocol):
    """Called when the runner carries out an operator's decision."""

    def __call__(self, decision: DecisionView, /) -> None: ...


class OnNote(Protocol):
    """Called with anything else worth saying (a projection not written, a hook
    that raised)."""

    def __call__(self, message: str, /) -> None: ...


@attrs.frozen
class Hooks:
    """A set of hooks; leave out the ones you do not need."""

    on_batch_start: OnBatchStart | None = None
    on_step_start: OnStepStart | None = None
    on_step_result: OnStepResult | None = None
    on_batch_end: OnBatchEnd | None = None
    on_failure: OnFailure | None = None
    on_decision: OnDecision | None = None
    on_note: OnNote | None = None


def call_hooks(hooks: Sequence[Hooks], name: str, event: object) -> None:
    """Calls hook ``name`` of each set with ``event``; a hook that raises is logged
    and reported through ``on_note``, and the others still run."""
    for hook_set in hooks:
        hook = getattr(hook_set, name)
        if hook is None:
            continue
        try:
            hook(event)
        except Exception as exc:
            logger.exception("hook %s raised", name)
            if name != "on_note":
                call_hooks(
                    hooks, "on_note", f"hook {name} raised {type(exc).__name__}: {exc}"
                )
