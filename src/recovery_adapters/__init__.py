"""recovery-core's adapters: everything that touches the outside world (git,
processes, consoles), and the ``recovery`` command line."""

from recovery_adapters.git import GitWorkspace, WorkspaceError
from recovery_adapters.notify import (
    AppriseNotifier,
    CommandNotifier,
    ConsoleNotifier,
    InboxNotifier,
    WebhookNotifier,
    notification_json,
)
from recovery_adapters.strategies import (
    ArchitectAgentStrategy,
    ManualGitStrategy,
    architect_agent,
    manual_git,
)
from recovery_adapters.validation import (
    command_step,
    default_step_runners,
    lint_step,
    smoke_step,
    surface_step,
    syntax_step,
)

__all__ = [
    "AppriseNotifier",
    "ArchitectAgentStrategy",
    "CommandNotifier",
    "ConsoleNotifier",
    "GitWorkspace",
    "InboxNotifier",
    "ManualGitStrategy",
    "WebhookNotifier",
    "WorkspaceError",
    "architect_agent",
    "command_step",
    "default_step_runners",
    "lint_step",
    "manual_git",
    "notification_json",
    "smoke_step",
    "surface_step",
    "syntax_step",
]
