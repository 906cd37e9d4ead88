"""GitWorkspace: snapshots of the working tree, changed files and commits, through
GitPython, never touching the user's index or branch except to commit a verified
batch.

Snapshots are made with a temporary index (a copy of the user's, so that git's
stat cache spares re-hashing unchanged files), ``git add -A`` into it, and
``write-tree``; they are kept as commits under
``refs/recovery/<run>/<batch>/<attempt>/baseline``. Git runs with
``core.fsmonitor=false`` and hooks pointed away for every call of ours.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import git

from recovery_core.errors import RecoveryError
from recovery_core.store import RECOVERY_DIR

__all__ = ["GitWorkspace", "WorkspaceError"]

_SAFE_CONFIG: Final = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    f"core.hooksPath={os.devnull}",
    "-c",
    "core.quotepath=false",
)
_REF_PART: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_IN_PROGRESS: Final = {
    "MERGE_HEAD": "a merge",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase or am",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
    "BISECT_LOG": "a bisect",
}


class WorkspaceError(RecoveryError):
    """The workspace cannot be used as it is (not a repository, an operation in
    progress, ...); nothing was changed."""

    exit_code = 2


def _ref_part(value: str) -> str:
    if (
        not _REF_PART.fullmatch(value)
        or ".." in value
        or value.endswith((".lock", "."))
    ):
        raise WorkspaceError(f"{value!r} cannot be part of a git ref name")
    return value


class GitWorkspace:
    """A git working tree as the workspace of a run.

    ``exclude`` lists paths (relative to the top of the working tree) whose
    changes never belong to a batch, such as the plan file when it lives in the
    workspace: the library writes it, a batch does not.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ".",
        *,
        exclude: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        try:
            self.repo = git.Repo(Path(path), search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise WorkspaceError(
                f"{Path(path).resolve()} is not inside a git repository"
            ) from None
        if self.repo.bare or self.repo.working_tree_dir is None:
            raise WorkspaceError(f"{path} is a bare repository: it has no working tree")
        self._root = Path(self.repo.working_tree_dir).resolve()
        self._git_dir = Path(self.repo.git_dir).resolve()
        self.exclude = tuple(self._relative(p) for p in exclude)
        self._trees: dict[str, str] = {}

    def _relative(self, path: str | os.PathLike[str]) -> str:
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = Path.cwd() / candidate
        try:
            return candidate.resolve().relative_to(self._root).as_posix()
        except ValueError:
            return ""

    def ignore(self, path: str | os.PathLike[str]) -> None:
        """Never counts changes to ``path`` as a batch's change."""
        relative = self._relative(path)
        if relative and relative not in self.exclude:
            self.exclude = (*self.exclude, relative)

    @property
    def root(self) -> Path:
        """The top of the working tree."""
        return self._root

    # -- git plumbing -------------------------------------------------------

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        command = ["git", *_SAFE_CONFIG, *args]
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
        try:
            out: str = self.repo.git.execute(
                command, env=full_env, strip_newline_in_stdout=False
            )
        except git.GitCommandError as exc:
            raise WorkspaceError(
                f"git {args[0]} failed in {self._root}: {str(exc.stderr).strip()}"
            ) from None
        return out

    @contextmanager
    def _temporary_index(self, *, from_user: bool) -> Iterator[dict[str, str]]:
        with tempfile.TemporaryDirectory(prefix="recovery-index-") as folder:
            index = Path(folder) / "index"
            user_index = self._git_dir / "index"
            if from_user and user_index.exists():
                shutil.copyfile(user_index, index)
            yield {"GIT_INDEX_FILE": str(index)}

    def _head(self) -> str | None:
        try:
            return (
                self._git("rev-parse", "--verify", "-q", "HEAD^{commit}").strip()
                or None
            )
        except WorkspaceError:
            return None

    def _tree_now(self) -> str:
        """The tree of the whole working tree as it is now (ignored files aside)."""
        with self._temporary_index(from_user=True) as env:
            self._git("add", "-A", "--", ".", env=env)
            for path in self.exclude:
                if path:
                    self._git(
                        "rm", "-q", "--cached", "--ignore-unmatch", "--", path, env=env
                    )
            return self._git("write-tree", env=env).strip()

    def _author(self) -> dict[str, str]:
        """The user's identity when git has one, else recovery-core's."""
        try:
            self._git("config", "user.email")
        except WorkspaceError:
            return dict(_IDENTITY)
        return {}

    # -- Workspace ----------------------------------------------------------

    def prepare(self) -> None:
        """Refuses to start in the middle of a merge, rebase, cherry-pick, revert
        or bisect; keeps ``.recovery/`` out of git through ``info/exclude``."""
        for marker, what in _IN_PROGRESS.items():
            if (self._git_dir / marker).exists():
                raise WorkspaceError(
                    f"{self._root} is in the middle of {what}; finish or abort it first"
                )
        exclude = self._git_dir / "info" / "exclude"
        line = f"/{RECOVERY_DIR}/"
        text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if line not in text.splitlines():
            exclude.parent.mkdir(parents=True, exist_ok=True)
            sep = "" if not text or text.endswith("\n") else "\n"
            exclude.write_text(f"{text}{sep}{line}\n", encoding="utf-8")

    def snapshot(self, *, run_id: str, batch_id: str, attempt: int) -> str:
        """Snapshots the whole working tree as a commit under
        ``refs/recovery/<run>/<batch>/<attempt>/baseline``; returns its id."""
        ref = (
            f"refs/recovery/{_ref_part(run_id)}/{_ref_part(batch_id)}/"
            f"{int(attempt)}/baseline"
        )
        tree = self._tree_now()
        head = self._head()
        parents = ["-p", head] if head else []
        commit = self._git(
            "commit-tree",
            *parents,
            "-m",
            f"recovery baseline: run {run_id} batch {batch_id} attempt {attempt}",
            tree,
            env=_IDENTITY,
        ).strip()
        self._git("update-ref", ref, commit)
        self._trees[commit] = tree
        return commit

    def _tree_of(self, snapshot: str) -> str:
        tree = self._trees.get(snapshot)
        if tree is None:
            tree = self._git("rev-parse", f"{snapshot}^{{tree}}").strip()
            self._trees[snapshot] = tree
        return tree

    def changed_files(self, baseline: str | None) -> tuple[str, ...]:
        """The paths that differ between the snapshot ``baseline`` and the working
        tree now (added, modified, deleted, mode changes), sorted."""
        if baseline is None:
            return ()
        out = self._git(
            "diff-tree",
            "-r",
            "--no-renames",
            "--name-only",
            "-z",
            self._tree_of(baseline),
            self._tree_now(),
        )
        return tuple(sorted(p for p in out.split("\0") if p))

    def commit(
        self,
        *,
        baseline: str | None,
        files: Sequence[str],
        message: str,
        trailers: Mapping[str, str],
    ) -> str:
        """Commits exactly ``files`` as they are in the working tree on top of HEAD,
        with ``trailers``; the user's other staged or unstaged work stays out."""
        head = self._head()
        body = (
            message.rstrip()
            + "\n\n"
            + "".join(f"{k}: {v}\n" for k, v in trailers.items())
        )
        with self._temporary_index(from_user=False) as env:
            if head:
                self._git("read-tree", head, env=env)
            if files:
                self._git("add", "-A", "--", *files, env=env)
            tree = self._git("write-tree", env=env).strip()
        parents = ["-p", head] if head else []
        with tempfile.TemporaryDirectory(prefix="recovery-msg-") as folder:
            message_file = Path(folder) / "message"
            message_file.write_text(body, encoding="utf-8")
            commit = self._git(
                "commit-tree",
                *parents,
                "-F",
                str(message_file),
                tree,
                env=self._author(),
            ).strip()
        self._git(
            "update-ref",
            "-m",
            "recovery: commit verified batch",
            "HEAD",
            commit,
            head or "",
        )
        if files:
            # The user's index still holds the old blobs of these paths; bring them
            # to the new commit so that `git status` shows no phantom changes.
            self._git("reset", "-q", "--", *files)
        return commit


_IDENTITY: Final = {
    "GIT_AUTHOR_NAME": "recovery-core",
    "GIT_AUTHOR_EMAIL": "recovery-core@localhost",
    "GIT_COMMITTER_NAME": "recovery-core",
    "GIT_COMMITTER_EMAIL": "recovery-core@localhost",
}
