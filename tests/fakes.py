"""In-memory fakes of the ports, for tests that drive a Runner without git,
processes, files or a clock.

The workspace, notifier and host are the public kit's
(:mod:`recovery_core.testing`), so that the tests use what integrators get;
the projections here are the tests' own.
"""

from __future__ import annotations

from recovery_core.ports import ProjectionUpdate
from recovery_core.testing import (
    CommitCall,
    FakeHost,
    MemoryWorkspace,
    RecordingNotifier,
)

__all__ = [
    "CommitCall",
    "FakeHost",
    "KeepingProjection",
    "MemoryWorkspace",
    "RaisingProjection",
    "RecordingNotifier",
]


class KeepingProjection:
    """Keeps every update it is given."""

    def __init__(self, name: str = "memory") -> None:
        self._name = name
        self.updates: list[ProjectionUpdate] = []

    @property
    def name(self) -> str:
        return self._name

    def project(self, update: ProjectionUpdate) -> None:
        self.updates.append(update)

    @property
    def last_failure_log(self) -> ProjectionUpdate | None:
        """The last update that carried the failure log."""
        return next(
            (u for u in reversed(self.updates) if u.failure_log is not None), None
        )


class RaisingProjection:
    """A projection that can never be written: it counts the tries and raises."""

    def __init__(self, name: str = "the broken projection") -> None:
        self._name = name
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    def project(self, update: ProjectionUpdate) -> None:
        self.calls += 1
        raise OSError("disk full")
