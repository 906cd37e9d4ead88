"""A quarantined change, shown and brought back: what ``recovery show``,
``recovery restore`` and ``recovery report`` ask of the repository
(:attr:`GitWorkspace.kept <recovery_adapters.git.workspace.GitWorkspace.kept>`).
A change is the one a quarantine's commit made to the attempt's files from
its snapshot; it is shown as ``git diff`` prints it, and brought back into the
working tree only (``git apply``), never over the user's uncommitted edits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from recovery_adapters.git.command import (
    BINARY_DIFF,
    Git,
    WorkspaceError,
    deferred_signals,
    object_id,
)
from recovery_adapters.git.objects import Entry, Objects
from recovery_adapters.git.refs import Refs, recovery_ref
from recovery_adapters.git.worktree import WorkingTree

__all__ = ["KeptChanges"]


class KeptChanges:
    """The changes kept under ``refs/recovery/`` in one repository."""

    def __init__(
        self, git: Git, objects: Objects, refs: Refs, tree: WorkingTree
    ) -> None:
        self._git, self._objects, self._refs, self._tree = git, objects, refs, tree

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
        ``--stat`` summary first. Empty when the change is empty."""
        before, after = self._change_trees(baseline, commit, files)
        if before == after:
            return b""
        how = BINARY_DIFF if binary else ("--stat", "--patch")
        return self._git.diff(before, after, *how)

    @deferred_signals()
    def bring_back(
        self, baseline: str, commit: str, files: Sequence[str]
    ) -> tuple[str, ...]:
        """Brings the change the commit ``commit`` (a quarantine) made to
        ``files`` from the snapshot ``baseline`` back into the working tree, as
        ``git apply`` does (the working tree only: the user's index and every
        other file stay as they are); returns the paths it wrote or removed
        (none of those already as ``commit`` has them: once brought back,
        bringing it back again does nothing).

        Refused with :class:`WorkspaceError`, nothing written, when one of
        those paths has the user's uncommitted changes since ``baseline`` (it
        is neither as ``baseline`` had it nor, in the working tree and the
        index, as HEAD has it), naming each; or when the change does not apply,
        with git's reason."""
        before, after = self._change_trees(baseline, commit, files)
        paths = self._objects.diff(before, after)
        now = self._tree.entries_of(paths)
        wanted = self._objects.entries(after, paths)
        todo = [p for p in paths if now.get(p) != wanted.get(p)]
        if not todo:
            return ()
        in_the_way = self._edited_since(before, todo, now)
        if in_the_way:
            raise WorkspaceError(
                "not brought back: uncommitted changes in "
                + ", ".join(in_the_way)
                + " would be overwritten; commit or stash them first (nothing "
                "was changed)"
            )
        after = self._objects.with_changes(before, {p: wanted.get(p) for p in todo})
        patch = self._git.diff(before, after, *BINARY_DIFF)
        refused = "not brought back: the change does not apply to the working tree"
        self._git.apply(patch, refused)
        return tuple(todo)

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
