"""A verified batch's commit: HEAD plus the batch's own change, from its
baseline to its end. Where the user had uncommitted edits in a file the batch
also changed, the file is merged three ways (``git merge-file``: HEAD's, the
baseline's, the batch's end), so the commit has the batch's hunks and not the
user's; where they overlap, nothing is committed and the note says why. The
branch moves only from where it was seen (one ``update-ref`` transaction), and
the user's index is brought in step where they staged nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from recovery_adapters.git.command import Git, GitError, WorkspaceError
from recovery_adapters.git.objects import OUR_NAME, Entry, Objects
from recovery_adapters.git.refs import RefMoved, Refs, RefState, RefUpdate
from recovery_adapters.git.worktree import WorkingTree
from recovery_core.ports import Committed

__all__ = ["SEARCHED", "BatchCommit"]

#: How far back from HEAD a commit made before a kill is looked for.
SEARCHED: Final = 64
_REGULAR: Final = frozenset({"100644", "100755"})


class BatchCommit:
    """Commits verified batches on HEAD's branch of one repository;
    ``moved(state, commit)`` is told of each branch move as soon as it is
    made (so the guard never takes our own commit for a batch's)."""

    def __init__(
        self,
        git: Git,
        objects: Objects,
        refs: Refs,
        tree: WorkingTree,
        *,
        scratch: Path,
        moved: Callable[[RefState, str], None],
    ) -> None:
        self._git, self._objects, self._refs, self._tree = git, objects, refs, tree
        self._scratch, self._moved = scratch, moved
        self._identity: tuple[str, str] | None = None

    def commit(
        self,
        state: RefState,
        base_tree: str | None,
        files: Sequence[str],
        message: str,
        trailers: Mapping[str, str],
    ) -> Committed:
        """Commits the change to ``files`` since ``base_tree`` (the baseline's
        tree; None: HEAD's) on HEAD's branch as ``state`` saw it: each file
        as it is now where the user had no uncommitted edit in it, else
        merged three-way. The working tree keeps both; what the user staged
        stays staged."""
        head_tree = self._objects.commit_tree(state.head) if state.head else None
        base = base_tree or head_tree
        changes, tangled = self._batch_change(base, head_tree, files)
        if tangled:
            note = (
                "not committed: the user's uncommitted edits and the batch's change "
                f"overlap in {', '.join(tangled)}; the batch's change is left "
                "uncommitted in the working tree"
            )
            return Committed(commit=None, note=note)
        tree = self._objects.with_changes(head_tree, changes)
        if tree == head_tree:
            return Committed(None, note="not committed: HEAD has the change already")
        commit = self._on_branch(state, tree, message, trailers)
        self._sync_index(head_tree, changes)
        return Committed(commit=commit)

    def adopt(self, made: str, files: Sequence[str]) -> Committed:
        """The commit ``made`` of this batch by a runner killed before it was
        recorded, with the user's index brought in step with it."""
        parents, _ = self._objects.commit_parts(made)
        old = self._objects.commit_tree(parents[0]) if parents else None
        now = self._objects.entries(self._objects.commit_tree(made), files)
        self._sync_index(old, {path: now.get(path) for path in files})
        return Committed(commit=made)

    def _on_branch(
        self, state: RefState, tree: str, message: str, trailers: Mapping[str, str]
    ) -> str:
        """Writes the commit of ``tree`` on HEAD's branch as ``state`` saw it,
        moving the branch only if it is still there."""
        assert state.head_ref is not None
        head = state.head
        body = message.rstrip() + "\n\n"
        body += "".join(f"{key}: {value}\n" for key, value in trailers.items())
        author, committer = self._author()
        commit = self._objects.write_commit(
            tree, [head] if head else [], body, author=author, committer=committer
        )
        try:
            self._refs.update([RefUpdate(state.head_ref, commit, old=head or "")])
        except RefMoved as exc:
            raise WorkspaceError(
                f"cannot commit the batch: {exc} (moved while the batch ran)"
            ) from None
        self._moved(state, commit)
        return commit

    def made_before(
        self, head: str | None, baseline: str | None, trailers: Mapping[str, str]
    ) -> str | None:
        """The commit on the branch since the snapshot ``baseline`` whose
        trailers are ``trailers``' run and batch: a batch is committed once."""
        if not head or not baseline or "Recovery-Batch" not in trailers:
            return None
        keys = ("Recovery-Run", "Recovery-Batch")
        wanted = {f"{key}: {trailers[key]}" for key in keys if key in trailers}
        stop = set(self._objects.commit_parts(baseline)[0])
        commit: str | None = head
        for _ in range(SEARCHED):
            if commit is None or commit in stop:
                return None
            parents, message = self._objects.commit_parts(commit)
            if wanted <= set(message.splitlines()):
                return commit
            commit = parents[0] if parents else None
        return None

    def _batch_change(
        self, base: str | None, head: str | None, files: Sequence[str]
    ) -> tuple[dict[str, Entry | None], list[str]]:
        """The entries HEAD plus the batch's own change has for ``files``, and
        the paths where that cannot be told apart from the user's edits."""
        now = self._tree.entries_of(files)
        was = self._objects.entries(base, files) if base else {}
        committed = self._objects.entries(head, files) if head else {}
        changes: dict[str, Entry | None] = {}
        tangled: list[str] = []
        for path in files:
            end, before, at_head = now.get(path), was.get(path), committed.get(path)
            if before == at_head or end == at_head:
                changes[path] = end  # the user had no uncommitted edit here
            elif (merged := self._merge(at_head, before, end)) is not None:
                changes[path] = merged
            else:
                tangled.append(path)
        return changes, tangled

    def _merge(
        self, ours: Entry | None, base: Entry | None, theirs: Entry | None
    ) -> Entry | None:
        """HEAD's file (``ours``) with the change from ``base`` to ``theirs``,
        by ``git merge-file``; None when they overlap or are not text files."""
        if (
            not (ours and base and theirs)
            or {ours.mode, base.mode, theirs.mode} - _REGULAR
        ):
            return None
        names = []
        for label, entry in (("ours", ours), ("base", base), ("theirs", theirs)):
            content = self._objects.read(entry.sha)
            if content is None:
                return None
            target = self._scratch / f"merge-{label}"
            target.write_bytes(content[1])
            names.append(str(target))
        try:
            merged = self._git.run("merge-file", "-p", "-q", "--", *names)
        except GitError:
            return None  # overlapping hunks (exit > 0), or binary files
        # The mode merges the same way: the batch's change of it, else HEAD's.
        mode = ours.mode if theirs.mode == base.mode else theirs.mode
        return Entry(mode, self._objects.write_blob(merged))

    def _sync_index(
        self, old_tree: str | None, changes: Mapping[str, Entry | None]
    ) -> None:
        """Moves the user's index entries of the committed paths from the old
        HEAD's to the new commit's where the user had nothing staged."""
        index_tree = self._tree.index_tree()
        if index_tree is None:
            return  # unmerged entries: the index is left as it is
        paths = sorted(changes)
        staged = self._objects.entries(index_tree, paths)
        before = self._objects.entries(old_tree, paths) if old_tree else {}
        # Where the user staged nothing (the index has the old HEAD's entry)
        # and there is something to do: an entry to set, or one to remove.
        wanted = {
            p: changes[p]
            for p in paths
            if staged.get(p) == before.get(p) and (p in staged or changes[p])
        }
        now = self._tree.entries_of(list(wanted))
        # Staged from the files where they are as committed; removed (or set)
        # by entry otherwise: git stages nothing beyond a symbolic link.
        from_files = [p for p, e in wanted.items() if e and e == now.get(p)]
        by_entry = {p: e for p, e in wanted.items() if p not in from_files}
        new_tree = self._objects.with_changes(index_tree, wanted)
        # The user's assume-unchanged or skip-worktree flags on those entries
        # are set again: a new entry has none.
        flags = [(p, f) for p, f in self._tree.index_flags() if wanted.get(p)]
        if by_entry:
            self._tree.set_index_entries(by_entry)
        if from_files:
            self._tree.stage_from_files(from_files, tree=new_tree)
        if flags:
            self._tree.set_flags(flags, on=True)

    def _author(self) -> tuple[str, str]:
        """The author and committer (``Name <email>``) of a verified batch's
        commit: the user's when git has an identity for them, else ours."""
        if self._identity is None:
            self._identity = (OUR_NAME, OUR_NAME)
            if "user.email" in self._tree.settings() or os.environ.get(
                "GIT_AUTHOR_EMAIL"
            ):
                # git var gives ``Name <email> 1700000000 +0100``.
                author = self._git.text("var", "GIT_AUTHOR_IDENT").rsplit(" ", 2)[0]
                committer = self._git.text("var", "GIT_COMMITTER_IDENT")
                self._identity = (author, committer.rsplit(" ", 2)[0])
        return self._identity
