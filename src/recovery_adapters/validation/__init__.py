"""Validation step runners: command, syntax and smoke."""

from recovery_adapters.validation.steps import (
    command_step,
    default_step_runners,
    smoke_step,
    syntax_step,
)

__all__ = ["command_step", "default_step_runners", "smoke_step", "syntax_step"]
