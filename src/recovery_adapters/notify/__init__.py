"""Notifiers: how operators hear that a run halted (console, inbox, command,
webhook, apprise), and the notification's versioned JSON."""

from recovery_adapters.notify.apprise_notifier import AppriseNotifier
from recovery_adapters.notify.command import CommandNotifier
from recovery_adapters.notify.console import ConsoleNotifier
from recovery_adapters.notify.inbox import InboxNotifier
from recovery_adapters.notify.schema import SCHEMA, notification_json
from recovery_adapters.notify.webhook import WebhookNotifier

__all__ = [
    "SCHEMA",
    "AppriseNotifier",
    "CommandNotifier",
    "ConsoleNotifier",
    "InboxNotifier",
    "WebhookNotifier",
    "notification_json",
]
