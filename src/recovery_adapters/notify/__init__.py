"""Notifiers: how operators hear that a run halted."""

from recovery_adapters.notify.console import ConsoleNotifier

__all__ = ["ConsoleNotifier"]
