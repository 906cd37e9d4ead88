"""GitWorkspace: the :class:`~recovery_core.ports.Workspace` port for a git
working tree. Where each thing happens: :meth:`~GitWorkspace.snapshot` (the
whole working tree, the user's index untouched, under
``refs/recovery/<run>/<batch>/<attempt>/baseline``; what the user staged under
``.../index``; the repository's own state in memory),
:meth:`~GitWorkspace.changed_files`, :meth:`~GitWorkspace.quarantine` (the
faulty tree under ``.../quarantine``, then :meth:`~GitWorkspace.restore` of
exactly the paths the attempt changed), :meth:`~GitWorkspace.commit` (HEAD plus
the batch's own change, made by :mod:`~recovery_adapters.git.commit`) and
:meth:`~GitWorkspace.check` (the guards); a quarantined change is shown and
brought back through :attr:`~GitWorkspace.kept`
(:mod:`~recovery_adapters.git.kept`). Before
any git command of ours after a snapshot, what a batch changed in the
repository's settings, ``info/`` and hooks is put back
(:mod:`~recovery_adapters.git.guard`).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import attrs

from recovery_adapters.git.command import (
    Git,
    WorkspaceError,
    deferred_signals,
    discover,
)
from recovery_adapters.git.commit import BatchCommit
from recovery_adapters.git.guard import IN_PROGRESS, Guard, RepositoryState
from recovery_adapters.git.kept import KeptChanges
from recovery_adapters.git.lock import WorkspaceLock
from recovery_adapters.git.objects import GITLINK, ObjectError, Objects, nul
from recovery_adapters.git.own_files import KEEP_FOLDER, OwnFiles, put_back_left
from recovery_adapters.git.refs import (
    Refs,
    RefState,
    RefUpdate,
    attempt_refs,
    clear_stale_locks,
)
from recovery_adapters.git.sandbox import GitSandbox, sweep_sandboxes
from recovery_adapters.git.submodules import (
    Submodules,
    files_inside,
    in_submodule,
    parse_submodule_lines,
    submodule_lines,
)
from recovery_adapters.git.worktree import (
    IGNORE_ALL,
    Flags,
    WorkingTree,
    beyond_link,
    is_file,
)
from recovery_adapters.strategies.manual_git import ManualGitStrategy
from recovery_adapters.watch import Tracker, start_tracker
from recovery_core.ports import Committed, Quarantine
from recovery_core.store import RECOVERY_DIR

__all__ = ["GitWorkspace", "WorkspaceError"]

#: What says an operation is under way (see guard.IN_PROGRESS for all it keeps).
_UNDER_WAY: Final = (
    "MERGE_HEAD",
    "rebase-merge",
    "rebase-apply",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "BISECT_LOG",
)
#: How many snapshots a workspace remembers (their indexes, their states).
_KEPT: Final = 4
#: The lines of a snapshot's message naming the repositories with no commit
#: inside the work tree then (left out of its tree: the user's, not a batch's).
_UNBORN: Final = "Recovery-Unborn: "
#: Where a repository a batch made inside the work tree is moved, whole.
_TAKEN_OUT: Final = "repositories"


@attrs.frozen
class _Baseline:
    """A snapshot: its tree, the user's index tree then, and the snapshots of
    the submodules checked out then, by path, and the repositories with no
    commit inside the work tree then."""

    tree: str
    index_tree: str | None
    subs: Mapping[str, str] = attrs.field(factory=dict)
    unborn: tuple[str, ...] = ()


class GitWorkspace:
    """A git working tree as the workspace of a run.

    ``exclude`` lists paths (relative to the top of the working tree, or
    absolute) whose changes never belong to a batch, such as the plan file when
    it lives in the workspace: the library writes it, a batch does not.

    With ``tracker`` (the default), the first snapshot scans the whole working
    tree and starts a file-system watch on it (Linux inotify); later trees are
    made from the paths it saw change, so a snapshot costs what the change
    costs. Whatever the watch cannot vouch for brings back a full scan;
    ``tracker=False`` scans every time, with the same results. ``tracker`` may
    also be a function that starts a :class:`~recovery_adapters.watch.Tracker`
    for a folder (or returns None where it cannot).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ".",
        *,
        exclude: Sequence[str | os.PathLike[str]] = (),
        tracker: bool | Callable[[Path], Tracker | None] = True,
    ) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise WorkspaceError(f"{folder} is not a folder")
        root, git_dir, common_dir, object_format = discover(folder)
        self._root, self._git_dir, self._common_dir = root, git_dir, common_dir
        # A private folder for temporary indexes and object sources.
        self._scratch = tempfile.TemporaryDirectory(prefix="recovery-git-")
        scratch = Path(self._scratch.name)
        self._git = Git(root, git_dir)
        width = 32 if object_format == "sha256" else 20
        self._objects = Objects(self._git, scratch, id_bytes=width)
        self._refs = Refs(self._git, null=self._objects.null)
        self._tree = WorkingTree(
            self._git,
            self._objects,
            common_dir=common_dir,
            scratch=scratch,
            exclude=[RECOVERY_DIR, *(p for p in map(self._relative, exclude) if p)],
            tracker=start_tracker if tracker is True else (tracker or None),
        )
        self._submodules = Submodules(
            root,
            self._tree.submodule_paths,
            functools.partial(_open_submodule, other_than=common_dir),
        )
        self._guard = Guard(
            self._refs,
            root=root,
            git_dir=git_dir,
            common_dir=common_dir,
            outside=self._tree.kept_files,
            remotes=self._tree.remotes,
        )
        self._lock = WorkspaceLock(git_dir, root)
        self._own = OwnFiles(root, git_dir / KEEP_FOLDER, self._left_out)
        self._committer = BatchCommit(
            self._git,
            self._objects,
            self._refs,
            self._tree,
            scratch=scratch,
            moved=self._moved,
        )
        #: The quarantined changes, shown and brought back.
        self.kept = KeptChanges(
            self._git, self._objects, self._refs, self._tree, parts=self._kept_parts
        )
        self._baselines: dict[str, _Baseline] = {}
        # The repository's own state at the latest snapshot (what a batch may
        # not change: put back to it, never to an older one, which would undo
        # what the user changed between attempts), what was found changed
        # since, and HEAD as the last check left it.
        self._state: RepositoryState | None = None
        self._found: tuple[str, ...] = ()
        self._checked: RefState | None = None
        # The user's index at that snapshot: its tree, and its flags.
        self._staged: str | None = None
        self._flags: Flags = frozenset()
        self._swept = False  # stale locks and sandboxes cleared
        self._sandbox: GitSandbox | None = None

    # -- what it is ---------------------------------------------------------

    @property
    def root(self) -> Path:
        """The top of the working tree."""
        return self._root

    @property
    def tracking(self) -> bool:
        """Whether a file-system watch narrows the trees made now."""
        return self._tree.tracking

    @property
    def git_calls(self) -> int:
        """How many git processes this workspace has started."""
        return self._git.calls

    def ignore(self, path: str | os.PathLike[str]) -> None:
        """Never counts changes to ``path`` as a batch's change."""
        relative = self._relative(path)
        if relative and relative not in self._tree.exclude:
            self._tree.exclude = (*self._tree.exclude, relative)

    def close(self) -> None:
        """Ends the long-lived git processes and the watch; releases the lock."""
        self._submodules.close()
        self._tree.close()
        self._objects.close()
        self._refs.close()
        self._own.close()
        self._lock.release()
        self._scratch.cleanup()

    def __enter__(self) -> GitWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _left_out(self) -> list[Path]:
        """The files left out of every tree but the library's folder (the
        plan file): a batch that removed one would lose the user's file."""
        return [self._root / p for p in self._tree.exclude if p != RECOVERY_DIR]

    def _relative(self, path: str | os.PathLike[str]) -> str:
        try:
            return Path(path).resolve().relative_to(self._root).as_posix()
        except ValueError:
            return ""

    # -- before a run -------------------------------------------------------

    @contextmanager
    def locked(self, holder: Mapping[str, str]) -> Iterator[None]:
        """Holds the workspace for one runner (``holder`` says who: run, plan,
        host, pid); raises :class:`~recovery_adapters.git.lock.WorkspaceInUse`
        (exit 5), naming the holder, while another live process holds it.
        Held the first time, it clears what a killed git process of ours left
        locked under ``refs/recovery/``
        (:func:`~recovery_adapters.git.refs.clear_stale_locks`) and the sandbox
        worktrees a killed runner left
        (:func:`~recovery_adapters.git.sandbox.sweep_sandboxes`): once, since
        both cost what the repository's history of runs holds, and what a
        runner killed before this one left is all there is. The second names
        of the event store's files (:mod:`~recovery_adapters.git.own_files`)
        go when the workspace is let go."""
        with self._lock.hold(holder):
            self.sweep()
            try:
                yield
            finally:
                self._own.close()

    def sweep(self) -> None:
        """Clears, once, what a runner of ours killed here left: locks under
        ``refs/recovery/`` and sandbox worktrees; and puts back the event
        store it left under second names only
        (:func:`~recovery_adapters.git.own_files.put_back_left`). Only while
        no runner of ours can be writing here (the workspace, or its
        superproject, held)."""
        if not self._swept:
            put_back_left(self._root, self._git_dir, held=True)
            clear_stale_locks(self._common_dir)
            sweep_sandboxes(self._git)
            self._swept = True

    def prepare(self, *, commits: bool = False, write: bool = True) -> None:
        """Refuses to start in the middle of a merge, rebase, cherry-pick,
        revert or bisect, or (when batches are to be committed) on a detached
        HEAD; keeps ``.recovery/`` out of git by a ``.gitignore`` in it that
        ignores everything, itself too (unless ``write`` is false: then it only
        refuses). The user's own ``.git/info/exclude`` is never written."""
        for marker in _UNDER_WAY:
            if (self._git_dir / marker).exists():
                what = IN_PROGRESS[marker]
                raise WorkspaceError(
                    f"{self._root} is in the middle of {what}; finish or abort it first"
                )
        if commits and self._refs.state().head_ref is None:
            raise WorkspaceError(
                f"{self._root} has a detached HEAD: a batch with commit_strategy "
                "'commit' needs a branch to commit to (git switch BRANCH)"
            )
        if write:
            self._ignore_store()

    def _ignore_store(self) -> None:
        ignore = self._root / RECOVERY_DIR / ".gitignore"
        if not ignore.is_file() or ignore.read_text() != IGNORE_ALL:
            ignore.parent.mkdir(exist_ok=True)
            ignore.write_text(IGNORE_ALL)  # a kill halfway: written again next time

    # -- snapshots ----------------------------------------------------------

    def snapshot(self, *, run_id: str, batch_id: str, attempt: int) -> str:
        """Snapshots the whole working tree as a commit under
        ``refs/recovery/<run>/<batch>/<attempt>/baseline`` (and what the user
        had staged under ``.../index``), each submodule checked out as a
        workspace of its own (:mod:`~recovery_adapters.git.submodules`);
        returns the baseline commit's id."""
        self._own.keep()
        state = self._guard.state()
        tree, index_tree = self._tree.tree(), self._tree.index_tree()
        # After the tree: it finds the repositories with no commit among them.
        subs = self._submodules.snapshot(
            run_id=run_id, batch_id=batch_id, attempt=attempt
        )
        head = state.refs.head
        parents = [head] if head else []
        what = f"run {run_id} batch {batch_id}"
        message = f"recovery baseline: {what} attempt {attempt}\n"
        unborn = self._tree.unborn
        if subs or unborn:
            message += "\n" + submodule_lines(subs)
            message += "".join(f"{_UNBORN}{path}\n" for path in unborn)
        commit = self._objects.write_commit(tree, parents, message)
        refs = attempt_refs(run_id, batch_id, attempt)
        updates = [RefUpdate(f"{refs}/baseline", commit)]
        if index_tree is not None:
            staged = head or ""  # HEAD itself when the user has nothing staged
            if not head or index_tree != self._objects.commit_tree(head):
                message = f"recovery index: {what}"
                staged = self._objects.write_commit(index_tree, parents, message)
            updates.append(RefUpdate(f"{refs}/index", staged))
        self._refs.update(updates)
        self._remember(commit, _Baseline(tree, index_tree, subs, unborn))
        self._state, self._found, self._checked = state, (), None
        self._staged, self._flags = index_tree, self._tree.index_flags()
        return commit

    def _remember(self, commit: str, baseline: _Baseline) -> None:
        self._baselines[commit] = baseline
        while len(self._baselines) > _KEPT:
            del self._baselines[next(iter(self._baselines))]

    def _baseline(self, commit: str, index_ref: str = "") -> _Baseline:
        """What is known of the snapshot ``commit``; of one another process
        took, its tree, and what the user had staged from ``index_ref``."""
        known = self._baselines.get(commit)
        if known is None:
            try:
                staged = self._objects.commit_tree(index_ref) if index_ref else None
            except ObjectError:
                staged = None
            message = self._objects.commit_parts(commit)[1]
            subs = parse_submodule_lines(message)
            unborn = tuple(
                line.removeprefix(_UNBORN)
                for line in message.splitlines()
                if line.startswith(_UNBORN)
            )
            known = _Baseline(self._objects.commit_tree(commit), staged, subs, unborn)
            self._remember(commit, known)
        return known

    # -- the repository's own state, put back first --------------------------

    def _put_back(self, *, refs: bool) -> None:
        """Puts back what a batch changed in the repository since the latest
        snapshot (with ``refs``, HEAD and branches too), before any other git
        command of ours; what was found is kept for :meth:`check`."""
        if self._state is None:
            return
        with deferred_signals():
            found = self._own.put_back()  # the store first: every event
            found += self._guard.put_back(self._state, refs=refs)
            if self._tree.index_corrupt():
                found.append(self._rebuild_index())
            found += self._put_back_staged()
            found += self._put_back_flags()
        if found:
            self._tree.forget_settings()
            self._found = (*self._found, *found)

    def _put_back_staged(self) -> list[str]:
        """Puts the user's index entries back as they were staged at the
        latest snapshot: a batch's `git add -A`, `git reset` or `git rm
        --cached` would stage the user's unstaged edits with its own files, or
        drop what the user had chosen to commit."""
        staged, now = self._staged, self._tree.index_tree()
        if staged is None or now == staged:
            return []
        if now is None:  # unmerged entries the batch wrote
            self._tree.reset_index(staged)
        else:
            self._restore_index(staged)
        return ["the user's index was changed (what was staged is put back)"]

    def _put_back_flags(self) -> list[str]:
        """Sets the flags of the user's index entries (assume-unchanged,
        skip-worktree) back as they were at the latest snapshot: one a batch
        set would hide the file's later changes from the user's `git status`.
        An entry no longer in the index is left to the restore."""
        now = self._tree.index_flags()
        if now == self._flags:
            return []
        present = self._tree.index_paths()
        self._tree.set_flags(now - self._flags, on=False)
        self._tree.set_flags(
            [(p, f) for p, f in self._flags - now if p in present], on=True
        )
        return [
            "the flags of the user's index entries (assume-unchanged, "
            "skip-worktree) were changed"
        ]

    def _rebuild_index(self) -> str:
        """Makes the user's index, which git cannot read, anew from what the
        user had staged at the latest snapshot."""
        staged = self._staged
        if staged is None:
            raise WorkspaceError(
                f"the index of {self._root} cannot be read, and what was staged "
                "before the batch is not known: restore it with `git read-tree HEAD`"
            )
        self._tree.reset_index(staged)
        return "the index could not be read; it was made anew as it was staged"

    def check(self, baseline: str | None) -> tuple[str, ...]:
        """What the attempt since the latest snapshot changed that a batch must
        not (HEAD moved, a branch rewritten, the settings, ``info/`` or a hook
        changed), each put back as it was; empty when nothing was."""
        self._put_back(refs=True)
        if self._state is not None:
            self._checked = self._state.refs  # HEAD is where it was, now
        found, self._found = self._found, ()
        if baseline is not None:
            known = self._baseline(baseline)
            found += tuple(self._take_out(baseline, known))
            found += tuple(self._submodules.check(known.subs))
        return found

    def _take_out(self, baseline: str, known: _Baseline) -> list[str]:
        """Moves each repository that the attempt made inside the work tree,
        whole (what the folder held, ignored files too), into the store
        folder: git sees one entry there (a gitlink), or none (with no commit
        yet), not its files, so no restore could remove them, and once staged
        the user's `git status` would look into it and run its settings. A
        repository the snapshot had (with no commit then: the user's) stays;
        what the snapshot had at that path is put back by the quarantine."""
        now, entry = self._tree.tree(), self._objects.entry
        made = [
            path
            for path in self._objects.diff(known.tree, now)
            if getattr(entry(now, path), "mode", "") == GITLINK
            and getattr(entry(known.tree, path), "mode", "") != GITLINK
            and path not in known.unborn
        ]
        made += [
            path
            for path in self._tree.unborn  # as of the last full scan
            if path not in known.unborn
            and path not in made
            and (self._root / path / ".git").exists()
        ]
        return [
            f"a git repository was made at {path} (no snapshot holds its files, "
            "and its settings would run in the user's git commands); moved whole "
            f"to {self._move_out(path, baseline)}"
            for path in made
        ]

    def _move_out(self, path: str, baseline: str) -> str:
        """Moves the folder ``path`` to a free place under the store folder's
        ``repositories/<baseline>`` (removing the folders that leaves empty);
        that place, from the top."""
        self._ignore_store()
        place, again = Path(RECOVERY_DIR, _TAKEN_OUT, baseline, path), 1
        while (self._root / place).exists():  # taken out of an earlier check
            again += 1
            place = Path(RECOVERY_DIR, _TAKEN_OUT, f"{baseline}-{again}", path)
        (self._root / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self._root / path, self._root / place)
        self._remove_emptied(self._root / path)
        return place.as_posix()

    # -- what an attempt changed --------------------------------------------

    def changed_files(self, baseline: str | None) -> tuple[str, ...]:
        """The paths that differ between the snapshot ``baseline`` and the
        working tree now (added, modified, deleted, mode changes), sorted."""
        if baseline is None:
            return ()
        self._put_back(refs=False)
        known = self._baseline(baseline)
        own = self._changed(known.tree, self._tree.tree())
        return tuple(sorted((*own, *self._submodules.changed(known.subs))))

    def _changed(self, baseline: str, now: str) -> tuple[str, ...]:
        """The paths that differ between two trees of the working tree, less
        the files that only left the tree because an ignore rule now covers
        them (a batch that changed .gitignore changed that file, not the
        user's file it now ignores)."""
        files = self._objects.diff(baseline, now)
        root, entry = self._root, self._objects.entry
        left = [p for p in files if is_file(root, p) and entry(now, p) is None]
        if not left:
            return files
        before = self._objects.entries(baseline, left)
        same = {p for p, e in self._tree.entries_of(left).items() if before.get(p) == e}
        return tuple(p for p in files if p not in same)

    def read(self, snapshot: str, paths: Sequence[str]) -> dict[str, bytes | None]:
        """The content of each of ``paths`` as the snapshot (or any commit)
        ``snapshot`` has it; None for a path that is no file there."""
        if not paths:
            return {}
        found = self._objects.blobs(snapshot, paths)
        known = self._baselines.get(snapshot)  # else any commit: not kept
        message = "" if known else self._objects.commit_parts(snapshot)[1]
        subs = known.subs if known else parse_submodule_lines(message)
        return found | self._submodules.read(subs, paths) if subs else found

    # -- after a failure ----------------------------------------------------

    @deferred_signals()
    def quarantine(
        self, *, run_id: str, batch_id: str, attempt: int, baseline: str
    ) -> Quarantine:
        """Keeps the faulty tree under ``.../quarantine`` and puts the paths the
        attempt changed back as they were at ``baseline``, and the user's staged
        entries back as they were; nothing else is touched."""
        self._put_back(refs=True)
        refs = attempt_refs(run_id, batch_id, attempt)
        known = self._baseline(baseline, f"{refs}/index")
        inside, kept = self._submodules.quarantine(
            known.subs, run_id=run_id, batch_id=batch_id, attempt=attempt
        )
        ref = f"{refs}/quarantine"
        # Kept already by a runner killed before the quarantine was recorded:
        # that tree is the faulty one (the working tree may be restored since).
        commit = self._git.target(ref)
        if commit:
            faulty = self._objects.commit_tree(commit)
        else:
            faulty = self._tree.tree()
            what = f"run {run_id} batch {batch_id} attempt {attempt}"
            message = f"recovery quarantine: {what}\n"
            if kept:  # where the submodules' faulty trees are
                message += "\n" + submodule_lines(kept)
            commit = self._objects.write_commit(faulty, [baseline], message)
            self._refs.update([RefUpdate(ref, commit)])
        files = self._changed(known.tree, faulty)
        self._restore(known, files)
        return Quarantine(
            ref=ref,
            files=tuple(sorted((*files, *inside))),
            tree_id=faulty,
            commit=commit,
        )

    @deferred_signals()
    def restore(self, baseline: str, files: Sequence[str]) -> None:
        """Puts ``files`` back as they were in the snapshot ``baseline``
        (removing those it did not have), then the user's index entries."""
        self._put_back(refs=False)
        known = self._baseline(baseline)
        self._submodules.restore(known.subs, files)
        self._restore(known, [f for f in files if not in_submodule(f, known.subs)])

    def _restore(self, known: _Baseline, files: Sequence[str]) -> None:
        wanted = self._objects.entries(known.tree, files)
        if wanted:
            # Through a temporary index of just those entries (a restore costs
            # what the change costs); with -f git makes room for each file
            # where the batch left a folder or a symbolic link.
            with self._tree.temporary_index(from_user=False) as index:
                self._tree.set_index_entries(wanted, index=index)
                checkout = ["checkout-index", "-f", "-z", "--stdin"]
                self._git.run(*checkout, index=index, stdin=nul(list(wanted)))
        # Removed only now that the baseline's ignore rules are back: a path they
        # cover cannot be in any snapshot, so it may be the user's own ignored
        # file (a batch that edits .gitignore un-ignores it); it stays.
        gone = [path for path in files if path not in wanted]
        self._tree.forget_settings()  # the rules as just written back
        ignored = self._tree.ignored(gone)
        for path in gone:
            if path not in ignored:
                self._remove(path)
        self._restore_index(known.index_tree)

    def _remove(self, path: str) -> None:
        """Removes the file ``path`` and the folders that leaves empty."""
        target = self._root / path
        if is_file(self._root, path):
            target.unlink()
        elif target.is_dir() or beyond_link(self._root, path):
            return  # never through a link: what lies there is not ours
        self._remove_emptied(target)

    def _remove_emptied(self, target: Path) -> None:
        """Removes the folders that ``target``'s going left empty."""
        parent = target.parent
        while parent != self._root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def _restore_index(self, saved: str | None) -> None:
        """Puts the user's index entries back as the snapshot's ``saved`` had them."""
        current = self._tree.index_tree() if saved else None
        if saved is None or current is None or current == saved:
            return
        paths = self._objects.diff(saved, current)
        before = self._objects.entries(saved, paths)
        self._tree.set_index_entries({p: before.get(p) for p in paths})

    # -- after a pass -------------------------------------------------------

    @deferred_signals()
    def commit(
        self,
        *,
        baseline: str | None,
        files: Sequence[str],
        message: str,
        trailers: Mapping[str, str],
    ) -> Committed:
        """Commits the batch's own change on top of HEAD: each of ``files`` as
        it is now where the user had no uncommitted edit in it, else merged
        three-way (HEAD's, the baseline's, now) so the user's edit stays out.
        The working tree keeps both; what the user staged stays staged. When a
        user's edit and the batch's change cannot be separated, nothing is
        committed and ``Committed.note`` says why."""
        self._put_back(refs=False)
        # HEAD as the guard just saw it (the branch moves only if it is still
        # there, so a stale view fails safe).
        state, self._checked = self._checked or self._refs.state(), None
        if state.head_ref is None:
            raise WorkspaceError("cannot commit on a detached HEAD")
        subs = self._baseline(baseline).subs if baseline else {}
        inside = sorted(s for s in subs if files_inside(s, files))
        files = [f for f in files if not in_submodule(f, subs)]
        if inside and not files:
            return Committed(
                None,
                note="not committed: the batch changed files only inside the "
                f"repositories at {', '.join(inside)} (submodules, or other "
                "repositories in the work tree), left uncommitted there",
            )
        made = self._committer.made_before(state.head, baseline, trailers)
        if made is not None:  # by a runner killed before it was recorded
            committed = self._committer.adopt(made, files)
        else:
            base = self._baseline(baseline).tree if baseline else None
            committed = self._committer.commit(state, base, files, message, trailers)
        self._staged = self._tree.index_tree()  # our own update of the index
        return committed

    def _moved(self, state: RefState, commit: str) -> None:
        """Our own branch move is part of the state a later check keeps."""
        if self._state is None or state.head_ref is None:
            return
        kept = self._state.refs
        moved = {**dict(kept.refs), state.head_ref: commit}
        refs = attrs.evolve(
            kept,
            head_ref=state.head_ref,
            head=commit,
            refs=tuple(sorted(moved.items())),
        )
        self._state = attrs.evolve(self._state, refs=refs)

    def _kept_parts(
        self, baseline: str, commit: str
    ) -> list[tuple[str, KeptChanges, str, str]]:
        """The submodules' parts of the change the quarantine ``commit`` kept
        from the snapshot ``baseline``: each submodule's path, its kept
        changes, and its own snapshot and quarantine commits."""
        bases = parse_submodule_lines(self._objects.commit_parts(baseline)[1])
        if not bases:
            return []
        kept = parse_submodule_lines(self._objects.commit_parts(commit)[1])
        return [
            (path, workspace.kept, base, kept[path])
            for path, base in bases.items()
            if path in kept
            and (workspace := self._submodules.workspace(path, held=False))
        ]

    def sandbox(self) -> GitSandbox:
        """Where a proposed fix is checked, kept and tried out
        (:class:`~recovery_adapters.git.sandbox.GitSandbox`)."""
        if self._sandbox is None:
            self._sandbox = GitSandbox(self._git, self._objects, self._refs)
        return self._sandbox

    def default_strategy(self) -> ManualGitStrategy:
        """The strategy a run in a git workspace gets by default: manual-git."""
        return ManualGitStrategy()


def _open_submodule(folder: Path, *, other_than: Path) -> GitWorkspace | None:
    """The workspace of the submodule checked out at ``folder`` (no watch: a
    tree of the superproject's with a repository in it is scanned anyway);
    None where ``folder`` is not the top of a repository, or is a worktree of
    the repository ``other_than`` (the superproject's own: its refs are the
    same, and its HEAD is kept by the superproject's guard)."""
    try:
        workspace = GitWorkspace(folder, tracker=False)
    except WorkspaceError:
        return None
    if workspace.root != folder.resolve() or workspace._common_dir == other_than:
        workspace.close()
        return None
    return workspace
