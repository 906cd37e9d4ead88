"""A quarantined change, shown and brought back: what ``recovery show``,
``recovery restore`` and ``recovery report`` ask of the repository
(:attr:`GitWorkspace.kept <recovery_adapters.git.workspace.GitWorkspace.kept>`).
A change is the one a quarantine's commit made to the attempt's files from
its snapshot; it is shown as ``git diff`` prints it, and brought back into the
working tree only (``git apply``), never over the user's uncommitted edits.
A change a failed attempt made inside a submodule is kept in the
submodule's repository: it is shown and brought back with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from recovery_adapters.git.command import (
    BINARY_DIFF,
    Git,
    WorkspaceError,
    deferred_signals,
    object_id,
)
from recovery_adapters.git.objects import Entry, Objects
from recovery_adapters.git.refs import Refs, recovery_ref
from recovery_adapters.git.submodules import files_inside
from recovery_adapters.git.worktree import WorkingTree

__all__ = ["KeptChanges", "Parts"]

_REFUSED: Final = "not brought back: the change does not apply to the working tree"


#: The submodules' parts of a quarantined change: for a snapshot and a
#: quarantine commit, each submodule's path, its changes, and its snapshot
#: and quarantine commits.
Parts = Callable[[str, str], "list[tuple[str, KeptChanges, str, str]]"]


class KeptChanges:
    """The changes kept under ``refs/recovery/`` in one repository; ``parts``
    gives those kept in its submodules (see
    :mod:`~recovery_adapters.git.submodules`)."""

    def __init__(
        self,
        git: Git,
        objects: Objects,
        refs: Refs,
        tree: WorkingTree,
        *,
        parts: Parts = lambda baseline, commit: [],
    ) -> None:
        self._git, self._objects, self._refs, self._tree = git, objects, refs, tree
        self._parts = parts

    def commit(self, ref: str) -> str | None:
        """The commit that ``ref``, one of ours under ``refs/recovery/`` (such
        as a quarantine's), points at; None when the ref is gone."""
        return self._git.target(recovery_ref(ref))

    def diff(
        self, baseline: str, commit: str, files: Sequence[str], *, binary: bool = True
    ) -> bytes:
        """The change the commit ``commit`` (a quarantine) made to ``files``
        from the snapshot ``baseline``, as ``git diff`` prints it: with
        ``binary``, as ``git diff --binary --full-index`` does (what ``git
        apply`` takes, binary files too); else for people, with the
        ``--stat`` summary first. Empty when the change is empty. The part
        inside each submodule follows, its paths from the top."""
        found = self._diff(baseline, commit, files, binary, "")
        for below, kept, base, kept_commit, inside in self._inside(
            baseline, commit, files
        ):
            found += kept._diff(base, kept_commit, inside, binary, below)
        return found

    def _diff(
        self, baseline: str, commit: str, files: Sequence[str], binary: bool, below: str
    ) -> bytes:
        before, after = self._change_trees(baseline, commit, files)
        if before == after:
            return b""
        how = BINARY_DIFF if binary else ("--stat", "--patch")
        return self._git.diff(before, after, *how, below=below)

    def _inside(
        self, baseline: str, commit: str, files: Sequence[str]
    ) -> list[tuple[str, KeptChanges, str, str, list[str]]]:
        """The submodules' parts of the change, each with its files (from the
        submodule's top)."""
        found = []
        for path, kept, base, kept_commit in self._parts(baseline, commit):
            if inside := files_inside(path, files):
                found.append((f"{path}/", kept, base, kept_commit, inside))
        return found

    @deferred_signals()
    def bring_back(
        self, baseline: str, commit: str, files: Sequence[str]
    ) -> tuple[str, ...]:
        """Brings the change the commit ``commit`` (a quarantine) made to
        ``files`` from the snapshot ``baseline`` back into the working tree, as
        ``git apply`` does (the working tree only: the user's index and every
        other file stay as they are); returns the paths it wrote or removed
        (none of those already as ``commit`` has them: once brought back,
        bringing it back again does nothing). Each submodule's part too, once
        every part was found to apply.

        Refused with :class:`WorkspaceError`, nothing written, when one of
        those paths has the user's uncommitted changes since ``baseline`` (it
        is neither as ``baseline`` had it nor, in the working tree and the
        index, as HEAD has it), naming each; or when the change does not apply,
        with git's reason."""
        planned = [(self, self._plan(baseline, commit, files, ""))]
        for below, kept, base, kept_commit, inside in self._inside(
            baseline, commit, files
        ):
            planned.append((kept, kept._plan(base, kept_commit, inside, below)))
        written: list[str] = []
        for kept, (patch, todo) in planned:
            if todo:
                kept._git.apply(patch, _REFUSED)
                written += todo
        return tuple(written)

    def _plan(
        self, baseline: str, commit: str, files: Sequence[str], below: str
    ) -> tuple[bytes, list[str]]:
        """The patch that brings the change back here, and the paths it
        writes (from the top: ``below`` is a submodule's path and a slash);
        checked to apply, nothing written."""
        before, after = self._change_trees(baseline, commit, files)
        paths = self._objects.diff(before, after)
        now = self._tree.entries_of(paths)
        wanted = self._objects.entries(after, paths)
        todo = [p for p in paths if now.get(p) != wanted.get(p)]
        if not todo:
            return b"", []
        in_the_way = self._edited_since(before, todo, now)
        if in_the_way:
            raise WorkspaceError(
                "not brought back: uncommitted changes in "
                + ", ".join(below + p for p in in_the_way)
                + " would be overwritten; commit or stash them first (nothing "
                "was changed)"
            )
        after = self._objects.with_changes(before, {p: wanted.get(p) for p in todo})
        patch = self._git.diff(before, after, *BINARY_DIFF)
        self._git.apply(patch, _REFUSED, check_only=True)
        return patch, [below + p for p in todo]

    def _change_trees(
        self, baseline: str, commit: str, files: Sequence[str]
    ) -> tuple[str, str]:
        """The tree of ``baseline``, and that tree with ``files`` as ``commit``
        has them (so that a diff of the two is the change to those files only,
        with no path given to git as a pathspec)."""
        before = self._objects.commit_tree(object_id(baseline))
        object_id(commit)
        kept = self._objects.entries(self._objects.commit_tree(commit), files)
        changes = {path: kept.get(path) for path in files}
        return before, self._objects.with_changes(before, changes)

    def _edited_since(
        self, tree: str, paths: Sequence[str], now: Mapping[str, Entry]
    ) -> list[str]:
        """Those of ``paths`` that the user changed since the snapshot of
        ``tree`` and has not committed: not as ``tree`` has them in the working
        tree (``now``), and, in the working tree or the index, not as HEAD has
        them."""
        was = self._objects.entries(tree, paths)
        moved = [p for p in paths if now.get(p) != was.get(p)]
        if not moved:
            return []
        head = self._refs.state().head
        at_head = (
            self._objects.entries(self._objects.commit_tree(head), moved)
            if head
            else {}
        )
        index_tree = self._tree.index_tree()
        staged = self._objects.entries(index_tree, moved) if index_tree else {}
        return [
            p
            for p in moved
            if now.get(p) != at_head.get(p)
            or index_tree is None
            or staged.get(p) != at_head.get(p)
        ]
