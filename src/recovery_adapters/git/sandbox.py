"""A proposed fix, away from the user's tree: checked, kept and tried out.

A patch an agent proposes is measured against the *faulty* tree (the one a
failed attempt left, kept under ``.../quarantine``), never the working tree,
which the quarantine restored. :meth:`GitSandbox.check_patch` refuses a patch
that names a path outside the workspace, under ``.git/`` or ``.recovery/``, or
through or into a symbolic link that leads out, and one that does not apply
there (``git apply --check`` on a temporary index holding the faulty tree);
else it returns the patched tree. :meth:`GitSandbox.keep` writes that tree as a
commit under ``refs/recovery/<run>/<batch>/<attempt>/proposal``, so that a
later process (``recovery resume``) finds it. :meth:`GitSandbox.worktree`
checks a commit out in a detached ``git worktree`` in a temporary folder
outside the user's tree, and always removes it (and prunes git's record of it)
afterwards; the user's index, branches and files are never touched.

Every git process goes through :class:`~recovery_adapters.git.command.Git`,
with a ``--`` before every path and no string from an agent as an option.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from recovery_adapters.git.command import (
    BINARY_DIFF,
    Git,
    GitError,
    WorkspaceError,
    git_reason,
    object_id,
)
from recovery_adapters.git.objects import Objects
from recovery_adapters.git.refs import Refs, RefUpdate, attempt_refs
from recovery_core.errors import PatchRefused
from recovery_core.ports import CheckedPatch

__all__ = [
    "SANDBOX_PREFIX",
    "CheckedPatch",
    "GitSandbox",
    "PatchRefused",
    "sweep_sandboxes",
]

#: How a proposed patch is applied: hunk headers recounted (agents often
#: miscount them), whitespace left as the patch has it.
_APPLY: Final = ("apply", "--recount", "--whitespace=nowarn")
_LINK: Final = "120000"
#: How the temporary folder of a sandbox worktree is named.
SANDBOX_PREFIX: Final = "recovery-sandbox-"
#: The largest patch taken from an agent.
MAX_PATCH_BYTES: Final = 4 << 20


class GitSandbox:
    """The :class:`~recovery_core.ports.Sandbox` of a
    :class:`~recovery_adapters.git.workspace.GitWorkspace` (its
    :meth:`~recovery_adapters.git.workspace.GitWorkspace.sandbox`): the git
    operations of a proposed fix, through the workspace's own git processes,
    object reader and ref writer."""

    def __init__(self, git: Git, objects: Objects, refs: Refs) -> None:
        self.root = git.root
        self._git, self._objects, self._refs = git, objects, refs

    # -- reading ------------------------------------------------------------

    def tree(self, commit: str) -> str:
        """The tree of ``commit`` (a commit id)."""
        return self._objects.commit_tree(object_id(commit))

    def diff(self, before: str, after: str, *, binary: bool = False) -> bytes:
        """The change from ``before`` to ``after`` (commits or trees), as
        ``git diff`` prints it (with ``binary``: as ``git apply`` takes it,
        binary files too)."""
        return self._git.diff(before, after, *BINARY_DIFF if binary else ())

    def changed(self, before: str, after: str) -> tuple[str, ...]:
        """The paths that differ between ``before`` and ``after`` (commits or
        trees), sorted."""
        return self._objects.diff(object_id(before), object_id(after))

    def proposal_ref(self, run_id: str, batch_id: str, attempt: int) -> str:
        """``refs/recovery/<run>/<batch>/<attempt>/proposal``."""
        return f"{attempt_refs(run_id, batch_id, attempt)}/proposal"

    def kept(self, ref: str) -> str | None:
        """The commit ``ref`` (one of ours) points at; None when it is gone."""
        return self._git.target(ref)

    # -- a proposed patch ---------------------------------------------------

    def check_patch(self, tree: str, patch: bytes) -> CheckedPatch:
        """Checks ``patch`` against the faulty ``tree`` and returns the tree it
        makes; raises :class:`PatchRefused` naming the check it fails."""
        if not patch.strip():
            raise PatchRefused("patch", "the patch is empty")
        if len(patch) > MAX_PATCH_BYTES:
            raise PatchRefused(
                "patch", f"the patch is larger than {MAX_PATCH_BYTES} bytes"
            )
        named = sorted(set(_header_paths(patch)) | set(self._numstat(patch)))
        if not named:
            raise PatchRefused("patch", "git finds no change in the patch")
        for path in named:
            _check_path(path)
        for path in named:
            self._check_not_through_link(tree, path)
        with tempfile.TemporaryDirectory(prefix="recovery-patch-") as scratch:
            index = Path(scratch) / "index"
            self._git.run("read-tree", tree, index=index)
            try:
                self._git.run(
                    *_APPLY, "--cached", "--check", "-", stdin=patch, index=index
                )
            except GitError as exc:
                raise PatchRefused(
                    "applies",
                    f"the patch does not apply to the faulty tree: {git_reason(exc)}",
                ) from None
            self._git.run(*_APPLY, "--cached", "-", stdin=patch, index=index)
            patched = self._git.text("write-tree", index=index)
        for path, entry in self._objects.entries(patched, named).items():
            if entry.mode == _LINK:  # never let through unread
                link = self._objects.read(entry.sha) or ("", b"/")
                _check_link_target(path, link[1].decode("utf-8", "replace"))
        return CheckedPatch(paths=tuple(named), tree=patched)

    def _check_not_through_link(self, tree: str, path: str) -> None:
        """Refuses a path one of whose folders is a symbolic link in ``tree``."""
        parts = path.split("/")
        for end in range(1, len(parts)):
            folder = "/".join(parts[:end])
            entry = self._objects.entry(tree, folder)
            if entry is not None and entry.mode == _LINK:
                raise PatchRefused(
                    "symlink",
                    f"the patch writes {path!r} through the symbolic link {folder!r}",
                )

    def _numstat(self, patch: bytes) -> list[str]:
        """The paths git reads in ``patch`` (both sides of a rename)."""
        try:
            out = self._git.run(*_APPLY, "--numstat", "-z", "-", stdin=patch)
        except GitError as exc:
            raise PatchRefused(
                "patch", f"git cannot read the patch: {git_reason(exc)}"
            ) from None
        fields = out.split(b"\0")
        paths: list[str] = []
        position = 0
        while position < len(fields):
            field = fields[position]
            position += 1
            if not field:
                continue
            counts = field.split(b"\t", 2)
            if len(counts) < 3:
                continue
            if counts[2]:
                paths.append(counts[2].decode("utf-8", "surrogateescape"))
            else:  # a rename or copy: the source and the destination follow
                pair = fields[position : position + 2]
                paths += [p.decode("utf-8", "surrogateescape") for p in pair]
                position += 2
        return paths

    def keep(self, ref: str, tree: str, parent: str, message: str) -> str:
        """Writes ``tree`` as a commit on ``parent`` under ``ref``; its id."""
        commit = self._objects.write_commit(
            object_id(tree), [object_id(parent)], message
        )
        self._refs.update([RefUpdate(ref, commit)])
        return commit

    def apply(self, patch: bytes) -> None:
        """Applies ``patch`` (as ``git diff --binary`` prints it) to the working
        tree only, after ``git apply --check``; nothing is written when it does
        not apply."""
        self._git.apply(patch, "the proposed fix does not apply to the working tree")

    # -- a sandbox worktree -------------------------------------------------

    @contextlib.contextmanager
    def worktree(self, commit: str, name: str = "sandbox") -> Iterator[Path]:
        """``commit`` checked out in a detached worktree in a new temporary
        folder outside the user's tree; removed with its folder afterwards,
        whatever happens in the block."""
        object_id(commit)
        folder = Path(tempfile.mkdtemp(prefix=SANDBOX_PREFIX)).resolve()
        if folder.is_relative_to(self.root):
            shutil.rmtree(folder, ignore_errors=True)
            raise WorkspaceError(
                f"the temporary folder {folder} is inside the workspace; set "
                "TMPDIR to a folder outside it"
            )
        path = folder / re.sub(r"[^A-Za-z0-9._-]", "-", name)[:80]
        try:
            self._git.run("worktree", "add", "--detach", "--", str(path), commit)
            yield path
        finally:
            _remove_worktree(self._git, path)
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(GitError):
                self._git.run("worktree", "prune")

    def worktrees(self) -> list[Path]:
        """The repository's worktrees (the main one first)."""
        return _worktrees(self._git)


