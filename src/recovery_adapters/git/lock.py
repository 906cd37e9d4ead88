"""One live runner per workspace: an advisory lock (``flock``) on a file in the
work tree's git folder, whatever plan or run the runner drives.

The kernel releases the lock when its holder's process ends, however it ends,
so a lock left by a dead runner is simply taken by the next one; two runners
started at the same instant cannot both get it. The file says who holds it
(run, plan, host, process), so that the one refused can name the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

from recovery_core.errors import ConflictError

__all__ = ["LOCK_NAME", "WorkspaceInUse", "WorkspaceLock"]

#: The lock's file, in the work tree's git folder (never in the working tree,
#: where it would be a change; per work tree, so linked worktrees are separate).
LOCK_NAME: Final = "recovery-runner"


class WorkspaceInUse(ConflictError):
    """Another live runner holds the workspace; nothing was changed."""


class WorkspaceLock:
    """The lock of the workspace whose git folder is ``git_dir``; re-entrant
    for the object that holds it."""

    def __init__(self, git_dir: Path, root: Path) -> None:
        self._path = git_dir / LOCK_NAME
        self._root = root
        self._fd: int | None = None
        self._depth = 0

    @contextlib.contextmanager
    def hold(self, holder: Mapping[str, str]) -> Iterator[None]:
        """Holds the lock in the block (saying ``holder`` holds it); raises
        :class:`WorkspaceInUse`, naming the holder, when another has it."""
        if self._fd is None:
            self._fd = self._acquire()
        self._depth += 1
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(dict(holder), sort_keys=True).encode(), 0)
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.release()

    def release(self) -> None:
        fd, self._fd = self._fd, None
        self._depth = 0
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the lock

    def _acquire(self) -> int:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise WorkspaceInUse(
                f"the workspace {self._root} is in use by another runner"
                f"{holder}; wait for it to stop, or stop it"
            ) from None
        except OSError:
            os.close(fd)
            raise
        return fd


def _holder(fd: int) -> str:
    """Who the lock file says holds it: `` (run R, plan P, host H, process N)``."""
    try:
        holder = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (OSError, ValueError):
        holder = None
    if not isinstance(holder, dict):
        return ""
    labels = {"run": "run", "plan": "plan", "host": "host", "pid": "process"}
    parts = [
        f"{label} {holder[key]}" for key, label in labels.items() if holder.get(key)
    ]
    return f" ({', '.join(parts)})" if parts else ""
