"""The submodules checked out in a work tree, each a workspace of its own.

A submodule's files are another repository's: the superproject's snapshot
holds only the commit a submodule is at, so what a batch changed inside one
(an edit, a new file, a commit of its own) would be neither seen, quarantined
nor put back. So each submodule that is checked out (a path ``.gitmodules``
lists, or another gitlink of the user's index, holding a repository whose
top it is) is snapshotted, checked,
quarantined and restored as a workspace of its own, with the same ref names
in its own repository. The superproject's snapshot names the submodules'
(``Recovery-Submodule: <commit> <path>`` lines in its message), so that
another process finds them. A verified batch's change inside a submodule is
not committed: it stays in the submodule's working tree, for the user to
commit there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from recovery_adapters.git.command import OBJECT_ID
from recovery_core.ports import Quarantine

if TYPE_CHECKING:
    from recovery_adapters.git.kept import KeptChanges

__all__ = [
    "SubWorkspace",
    "Submodules",
    "files_inside",
    "in_submodule",
    "parse_submodule_lines",
    "submodule_lines",
]

_LINE: Final = "Recovery-Submodule: "


class SubWorkspace(Protocol):
    """What a submodule's workspace is asked (a GitWorkspace's methods)."""

    kept: KeptChanges

    def sweep(self) -> None: ...
    def snapshot(self, *, run_id: str, batch_id: str, attempt: int) -> str: ...
    def changed_files(self, baseline: str | None) -> tuple[str, ...]: ...
    def check(self, baseline: str | None) -> tuple[str, ...]: ...
    def read(self, snapshot: str, paths: Sequence[str]) -> dict[str, bytes | None]: ...
    def quarantine(
        self, *, run_id: str, batch_id: str, attempt: int, baseline: str
    ) -> Quarantine: ...
    def restore(self, baseline: str, files: Sequence[str]) -> None: ...
    def close(self) -> None: ...


def submodule_lines(commits: Mapping[str, str]) -> str:
    """The lines of a snapshot's message that name its submodules' snapshots."""
    return "".join(f"{_LINE}{commit} {path}\n" for path, commit in commits.items())


def parse_submodule_lines(message: str) -> dict[str, str]:
    """The submodules' snapshots a snapshot's message names, by path."""
    found: dict[str, str] = {}
    for line in message.splitlines():
        if line.startswith(_LINE):
            commit, _, path = line[len(_LINE) :].partition(" ")
            if OBJECT_ID.fullmatch(commit) and path:
                found[path] = commit
    return found


def in_submodule(path: str, submodules: Iterable[str]) -> bool:
    """Whether ``path`` is inside one of the ``submodules`` (their paths)."""
    return any(path.startswith(f"{s}/") for s in submodules)


def files_inside(submodule: str, paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` inside ``submodule`` (its path), from its top."""
    below = f"{submodule}/"
    return [path[len(below) :] for path in paths if path.startswith(below)]


class Submodules:
    """The submodules checked out below ``root``: ``paths()`` gives the paths
    ``.gitmodules`` lists, ``open(folder)`` makes a submodule's workspace
    (None where the folder is not the top of a repository of its own)."""

    def __init__(
        self,
        root: Path,
        paths: Callable[[], list[str]],
        open_workspace: Callable[[Path], SubWorkspace | None],
    ) -> None:
        self._root = root
        self._paths = paths
        self._open_workspace = open_workspace
        self._opened: dict[str, SubWorkspace | None] = {}

    def close(self) -> None:
        for workspace in self._opened.values():
            if workspace is not None:
                workspace.close()
        self._opened.clear()

    def workspace(self, path: str, *, held: bool = True) -> SubWorkspace | None:
        """The workspace of the submodule at ``path`` while it is checked out.
        ``held``: by a runner, which clears what a killed runner of ours left
        in it (see ``GitWorkspace.sweep``)."""
        if not (self._root / path / ".git").exists():
            return None
        if path not in self._opened:
            self._opened[path] = self._open_workspace(self._root / path)
        workspace = self._opened[path]
        if workspace is not None and held:
            workspace.sweep()  # once
        return workspace

    def _each(
        self, baselines: Mapping[str, str]
    ) -> Iterator[tuple[str, SubWorkspace, str]]:
        for path, baseline in baselines.items():
            workspace = self.workspace(path)
            if workspace is not None:
                yield path, workspace, baseline

    def snapshot(self, *, run_id: str, batch_id: str, attempt: int) -> dict[str, str]:
        """Snapshots each submodule checked out; their snapshots by path."""
        found: dict[str, str] = {}
        for path in self._paths():
            workspace = self.workspace(path)
            if workspace is not None and "\n" not in path:
                found[path] = workspace.snapshot(
                    run_id=run_id, batch_id=batch_id, attempt=attempt
                )
        return found

    def changed(self, baselines: Mapping[str, str]) -> list[str]:
        """The paths (from the top of the superproject) that changed inside
        the submodules since their snapshots ``baselines``."""
        return [
            f"{path}/{file}"
            for path, workspace, baseline in self._each(baselines)
            for file in workspace.changed_files(baseline)
        ]

    def check(self, baselines: Mapping[str, str]) -> list[str]:
        """What was changed in the submodules' repositories that no batch may
        change, each put back."""
        return [
            f"in the repository at {path}: {found}"
            for path, workspace, baseline in self._each(baselines)
            for found in workspace.check(baseline)
        ]

    def quarantine(
        self, baselines: Mapping[str, str], *, run_id: str, batch_id: str, attempt: int
    ) -> tuple[list[str], dict[str, str]]:
        """Keeps the submodules' faulty trees and puts back what changed in
        them; the paths that changed (from the top of the superproject), and
        the commits that keep the faulty trees, by submodule."""
        files: list[str] = []
        commits: dict[str, str] = {}
        for path, workspace, baseline in self._each(baselines):
            kept = workspace.quarantine(
                run_id=run_id, batch_id=batch_id, attempt=attempt, baseline=baseline
            )
            files += [f"{path}/{file}" for file in kept.files]
            commits[path] = kept.commit
        return files, commits

    def restore(self, baselines: Mapping[str, str], files: Sequence[str]) -> None:
        """Puts those of ``files`` that are inside a submodule back as its
        snapshot had them."""
        for path, workspace, baseline in self._each(baselines):
            inside = files_inside(path, files)
            if inside:
                workspace.restore(baseline, inside)

    def read(
        self, baselines: Mapping[str, str], paths: Sequence[str]
    ) -> dict[str, bytes | None]:
        """Those of ``paths`` inside a submodule as its snapshot had them."""
        found: dict[str, bytes | None] = {}
        for path, workspace, baseline in self._each(baselines):
            inside = files_inside(path, paths)
            if inside:
                got = workspace.read(baseline, inside)
                found |= {f"{path}/{p}": content for p, content in got.items()}
        return found