def _worktrees(git: Git) -> list[Path]:
    listed = git.text("worktree", "list", "--porcelain", "-z").split("\0")
    return [Path(f.removeprefix("worktree ")) for f in listed if f[:9] == "worktree "]


def _remove_worktree(git: Git, path: Path) -> None:
    with contextlib.suppress(GitError):  # its folder may be gone already
        git.run("worktree", "remove", "--force", "--force", "--", str(path))


def sweep_sandboxes(git: Git) -> list[Path]:
    """Removes the sandbox worktrees that a runner killed while it tried a
    proposal out left behind (git's record of them, and their temporary
    folders); returns them. Only while the workspace is held: then no runner
    of ours has a sandbox open."""
    stale = [p for p in _worktrees(git) if p.parent.name.startswith(SANDBOX_PREFIX)]
    for path in stale:
        _remove_worktree(git, path)
        shutil.rmtree(path.parent, ignore_errors=True)
    if stale:
        with contextlib.suppress(GitError):
            git.run("worktree", "prune")
    return stale


_HEADER: Final = re.compile(
    rb"^(?:rename from |rename to |copy from |copy to )(.*)$", re.M
)
#: A file's header pair; a removed line ``--- x`` in a hunk is no header,
#: unless an added ``+++ y`` follows it at once (then it is read as one: a
#: refusal in doubt, never a path let through).
_PAIR: Final = re.compile(rb"^--- (.*)\r?\n\+\+\+ (.*)$", re.M)
_GIT_HEADER: Final = re.compile(rb"^diff --git (.*)$", re.M)


