"""Recovery strategies that touch the outside world."""

from recovery_adapters.strategies.manual_git import ManualGitStrategy, manual_git

__all__ = ["ManualGitStrategy", "manual_git"]
