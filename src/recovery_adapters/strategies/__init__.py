"""Recovery strategies that touch the outside world."""

from recovery_adapters.strategies.architect import (
    ArchitectAgentStrategy,
    architect_agent,
)
from recovery_adapters.strategies.manual_git import ManualGitStrategy, manual_git

__all__ = [
    "ArchitectAgentStrategy",
    "ManualGitStrategy",
    "architect_agent",
    "manual_git",
]
