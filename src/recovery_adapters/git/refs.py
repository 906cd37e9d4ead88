"""Refs, read and written by git: ``for-each-ref`` to read them, one
long-lived ``update-ref --stdin`` to write them in transactions
(start/prepare/commit), so that git's own locking, reflogs, packed refs and
fsync rules apply. A branch moves only if it still points where it did
(compare-and-swap); a failed transaction changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs

from recovery_adapters.git.command import (
    OBJECT_ID,
    Git,
    GitError,
    Server,
    WorkspaceError,
)

__all__ = [
    "STASH",
    "SYMBOLIC",
    "RefMoved",
    "RefState",
    "RefUpdate",
    "Refs",
    "attempt_refs",
    "clear_stale_locks",
    "recovery_ref",
    "ref_part",
]

_REF_PART: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PUT_BACK: Final = "recovery: put back"
#: The stash: its entries are its reflog's.
STASH: Final = "refs/stash"
#: The refs a state keeps: the user's, not ours under ``refs/recovery/`` (git
#: lists only these, however many refs of ours there are). The
#: remote-tracking refs are among them: the user's next `git rebase
#: origin/main` takes what ``refs/remotes/origin/main`` names.
_KEPT: Final = (
    *("refs/heads/", "refs/remotes/", "refs/tags/", "refs/notes/"),
    *("refs/replace/", STASH),
)
#: What a symbolic ref's value starts with in a :class:`RefState`.
SYMBOLIC: Final = "ref: "
#: A lock under our own refs older than this is a killed git process's: git
#: holds one for the milliseconds of a write.
_STALE_LOCK_S: Final = 5.0


class RefMoved(WorkspaceError):
    """A ref no longer points where it was expected to; nothing was written."""

    exit_code = 5


def ref_part(value: str) -> str:
    """``value``, checked to be safe as one part of a ref name of ours."""
    if (
        not _REF_PART.fullmatch(value)
        or ".." in value
        or value.endswith((".lock", "."))
    ):
        raise WorkspaceError(f"{value!r} cannot be part of a git ref name")
    return value


def attempt_refs(run_id: str, batch_id: str, attempt: int) -> str:
    """``refs/recovery/<run>/<batch>/<attempt>``: where the refs of one
    attempt are (``baseline``, ``index``, ``quarantine``, ``proposal``)."""
    return f"refs/recovery/{ref_part(run_id)}/{ref_part(batch_id)}/{int(attempt)}"


def recovery_ref(ref: str) -> str:
    """``ref``, refused with :class:`WorkspaceError` unless one of ours: under
    ``refs/recovery/``, each part of it safe."""
    parts = ref.split("/")
    if parts[:2] != ["refs", "recovery"] or len(parts) < 3:
        raise WorkspaceError(f"{ref!r} is not a ref of recovery-core")
    for part in parts[2:]:
        ref_part(part)
    return ref


@attrs.frozen
class RefState:
    """HEAD (the branch it names, or None when detached; the commit it is at,
    or None on an unborn branch), the user's refs (branches, remote-tracking
    branches, tags, notes, replace refs, the stash) with the object each
    points at (``ref: <name>`` for a symbolic ref, such as
    ``refs/remotes/origin/HEAD``), and the stash's entries (commit and
    message, newest first)."""

    head_ref: str | None
    head: str | None
    refs: tuple[tuple[str, str], ...]
    stash: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class RefUpdate:
    """Set ``ref`` to ``new``; with ``old`` given, only if it points there now
    (``""``: only if it does not exist)."""

    ref: str
    new: str
    old: str | None = None


class Refs:
    """The refs of one repository."""

    def __init__(self, git: Git, *, null: str = "0" * 40) -> None:
        self._git = git
        self._null = null
        self._writer = Server(
            git, "update-ref", "--stdin", "-m", "recovery: commit verified batch"
        )

    def close(self) -> None:
        self._writer.close()

    def state(self, *, also: Sequence[str] = ()) -> RefState:
        """HEAD, the refs and the stash (and the refs ``also`` names, as
        ``git for-each-ref`` patterns), as git reads them now."""
        form = "--format=%(HEAD) %(refname) %(objectname) %(symref)"
        out = self._git.text("for-each-ref", form, *_KEPT, *also)
        refs: list[tuple[str, str]] = []
        head_ref: str | None = None
        head: str | None = None
        for line in out.splitlines():
            name, sha, *symref = line[2:].split(" ")  # the last line stripped
            target = "".join(symref)
            refs.append((name, f"{SYMBOLIC}{target}" if target else sha))
            if line[0] == "*":
                head_ref, head = name, sha
        if head_ref is None:  # detached, or on a branch with no commit yet
            head_ref = (
                self._git.text("symbolic-ref", "-q", "HEAD", codes=(0, 1)) or None
            )
        if head_ref is None:
            asked = ("rev-parse", "-q", "--verify", "HEAD^{commit}")
            found = self._git.text(*asked, codes=(0, 1))
            head = found if OBJECT_ID.fullmatch(found) else None
        stash = self.stash() if any(name == STASH for name, _ in refs) else ()
        return RefState(head_ref, head, tuple(sorted(refs)), stash)

    def stash(self) -> tuple[tuple[str, str], ...]:
        """The stash's entries, newest first: each one's commit and message
        (what ``git stash list`` shows), from the stash's reflog."""
        asked = ("log", "-g", "--no-show-signature", "--format=%H %gs", STASH)
        out = self._git.text(*asked, "--", codes=(0, 128))
        entries = (line.partition(" ") for line in out.splitlines())
        return tuple((sha, message) for sha, _, message in entries)

    def update(self, updates: Sequence[RefUpdate]) -> None:
        """Writes ``updates`` in one transaction: all of them, or none (then
        :class:`RefMoved` when a ref was not where it was expected)."""
        request = "start\n"
        for update in updates:
            if not update.ref.startswith("refs/") or not OBJECT_ID.fullmatch(
                update.new
            ):
                raise WorkspaceError(f"refusing to write ref {update.ref!r}")
            old = "" if update.old is None else f" {update.old or self._null}"
            request += f"update {update.ref} {update.new}{old}\n"
        try:
            # git ends at a failed prepare, having written nothing. Never asked
            # again: a transaction that may have been written.
            answers = self._writer.ask(
                f"{request}prepare\ncommit\n".encode(), answers=3, again=False
            )
        except GitError as exc:
            if "but expected" in str(exc) or "reference already exists" in str(exc):
                raise RefMoved(str(exc)) from None
            raise
        if answers != [b"start: ok", b"prepare: ok", b"commit: ok"]:
            self._writer.close()
            raise GitError(f"git update-ref answered {answers!r}")

    def put_head(self, state: RefState) -> None:
        """Points HEAD back where ``state`` had it."""
        if state.head_ref is not None:
            self._git.run("symbolic-ref", "HEAD", state.head_ref)
        elif state.head is not None:
            self._git.run(
                "update-ref", "--no-deref", "-m", _PUT_BACK, "HEAD", state.head
            )

    def put_ref(self, name: str, value: str) -> None:
        """Points the ref ``name`` itself (not a ref it names) back at
        ``value``: a commit, or ``ref: <name>`` for a symbolic ref."""
        if value.startswith(SYMBOLIC):
            target = value.removeprefix(SYMBOLIC)
            self._git.run("symbolic-ref", "-m", _PUT_BACK, name, target)
        else:
            self._git.run("update-ref", "--no-deref", "-m", _PUT_BACK, name, value)

    def delete(self, name: str, value: str) -> None:
        """Deletes the ref ``name`` itself if it still points at ``value`` (a
        symbolic ref whatever it names)."""
        old = [] if value.startswith(SYMBOLIC) else [value]
        self._git.run("update-ref", "--no-deref", "-m", _PUT_BACK, "-d", name, *old)

    def worktrees(self) -> list[tuple[str, str]]:
        """Each worktree of the repository, the main one first: its path, and
        its HEAD as ``ref: <branch>``, or the commit when detached, or ``""``
        for a bare repository (``git worktree list``)."""
        # Not -z (git 2.36): a path git must quote is then not matched, and
        # that worktree's HEAD is not kept.
        out = self._git.text("worktree", "list", "--porcelain")
        found: list[tuple[str, str]] = []
        for record in out.split("\n\n"):
            fields = dict(line.partition(" ")[::2] for line in record.splitlines())
            if "worktree" not in fields:
                continue
            head = fields.get("HEAD", "")
            if "branch" in fields:
                head = f"ref: {fields['branch']}"
            found.append((fields["worktree"], "" if "bare" in fields else head))
        return found

    def put_worktree_head(self, name: str, head: str) -> None:
        """Points the HEAD of another worktree (``name``, as git names it from
        here: ``main-worktree/HEAD``, ``worktrees/<id>/HEAD``) back at
        ``head``, a branch (``ref: <branch>``) or a commit."""
        if head.startswith("ref: "):
            self._git.run("symbolic-ref", "-m", _PUT_BACK, name, head[5:])
        else:
            self._git.run("update-ref", "--no-deref", "-m", _PUT_BACK, name, head)

    def put_stash(self, entries: Sequence[tuple[str, str]]) -> None:
        """Makes the stash anew with ``entries`` (newest first, each a commit
        and its message): deleting the stash ref deletes its reflog, and each
        entry is written back, oldest first, as ``git stash store`` does."""
        current = self._git.target(STASH)
        if current is not None:
            self._git.run("update-ref", "-d", STASH, current)
        for sha, message in reversed(entries):
            self._git.run("update-ref", "--create-reflog", "-m", message, STASH, sha)


def clear_stale_locks(common_dir: Path) -> None:
    """Removes the lock files that a git process of ours, killed while it wrote
    one of our refs, left under ``refs/recovery/`` (else every later write of
    that ref fails on "File exists" and the run is wedged). Only under our own
    namespace, where no process of the user writes, only while the caller
    holds the workspace (so no runner of ours is writing), and only locks older
    than any write takes. The one place we touch a file of git's by hand: git
    has no command that clears a lock."""
    now = time.time()
    for folder, _folders, files in os.walk(common_dir / "refs" / "recovery"):
        for lock in (Path(folder, name) for name in files if name.endswith(".lock")):
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours
                info = lock.lstat()
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime > _STALE_LOCK_S:
                    lock.unlink()
