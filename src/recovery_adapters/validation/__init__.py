"""Validation step runners: command, syntax, lint, surface and smoke."""

from recovery_adapters.validation.lint import lint_step
from recovery_adapters.validation.steps import (
    command_step,
    default_step_runners,
    smoke_step,
    syntax_step,
)
from recovery_adapters.validation.surface import surface_step

__all__ = [
    "command_step",
    "default_step_runners",
    "lint_step",
    "smoke_step",
    "surface_step",
    "syntax_step",
]
