"""In-memory fakes of the ports, for tests that drive a Runner without git,
processes, files or a clock.

:class:`MemoryWorkspace` is the workspace of ``tests/test_core_purity.py`` (whose
script keeps its own copy: it runs in a child interpreter), typed, and with a
record of what it was asked to commit. The others keep what they are given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from recovery_core import Committed, Notification, Quarantine
from recovery_core.ports import ProjectionUpdate

__all__ = [
    "CommitCall",
    "FakeHost",
    "KeepingProjection",
    "MemoryWorkspace",
    "RaisingProjection",
    "RecordingNotifier",
]


@attrs.frozen
class CommitCall:
    """One call of :meth:`MemoryWorkspace.commit`: what it was asked to commit,
    the files' contents at that moment, and the commit id it answered."""

    baseline: str | None
    files: tuple[str, ...]
    message: str
    trailers: Mapping[str, str]
    contents: Mapping[str, str | None]
    commit: str


class MemoryWorkspace:
    """A workspace kept in memory: ``files`` maps a relative path to its text;
    a snapshot is a copy of them. Nothing is ever off limits (``check`` finds
    nothing), and ``commit`` always commits, recording the call in ``commits``."""

    def __init__(self, root: Path = Path("/nowhere/workspace")) -> None:
        self._root = root
        self.files: dict[str, str] = {}
        self.snapshots: dict[str, dict[str, str]] = {}
        self.commits: list[CommitCall] = []
        self.ignored: list[Path] = []
        self.holders: list[dict[str, str]] = []

    @property
    def root(self) -> Path:
        return self._root

    def ignore(self, path: Path) -> None:
        self.ignored.append(path)

    @contextlib.contextmanager
    def locked(self, holder: Mapping[str, str]) -> Iterator[None]:
        self.holders.append(dict(holder))
        yield

    def prepare(self, *, commits: bool = False) -> None:
        pass

    def check(self, baseline: str | None) -> tuple[str, ...]:
        return ()

    def snapshot(self, *, run_id: str, batch_id: str, attempt: int) -> str | None:
        name = f"snap-{len(self.snapshots)}"
        self.snapshots[name] = dict(self.files)
        return name

    def changed_files(self, baseline: str | None) -> tuple[str, ...]:
        was = self.snapshots.get(baseline, {}) if baseline is not None else {}
        paths = {*was, *self.files}
        return tuple(sorted(p for p in paths if was.get(p) != self.files.get(p)))

    def read(self, snapshot: str, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        kept = self.snapshots[snapshot]
        return {
            p: None if kept.get(p) is None else kept[p].encode("utf-8") for p in paths
        }

    def quarantine(
        self, *, run_id: str, batch_id: str, attempt: int, baseline: str
    ) -> Quarantine:
        files = self.changed_files(baseline)
        self.restore(baseline, files)
        return Quarantine(ref=f"mem/{batch_id}/{attempt}", files=files, tree_id="t")

    def restore(self, baseline: str, files: Sequence[str]) -> None:
        was = self.snapshots[baseline]
        for path in files:
            if path in was:
                self.files[path] = was[path]
            else:
                self.files.pop(path, None)

    def commit(
        self,
        *,
        baseline: str | None,
        files: Sequence[str],
        message: str,
        trailers: Mapping[str, str],
    ) -> Committed:
        commit = f"{len(self.commits) + 1:040x}"
        self.commits.append(
            CommitCall(
                baseline=baseline,
                files=tuple(files),
                message=message,
                trailers=dict(trailers),
                contents={f: self.files.get(f) for f in files},
                commit=commit,
            )
        )
        return Committed(commit=commit)


class RecordingNotifier:
    """Keeps every notification; with ``fail``, raises after keeping it (the
    delivery failed)."""

    def __init__(self, channel: str = "inbox", *, fail: bool = False) -> None:
        self._channel = channel
        self.fail = fail
        self.got: list[Notification] = []

    @property
    def channel(self) -> str:
        return self._channel

    def notify(self, notification: Notification) -> None:
        self.got.append(notification)
        if self.fail:
            raise RuntimeError("the inbox is down")


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


class FakeHost:
    """A runner host: ``host`` and ``pid`` are who this runner is; a runner is
    alive unless its ``(host, pid)`` is in ``dead`` (a set the hosts of one test
    may share). It never waits: ``sleep`` fails the test."""

    def __init__(
        self,
        pid: int,
        *,
        host: str = "test-host",
        dead: set[tuple[str, int]] | None = None,
    ) -> None:
        self._host = host
        self._pid = pid
        self.dead: set[tuple[str, int]] = set() if dead is None else dead

    @property
    def host(self) -> str:
        return self._host

    @property
    def pid(self) -> int:
        return self._pid

    def alive(self, host: str, pid: int) -> bool:
        return (host, pid) not in self.dead

    def sleep(self, seconds: float) -> None:
        raise AssertionError(f"a runner waited {seconds}s; no test runner may")