def _header_paths(patch: bytes) -> Iterator[str]:
    """The paths the patch's own headers name, as a reader of it would take
    them (so that a path git refuses to read is still refused by name)."""
    for match in _HEADER.finditer(patch):
        yield _unquote(match[1].split(b"\t")[0].rstrip(b"\r"))
    for match in _PAIR.finditer(patch):
        for side in (match[1], match[2]):
            name = _unquote(side.split(b"\t")[0].rstrip(b"\r"))
            if name != "/dev/null":
                yield name[2:] if name[:2] in ("a/", "b/") else name
    for match in _GIT_HEADER.finditer(patch):
        text = match[1].decode("utf-8", "surrogateescape")
        if text.startswith("a/") and " b/" in text:
            left, _, right = text[2:].partition(" b/")
            yield left
            yield right


def _unquote(raw: bytes) -> str:
    """A path as git prints it, quoted C-style when it has odd characters."""
    text = raw.decode("utf-8", "surrogateescape").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        body = text[1:-1].encode("latin-1", "backslashreplace")
        try:
            return (
                body.decode("unicode_escape")
                .encode("latin-1")
                .decode("utf-8", "surrogateescape")
            )
        except (UnicodeDecodeError, UnicodeEncodeError):
            return text[1:-1]
    return text


def _check_path(path: str) -> None:
    """Refuses a path outside the workspace, or under ``.git/`` or ours."""
    parts = path.replace("\\", "/").split("/")
    if (
        not path
        or "\0" in path
        or path.startswith(("/", "\\"))
        or re.match(r"[A-Za-z]:", path)
    ):
        raise PatchRefused(
            "inside", f"the patch names {path!r}, which is not inside the workspace"
        )
    if ".." in parts:
        raise PatchRefused(
            "inside",
            f"the patch names {path!r}, which leads outside the workspace",
        )
    lowered = [part.lower().rstrip(". ") for part in parts]
    if ".git" in lowered or any(p.startswith("git~") for p in lowered):
        raise PatchRefused(
            "git_dir", f"the patch touches {path!r}, under .git/ (git's own files)"
        )
    if lowered[0] == ".recovery":
        raise PatchRefused(
            "git_dir", f"the patch touches {path!r}, under .recovery/ (recovery-core's)"
        )


def _check_link_target(path: str, target: str) -> None:
    """Refuses a symbolic link that leads outside the workspace or into
    ``.git/``."""
    if target.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", target):
        raise PatchRefused(
            "symlink",
            f"the patch makes {path!r} a symbolic link to {target!r}, outside the "
            "workspace",
        )
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    first = resolved.split("/")[0].lower()
    if resolved == ".." or resolved.startswith("../"):
        raise PatchRefused(
            "symlink",
            f"the patch makes {path!r} a symbolic link to {target!r}, which leads "
            "outside the workspace",
        )
    if first in (".git", ".recovery"):
        raise PatchRefused(
            "symlink",
            f"the patch makes {path!r} a symbolic link into {first}/",
        )
