"""Git adapters: the workspace, its snapshots and commits."""

from recovery_adapters.git.workspace import GitWorkspace, WorkspaceError

__all__ = ["GitWorkspace", "WorkspaceError"]
