"""GitWorkspace: snapshots, quarantine and restore, commits and guards, through
GitPython, never touching the user's index, branch or files except to put back
what a batch changed or to commit a verified batch.

Snapshots are made with a temporary index (a copy of the user's, timestamp
and all, so that git's stat cache spares re-hashing unchanged files),
``git add -A`` into it, and ``write-tree``; they are kept as commits under
``refs/recovery/<run>/<batch>/<attempt>/``: ``baseline`` (the working tree
before the attempt), ``index`` (what the user had staged; HEAD itself when
nothing was) and, after a failure, ``quarantine`` (the faulty tree). The
snapshot's index is kept, so that what an attempt changed is one ``git status``
against it. Git runs with ``core.fsmonitor=false`` and hooks pointed away for
every call of ours; no string from a plan reaches git as an option (``--``
comes before every path, ref names are checked).

After the first snapshot, trees follow the paths a file-system watch saw
change (:mod:`recovery_adapters.git.monitor`) instead of a full scan, whenever
the watch can vouch for them. A passing batch with commit then costs three git
runs: ``check-ignore`` and ``hash-object`` for the files it made and
``update-index`` to bring the user's index along. Trees, commits, our own refs
and the branch move are read and written in-process
(:mod:`recovery_adapters.git.objects`).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final

import attrs
import git

from recovery_adapters.git.monitor import TreeMonitor
from recovery_adapters.git.objects import Entry, ObjectStore, RefMoved
from recovery_core import RecoveryError
from recovery_core.store import RECOVERY_DIR

__all__ = ["GitWorkspace", "Quarantined", "WorkspaceError"]

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
_NULL_SHA: Final = "0" * 40
_IDENTITY: Final = {
    "GIT_AUTHOR_NAME": "recovery-core",
    "GIT_AUTHOR_EMAIL": "recovery-core@localhost",
    "GIT_COMMITTER_NAME": "recovery-core",
    "GIT_COMMITTER_EMAIL": "recovery-core@localhost",
}
_OUR_NAME: Final = "recovery-core <recovery-core@localhost>"
#: How many snapshots' indexes a workspace keeps for `changed_files`.
_KEPT_INDEXES: Final = 4


class WorkspaceError(RecoveryError):
    """The workspace cannot be used as it is (not a repository, an operation in
    progress, ...); nothing was changed."""

    exit_code = 2


@attrs.frozen
class Quarantined:
    """Where a failed attempt's change was kept, and what was put back."""

    ref: str
    commit: str
    tree_id: str
    files: tuple[str, ...]


@attrs.frozen
class _Guard:
    """What a batch must not change in ``.git``: HEAD, branches, config, hooks."""

    head_ref: str | None
    head: str | None
    branches: tuple[tuple[str, str], ...]
    config: bytes | None
    hooks: tuple[tuple[str, _Hook], ...]


@attrs.frozen
class _Hook:
    """A file in the hooks folder: its bytes and mode, or a symlink's target (git
    follows links, and runs only executable hooks)."""

    content: bytes
    mode: int
    link: bool

    @classmethod
    def read(cls, path: Path) -> _Hook:
        if path.is_symlink():
            return cls(os.fsencode(path.readlink()), 0, True)
        return cls(path.read_bytes(), stat.S_IMODE(path.stat().st_mode), False)

    def write(self, path: Path) -> None:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        if self.link:
            path.symlink_to(os.fsdecode(self.content))
        else:
            path.write_bytes(self.content)
            path.chmod(self.mode)


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

    ``exclude`` lists paths (relative to the top of the working tree, or
    absolute) whose changes never belong to a batch, such as the plan file when
    it lives in the workspace: the library writes it, a batch does not.

    With ``monitor`` (the default), the first snapshot scans the whole working
    tree and starts a watch on it (Linux inotify); later trees are made from the
    paths the watch saw change, so a snapshot costs what the change costs, not
    what the repository holds. Whatever the watch cannot vouch for (an
    overflow, changed ignore rules, attributes, settings or index, a nested
    repository, another system) brings back a full scan. ``monitor=False``
    scans every time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ".",
        *,
        exclude: Sequence[str | os.PathLike[str]] = (),
        monitor: bool = True,
    ) -> None:
        try:
            self.repo = git.Repo(Path(path), search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise WorkspaceError(
                f"{Path(path).resolve()} is not inside a git repository"
            ) from None
        if self.repo.bare or self.repo.working_tree_dir is None:
            raise WorkspaceError(f"{path} is a bare repository: it has no working tree")
        # GitPython's own long-lived git (the cat-file that trees are read
        # through) runs with the same safe settings as every call of ours.
        self.repo.git.set_persistent_git_options(
            c=[_SAFE_CONFIG[i] for i in range(1, len(_SAFE_CONFIG), 2)]
        )
        self._root = Path(self.repo.working_tree_dir).resolve()
        self._git_dir = Path(self.repo.git_dir).resolve()
        common = Path(self.repo.common_dir)
        self._common_dir = (
            common if common.is_absolute() else self._git_dir / common
        ).resolve()
        self.exclude = tuple(p for p in (self._relative(p) for p in exclude) if p)
        self._trees: dict[str, str] = {}
        self._identity: tuple[str, str] | None = None
        # Objects and our own refs are written in-process where the repository
        # keeps SHA-1 objects and files refs (nearly always); git does it else.
        self._objects = ObjectStore(self.repo, self._common_dir)
        self._in_process = not (self._common_dir / "reftable").exists() and (
            "objectformat" not in _read_text(self._common_dir / "config").lower()
        )
        self._guards: dict[str, _Guard] = {}
        self._indexes: dict[str, str | None] = {}
        # The temporary index each recent snapshot was made with (the baseline,
        # with fresh stat data): `git status` against it lists what an attempt
        # changed in one git run.
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._baseline_indexes: dict[str, Path] = {}
        self._config: dict[str, str] | None = None
        self._serial = 0
        self._index_state: tuple[tuple[int, ...], str | None] | None = None
        # After the first full scan, a watch on the working tree (Linux) tells
        # which paths changed, so later trees cost what the change costs; the
        # tree last made, with what it depends on (ignore rules, attributes,
        # settings, the user's index), is where they start from.
        self._use_monitor = monitor and self._in_process
        self._monitor: TreeMonitor | None = None
        self._synced: tuple[str, tuple[object, ...]] | None = None
        self._hook_cache: dict[str, tuple[tuple[int, ...], _Hook]] = {}

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

    def _git(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        codes: tuple[int, ...] = (0,),
    ) -> str:
        command = ["git", *_SAFE_CONFIG, *args]
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
        with _stdin_file(stdin) as source:
            try:
                status, out, err = self.repo.git.execute(
                    command,
                    env=full_env,
                    istream=source,
                    strip_newline_in_stdout=False,
                    with_extended_output=True,
                    with_exceptions=False,
                )
            except git.GitCommandError as exc:  # git could not be started
                raise WorkspaceError(f"git {args[0]} failed: {exc}") from None
        if status not in codes:
            raise WorkspaceError(
                f"git {args[0]} failed in {self._root}: {str(err).strip()}"
            )
        return str(out)

    def _git_nul(
        self,
        *args: str,
        paths: Sequence[str],
        env: Mapping[str, str] | None = None,
        read: str = "--stdin",
    ) -> str:
        """Runs git with ``paths`` (or, with ``read="--index-info"``, index lines)
        on its standard input, each ended by NUL: no path is read as an option."""
        return self._git(
            *args, "-z", read, env=env, stdin="\0".join(paths).encode() + b"\0"
        )

    @contextmanager
    def _temporary_index(self, *, from_user: bool) -> Iterator[dict[str, str]]:
        self._serial += 1
        index = self._scratch_dir() / f"temporary-{self._serial}.index"
        user_index = self._git_dir / "index"
        if from_user and user_index.exists():
            # A second name for the user's index, not a copy: git never writes
            # an index in place (it writes index.lock and renames it), so the
            # user's stays as it is; and it keeps the index's timestamp, which
            # matters: git trusts an entry's stat data only when the file is
            # older than the index, and a copy stamped now would hide a
            # same-size edit made in the second the entry was staged.
            _link_or_copy(user_index, index)
        try:
            yield {"GIT_INDEX_FILE": str(index)}
        finally:
            index.unlink(missing_ok=True)
            index.with_name(f"{index.name}.lock").unlink(missing_ok=True)

    def _scratch_dir(self) -> Path:
        """This workspace's folder for temporary indexes (removed with it)."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="recovery-git-")
        return Path(self._scratch.name)

    def _read_refs(self) -> tuple[str | None, str | None, dict[str, str]] | None:
        """HEAD's branch, HEAD's commit and every branch's commit, read from the
        ref files, without starting git (a batch costs a handful of git runs, and
        these are read several times per batch). None where the repository keeps
        its refs in a way this does not read; callers then ask git."""
        if (self._common_dir / "reftable").exists():
            return None
        try:
            head_text = (self._git_dir / "HEAD").read_text(encoding="utf-8").strip()
            branches: dict[str, str] = {}
            packed = self._common_dir / "packed-refs"
            if packed.is_file():
                for line in packed.read_text(encoding="utf-8").splitlines():
                    if not line or line[0] in "#^":
                        continue
                    sha, _, name = line.partition(" ")
                    if name.startswith("refs/heads/"):
                        branches[name] = sha
            heads = self._common_dir / "refs" / "heads"
            for path in heads.rglob("*") if heads.is_dir() else ():
                if not path.is_file() or path.name.endswith(".lock"):
                    continue
                text = path.read_text(encoding="utf-8").strip()
                if not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", text):
                    return None
                branches[f"refs/heads/{path.relative_to(heads).as_posix()}"] = text
        except (OSError, UnicodeDecodeError):
            return None
        if head_text.startswith("ref: "):
            head_ref = head_text[len("ref: ") :]
            if not head_ref.startswith("refs/heads/"):
                return None
            return head_ref, branches.get(head_ref), branches
        if not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", head_text):
            return None
        return None, head_text, branches

    def _head(self) -> str | None:
        refs = self._read_refs()
        if refs is not None:
            return refs[1]
        try:
            return (
                self._git("rev-parse", "--verify", "-q", "HEAD^{commit}").strip()
                or None
            )
        except WorkspaceError:
            return None

    def _head_ref(self) -> str | None:
        refs = self._read_refs()
        if refs is not None:
            return refs[0]
        try:
            return self._git("symbolic-ref", "-q", "HEAD").strip() or None
        except WorkspaceError:
            return None

    def _tree_now(self, *, keep: Path | None = None) -> str:
        """The tree of the whole working tree as it is now (ignored files aside),
        from the last one and the paths the monitor saw change when it can
        vouch for them, else by a full scan whose index is moved to ``keep``
        when given."""
        followed = self._followed_tree()
        if followed is not None:
            return followed
        if self._monitor is not None:
            self._monitor.changes()  # what the scan is about to see anyway
            if self._monitor.broken:
                self._monitor_broken()
        elif self._use_monitor:
            self._monitor = TreeMonitor.start(self._root)
            self._use_monitor = self._monitor is not None
        context = self._context()
        if self._synced is not None and context != self._synced[1]:
            self._config = None  # the settings may have changed: read them again
            context = self._context()
        tree = self._scanned_tree(keep=keep)
        self._synced = (tree, context) if self._monitor is not None else None
        return tree

    def _followed_tree(self) -> str | None:
        """The tree now, from the last one and the monitor's changed paths, or
        None where that cannot be vouched for."""
        if self._monitor is None or self._synced is None:
            return None
        tree, context = self._synced
        if self._context() != context:
            return None
        changed = self._monitor.changes()
        if changed is None:
            if self._monitor.broken:
                self._monitor_broken()
            return None
        if changed:
            followed = self._follow(tree, changed)
            if followed is None:
                return None
            tree = followed
            self._synced = (tree, context)
        return tree

    def _monitor_broken(self) -> None:
        """Drops a monitor that cannot vouch for changes any more: every tree
        of this workspace is a full scan from now on."""
        if self._monitor is not None:
            self._monitor.close()
        self._monitor, self._use_monitor, self._synced = None, False, None

    def _context(self) -> tuple[object, ...]:
        """What the tree of a working tree depends on besides its files: the
        user's index (what is tracked), ignore rules and attributes outside
        the tree, git's settings, and the paths this workspace leaves out."""
        config = self._git_config()
        home = Path.home()
        xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "git"
        files = [
            self._common_dir / "info" / "exclude",
            self._common_dir / "info" / "attributes",
            self._common_dir / "config",
            self._git_dir / "config.worktree",
            home / ".gitconfig",
            xdg / "config",
            xdg / "ignore",
            xdg / "attributes",
            Path("/etc/gitconfig"),
            Path("/etc/gitattributes"),
        ]
        for key in ("core.excludesfile", "core.attributesfile"):
            if key in config:
                files.append(Path(config[key]).expanduser())
        return (self._index_key(), self.exclude, *map(_stat_key, files))

    def _follow(self, tree: str, changed: set[str]) -> str | None:
        """``tree`` with the ``changed`` paths (a folder standing for all below
        it) as ``git add -A`` would take them now; None where it cannot say."""
        if any(
            part in (".git", ".gitignore", ".gitattributes")
            for path in changed
            for part in path.split("/")
        ):
            return None
        present: set[str] = set()
        gone: set[str] = set()
        for path in changed:
            full = self._root / path
            if full.is_symlink() or full.is_file():
                present.add(path)
            elif full.is_dir():
                found = _files_below(full, path)
                if found is None:
                    return None  # a nested repository
                present.update(found)
                gone.add(path)  # a file it replaced, if any
            else:
                gone.add(path)
        if any(_has_other_names(self._root / path) for path in present):
            # A second name for a file: a change made through one is reported
            # for that one only, so the watch cannot vouch for changes again.
            self._monitor_broken()
            return None
        # What the tree had below a changed path and is no longer there.
        for path in list(gone):
            entry = self._objects.entry(tree, path)
            if entry is not None and entry.is_tree:
                gone.update(self._objects.entries(tree, [path]))
        gone -= present
        index_tree = self._index_tree()
        tracked = self._entries(index_tree, sorted(present)) if index_tree else {}
        known = self._objects.entries(tree, sorted(present))
        new = sorted(p for p in present if p not in known and p not in tracked)
        # Our own folder (the store, the log) is ignored by the rule prepare()
        # writes, and no rule can bring back what is below an ignored folder:
        # no need to ask git about the store's files after every event.
        ours = f"{RECOVERY_DIR}/"
        if f"/{ours}" in _read_text(self._common_dir / "info" / "exclude").split():
            ignored = {p for p in new if p.startswith(ours)}
            new = [p for p in new if p not in ignored]
        else:
            ignored = set()
        config = self._git_config()
        if not (
            _config_true(config.get("core.filemode", "true"))
            and _config_true(config.get("core.symlinks", "true"))
        ) or any("\n" in p or p.startswith('"') for p in present):
            return None
        try:
            ignored |= self._check_ignored(new) if new else set()
            kept = sorted(p for p in present if p not in ignored)
            entries = self._hashed_entries(kept) if kept else {}
        except WorkspaceError:
            return None  # a file went again while it was read: scan instead
        changes: dict[str, Entry | None] = dict.fromkeys(gone)
        changes.update(entries)
        changes.update(dict.fromkeys(self.exclude))
        return self._objects.with_changes(tree, changes)

    def _check_ignored(self, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` (untracked) that the ignore rules cover."""
        out = self._git(
            "check-ignore",
            "--no-index",
            "-z",
            "--stdin",
            stdin="\0".join(paths).encode() + b"\0",
            codes=(0, 1),  # 1: none of them is ignored
        )
        return {p for p in out.split("\0") if p}

    def _scanned_tree(self, *, keep: Path | None = None) -> str:
        """The tree of the whole working tree by a full scan (``git add -A`` into
        a temporary index); the index is moved to ``keep`` when given."""
        with self._temporary_index(from_user=True) as env:
            self._git("add", "-A", "--", ".", env=env)
            if self.exclude and self._in_process:
                tree = self._git("write-tree", env=env).strip()
                tree = self._objects.with_changes(
                    tree, dict.fromkeys(self.exclude, None)
                )
            elif self.exclude:
                self._git(
                    "rm",
                    "-q",
                    "--cached",
                    "--ignore-unmatch",
                    "--",
                    *self.exclude,
                    env=env,
                )
                tree = self._git("write-tree", env=env).strip()
            else:
                tree = self._git("write-tree", env=env).strip()
            if keep is not None:
                shutil.move(env["GIT_INDEX_FILE"], keep)
            return tree

    def _keep_index(self, name: str) -> Path:
        """Where the index of the snapshot ``baseline`` is kept (the last few)."""
        while len(self._baseline_indexes) >= _KEPT_INDEXES:
            oldest = next(iter(self._baseline_indexes))
            self._baseline_indexes.pop(oldest).unlink(missing_ok=True)
        return self._scratch_dir() / f"{name}.index"

    def _index_tree(self) -> str | None:
        """The tree of what the user has staged (None when the index cannot be
        written as a tree, e.g. unmerged paths); the user's index is not touched.

        Known without git while the index file is as this workspace last saw
        it: git replaces the file on every write, so its inode, size and times
        change, and our own update of it (a commit's) records the tree it makes.
        """
        key = self._index_key()
        if self._index_state is not None and self._index_state[0] == key:
            return self._index_state[1]
        with self._temporary_index(from_user=True) as env:
            try:
                tree: str | None = self._git("write-tree", env=env).strip()
            except WorkspaceError:
                tree = None
        if self._index_key() == key:  # not rewritten while we read it
            self._index_state = (key, tree)
        return tree

    def _index_key(self) -> tuple[int, ...]:
        try:
            info = (self._git_dir / "index").stat()
        except FileNotFoundError:
            return ()
        # Not the change time: our own hard links to the index change it.
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def _commit_tree(self, tree: str, parents: Sequence[str], message: str) -> str:
        """A commit of ours (a snapshot's), by recovery-core."""
        if self._in_process:
            return self._objects.write_commit(
                tree, parents, message, author=_OUR_NAME, committer=_OUR_NAME
            )
        args: list[str] = []
        for parent in parents:
            args += ["-p", parent]
        return self._git(
            "commit-tree", *args, "-m", message, tree, env=_IDENTITY
        ).strip()

    def _set_ref(self, ref: str, commit: str) -> None:
        """Points one of our refs (under refs/recovery/) at ``commit``."""
        if not (self._in_process and self._objects.set_ref(ref, commit)):
            self._git("update-ref", ref, commit)

    def _entries(self, tree: str, paths: Sequence[str]) -> dict[str, Entry]:
        """The entries of ``paths`` in ``tree`` (missing paths are left out)."""
        if self._in_process:
            return self._objects.entries(tree, paths)
        found: dict[str, Entry] = {}
        for chunk in _chunks(paths):
            out = self._git("ls-tree", "-r", "-z", "--full-tree", tree, "--", *chunk)
            for record in filter(None, out.split("\0")):
                meta, _, path = record.partition("\t")
                mode, _kind, sha = meta.split()
                found[path] = Entry(mode, sha)
        return found

    def _tree_of(self, snapshot: str) -> str:
        tree = self._trees.get(snapshot)
        if tree is None:
            if self._in_process:
                tree = self._objects.commit_tree(snapshot)
            else:
                tree = self._git("rev-parse", f"{snapshot}^{{tree}}").strip()
            self._trees[snapshot] = tree
        return tree

    def _ref_tree(self, ref: str) -> str | None:
        """The tree of the commit at ``ref``, or None when there is no such ref."""
        try:
            return (
                self._git("rev-parse", "--verify", "-q", f"{ref}^{{tree}}").strip()
                or None
            )
        except WorkspaceError:
            return None

    def _diff(self, old_tree: str, new_tree: str) -> tuple[str, ...]:
        if self._in_process:
            return self._objects.diff(old_tree, new_tree)
        out = self._git(
            "diff-tree", "-r", "--no-renames", "--name-only", "-z", old_tree, new_tree
        )
        return tuple(sorted(p for p in out.split("\0") if p))

    def _read_hook(self, path: Path) -> _Hook:
        """A hook as it is, read again only when its stat data changed (a batch
        that rewrites a hook changes its size, times or inode)."""
        info = path.lstat()
        key = (
            info.st_ino,
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
            info.st_mode,
        )
        cached = self._hook_cache.get(path.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        hook = _Hook.read(path)
        self._hook_cache[path.name] = (key, hook)
        return hook

    def _guard(self) -> _Guard:
        config = self._common_dir / "config"
        hooks_dir = self._common_dir / "hooks"
        hooks = (
            tuple(
                sorted(
                    (p.name, self._read_hook(p))
                    for p in hooks_dir.iterdir()
                    if p.is_file() or p.is_symlink()
                )
            )
            if hooks_dir.is_dir()
            else ()
        )
        refs = self._read_refs()
        if refs is None:
            listing = self._git(
                "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/"
            )
            found = dict(line.partition(" ")[::2] for line in listing.splitlines())
            refs = (self._head_ref(), self._head(), found)
        head_ref, head, branches = refs
        return _Guard(
            head_ref=head_ref,
            head=head,
            branches=tuple(sorted(branches.items())),
            config=config.read_bytes() if config.is_file() else None,
            hooks=hooks,
        )

    # -- Workspace ----------------------------------------------------------

    def prepare(self, *, commits: bool = False) -> None:
        """Refuses to start in the middle of a merge, rebase, cherry-pick, revert
        or bisect, or (when batches are to be committed) on a detached HEAD;
        keeps ``.recovery/`` out of git through ``info/exclude``."""
        for marker, what in _IN_PROGRESS.items():
            if (self._git_dir / marker).exists():
                raise WorkspaceError(
                    f"{self._root} is in the middle of {what}; finish or abort it first"
                )
        if commits and self._head_ref() is None:
            raise WorkspaceError(
                f"{self._root} has a detached HEAD: a batch with commit_strategy "
                "'commit' needs a branch to commit to (git switch BRANCH)"
            )
        exclude = self._common_dir / "info" / "exclude"
        line = f"/{RECOVERY_DIR}/"
        text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if line not in text.splitlines():
            exclude.parent.mkdir(parents=True, exist_ok=True)
            sep = "" if not text or text.endswith("\n") else "\n"
            exclude.write_text(f"{text}{sep}{line}\n", encoding="utf-8")

    @staticmethod
    def _ref(run_id: str, batch_id: str, attempt: int, name: str) -> str:
        return (
            f"refs/recovery/{_ref_part(run_id)}/{_ref_part(batch_id)}/"
            f"{int(attempt)}/{name}"
        )

    def snapshot(self, *, run_id: str, batch_id: str, attempt: int) -> str:
        """Snapshots the whole working tree as a commit under
        ``refs/recovery/<run>/<batch>/<attempt>/baseline`` (and what the user
        had staged under ``.../index``); returns the baseline commit's id."""
        ref = self._ref(run_id, batch_id, attempt, "baseline")
        guard = self._guard()
        kept = self._keep_index(ref.replace("/", "_"))
        tree = self._tree_now(keep=kept)
        index_tree = self._index_tree()
        parents = [guard.head] if guard.head else []
        commit = self._commit_tree(
            tree,
            parents,
            f"recovery baseline: run {run_id} batch {batch_id} attempt {attempt}",
        )
        self._set_ref(ref, commit)
        if index_tree is not None:
            if guard.head and index_tree == self._tree_of(guard.head):
                index_commit = guard.head  # nothing staged: HEAD says it all
            else:
                index_commit = self._commit_tree(
                    index_tree,
                    parents,
                    f"recovery index: run {run_id} batch {batch_id}",
                )
            self._set_ref(self._ref(run_id, batch_id, attempt, "index"), index_commit)
        self._trees[commit] = tree
        self._guards[commit] = guard
        self._indexes[commit] = index_tree
        if kept.is_file():  # a full scan's index (a followed tree has none)
            self._baseline_indexes[commit] = kept
        return commit

    def changed_files(self, baseline: str | None) -> tuple[str, ...]:
        """The paths that differ between the snapshot ``baseline`` and the working
        tree now (added, modified, deleted, mode changes), sorted."""
        if baseline is None:
            return ()
        kept = self._baseline_indexes.get(baseline)
        if kept is None or not kept.is_file():
            # A snapshot another process took: compare trees.
            return self._diff(self._tree_of(baseline), self._tree_now())
        # The snapshot's own index holds the baseline with its stat data: what
        # `git status` finds changed in the working tree, or new, is the change.
        out = self._git(
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--no-renames",
            "--ignore-submodules=dirty",
            env={"GIT_INDEX_FILE": str(kept)},
        )
        changed = {
            record[3:]
            for record in out.split("\0")
            if len(record) > 3 and (record[:2] == "??" or record[1] != " ")
        }
        return tuple(sorted(changed - set(self.exclude)))

    def check(self, baseline: str | None) -> tuple[str, ...]:
        """What the attempt since ``baseline`` changed in ``.git`` that a batch must
        not (HEAD moved, a branch rewritten, the config or a hook changed), each
        put back as it was; empty when nothing was."""
        before = self._guards.get(baseline or "")
        if before is None:
            return ()
        now = self._guard()
        problems: list[str] = []
        if now.head_ref != before.head_ref or (
            before.head_ref is None and now.head != before.head
        ):
            # A branch that moved under an unchanged HEAD is reported below, as
            # the branch it is.
            problems.append(
                f"HEAD moved from {before.head_ref or before.head} to "
                f"{now.head_ref or now.head}"
            )
            if before.head_ref is not None:
                self._git("symbolic-ref", "HEAD", before.head_ref)
            elif before.head is not None:
                self._git("update-ref", "--no-deref", "HEAD", before.head)
        old_branches, new_branches = dict(before.branches), dict(now.branches)
        for name, sha in old_branches.items():
            if new_branches.get(name) != sha:
                problems.append(f"branch {name} was rewritten or deleted")
                self._git("update-ref", "-m", "recovery: put back", name, sha)
        for name in sorted(set(new_branches) - set(old_branches)):
            problems.append(f"branch {name} was created (left in place)")
        config = self._common_dir / "config"
        if now.config != before.config and before.config is not None:
            problems.append("the repository's git config was changed")
            config.write_bytes(before.config)
        if now.hooks != before.hooks:
            problems.append("the repository's hooks were changed")
            hooks_dir = self._common_dir / "hooks"
            saved, found = dict(before.hooks), dict(now.hooks)
            for name in found.keys() - saved.keys():
                (hooks_dir / name).unlink()
            for name, hook in saved.items():
                if found.get(name) != hook:
                    hook.write(hooks_dir / name)
        return tuple(problems)

    def quarantine(
        self, *, run_id: str, batch_id: str, attempt: int, baseline: str
    ) -> Quarantined:
        """Keeps the faulty tree under ``.../quarantine`` and puts the paths the
        attempt changed back as they were at ``baseline``, and the user's staged
        entries back as they were; nothing else is touched."""
        faulty = self._tree_now()
        files = self._diff(self._tree_of(baseline), faulty)
        ref = self._ref(run_id, batch_id, attempt, "quarantine")
        commit = self._commit_tree(
            faulty,
            [baseline],
            f"recovery quarantine: run {run_id} batch {batch_id} attempt {attempt}",
        )
        self._set_ref(ref, commit)
        if baseline not in self._indexes:
            # Snapshot taken by another process (a runner that was killed): the
            # user's staged state is in the attempt's index ref.
            self._indexes[baseline] = self._ref_tree(
                self._ref(run_id, batch_id, attempt, "index")
            )
        self.restore(baseline, files)
        return Quarantined(ref=ref, commit=commit, tree_id=faulty, files=files)

    def restore(self, baseline: str, files: Sequence[str]) -> None:
        """Puts ``files`` back as they were in the snapshot ``baseline`` (removing
        those it did not have), then the user's index entries as they were."""
        wanted = self._entries(self._tree_of(baseline), files)
        if wanted:
            with self._temporary_index(from_user=False) as env:
                # Only the entries to put back, not the whole baseline tree: a
                # restore costs what the change costs, whatever the repository.
                self._git_nul(
                    "update-index",
                    paths=[f"{e.mode} {e.sha}\t{p}" for p, e in wanted.items()],
                    read="--index-info",
                    env=env,
                )
                for path in wanted:
                    self._clear_for(path)
                self._git_nul("checkout-index", "-f", paths=list(wanted), env=env)
        # Removed only now that the baseline's ignore rules are back: a path they
        # cover cannot be in any snapshot, so it may be the user's own ignored
        # file (a batch that edits .gitignore un-ignores it); it stays.
        gone = [path for path in files if path not in wanted]
        ignored = self._ignored(gone)
        for path in gone:
            if path not in ignored:
                self._remove(path)
        self._restore_index(baseline)

    def _ignored(self, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` that the ignore rules cover now, tracked or not."""
        found: set[str] = set()
        # An empty temporary index: ls-files --others then sees every file.
        with self._temporary_index(from_user=False) as env:
            for chunk in _chunks(paths):
                out = self._git(
                    "ls-files",
                    "-z",
                    "--others",
                    "--ignored",
                    "--exclude-standard",
                    "--",
                    *chunk,
                    env={**env, "GIT_LITERAL_PATHSPECS": "1"},
                )
                found.update(p for p in out.split("\0") if p)
        return found

    def _remove(self, path: str) -> None:
        target = self._root / path
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            return
        parent = target.parent
        while parent != self._root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def _clear_for(self, path: str) -> None:
        """Makes room for a file where the batch left a directory or a symlink."""
        target = self._root / path
        if target.is_symlink():
            target.unlink()
        elif target.is_dir() and not any(target.iterdir()):
            target.rmdir()

    def _restore_index(self, baseline: str) -> None:
        saved = self._indexes.get(baseline)
        if saved is None:
            return
        current = self._index_tree()
        if current is None or current == saved:
            return
        paths = self._diff(saved, current)
        before = self._entries(saved, paths)
        lines = [
            f"{before[p].mode} {before[p].sha}\t{p}"
            if p in before
            else f"0 {_NULL_SHA}\t{p}"
            for p in paths
        ]
        self._git_nul("update-index", paths=lines, read="--index-info")

    def commit(
        self,
        *,
        baseline: str | None,
        files: Sequence[str],
        message: str,
        trailers: Mapping[str, str],
    ) -> str:
        """Commits exactly ``files`` as they are in the working tree on top of HEAD,
        with ``trailers``, through a temporary index; what the user had staged
        stays staged and out of the commit."""
        head = self._head()
        head_ref = self._head_ref()
        if head_ref is None:
            raise WorkspaceError("cannot commit on a detached HEAD")
        body = (
            message.rstrip()
            + "\n\n"
            + "".join(f"{k}: {v}\n" for k, v in trailers.items())
        )
        if self._in_process:
            commit = self._commit_in_process(head, files, body)
        else:
            commit = self._commit_with_git(head, files, body)
        self._move_branch(head_ref, commit, head)
        self._sync_index(head, commit, files)
        return commit

    def _move_branch(self, ref: str, commit: str, old: str | None) -> None:
        """Moves the branch to the verified batch's commit, if it still points
        at ``old``, with a reflog line as git writes one."""
        message = "recovery: commit verified batch"
        if self._in_process:
            logging = self._git_config().get("core.logallrefupdates", "true")
            try:
                if self._objects.move_branch(
                    ref,
                    commit,
                    old,
                    message=message,
                    committer=self._author()[1],
                    head_log=self._git_dir / "logs" / "HEAD",
                    log_all=logging.lower() == "always" or _config_true(logging),
                ):
                    return
            except RefMoved as exc:
                raise WorkspaceError(
                    f"cannot commit the batch: {exc} (moved while the batch ran)"
                ) from None
        self._git("update-ref", "-m", message, ref, commit, old or _NULL_SHA)

    def _working_entries(self, files: Sequence[str]) -> dict[str, Entry]:
        """The entries ``files`` have in the working tree, as git would stage them
        (content filters, modes, symlinks); paths that are no file there are left
        out."""
        present = [p for p in files if _is_file(self._root / p)]
        if not present:
            return {}
        # The tree the monitor follows has them as they are now, when it can
        # vouch for it (nothing changed since, or only what it saw).
        followed = self._followed_tree()
        known = self._objects.entries(followed, present) if followed else {}
        found = {p: known[p] for p in present if p in known}
        if len(found) == len(present):
            return found
        return found | self._staged_entries([p for p in present if p not in found])

    def _staged_entries(self, present: Sequence[str]) -> dict[str, Entry]:
        """The entries of existing files as git would stage them."""
        config = self._git_config()
        if (
            _config_true(config.get("core.filemode", "true"))
            and _config_true(config.get("core.symlinks", "true"))
            and not any("\n" in p or p.startswith('"') for p in present)
        ):
            return self._hashed_entries(present)
        # Where git takes modes from the index (core.fileMode or core.symlinks
        # off), or a name cannot go on a line: an empty temporary index.
        with self._temporary_index(from_user=False) as env:
            self._git_nul("update-index", "--add", paths=present, env=env)
            out = self._git("ls-files", "-s", "-z", env=env)
        found: dict[str, Entry] = {}
        for record in filter(None, out.split("\0")):
            meta, _, path = record.partition("\t")
            mode, sha, _stage = meta.split()
            found[path] = Entry(mode, sha)
        return found

    def _hashed_entries(self, present: Sequence[str]) -> dict[str, Entry]:
        """Entries of existing files: blobs of regular files through one
        ``git hash-object -w --stdin-paths`` (which applies the path's content
        filters, as staging does), of symlinks from their targets; the mode from
        the file as git takes it (executable by its owner or not)."""
        found: dict[str, Entry] = {}
        regular: list[str] = []
        for path in present:
            target = self._root / path
            if target.is_symlink():
                link = os.fsencode(target.readlink())
                found[path] = Entry("120000", self._objects.write("blob", link))
            else:
                regular.append(path)
        if regular:
            out = self._git(
                "hash-object",
                "-w",
                "--stdin-paths",
                stdin="".join(f"{p}\n" for p in regular).encode(),
            )
            for path, sha in zip(regular, out.split(), strict=True):
                executable = (self._root / path).stat().st_mode & stat.S_IXUSR
                found[path] = Entry("100755" if executable else "100644", sha)
        return found

    def _git_config(self) -> dict[str, str]:
        """The repository's git settings (lower-case keys), read once."""
        if self._config is None:
            out = self._git("config", "--list", "-z")
            self._config = {}
            for record in filter(None, out.split("\0")):
                key, _, value = record.partition("\n")
                self._config[key.lower()] = value
        return self._config

    def _commit_in_process(
        self, head: str | None, files: Sequence[str], body: str
    ) -> str:
        working = self._working_entries(files)
        # A path that is no file in the working tree is removed (a folder in its
        # place brings its files in as paths of their own).
        changes = {path: working.get(path) for path in files}
        tree = self._objects.with_changes(
            self._objects.commit_tree(head) if head else None, changes
        )
        author, committer = self._author()
        return self._objects.write_commit(
            tree, [head] if head else [], body, author=author, committer=committer
        )

    def _commit_with_git(
        self, head: str | None, files: Sequence[str], body: str
    ) -> str:
        with self._temporary_index(from_user=False) as env:
            if head:
                self._git("read-tree", head, env=env)
            # update-index, not `git add`: a path the batch deleted that HEAD
            # never had (the user's untracked file) is no pathspec error, a file
            # under an ignore rule that the batch changed is still the batch's,
            # and a file may take a folder's place (--replace) or a folder a
            # file's (--force-remove).
            present = [p for p in files if _is_file(self._root / p)]
            gone = [p for p in files if not _is_file(self._root / p)]
            for flags, paths in (
                (("--force-remove",), gone),
                (("--add", "--replace"), present),
            ):
                if paths:
                    self._git_nul("update-index", *flags, paths=paths, env=env)
            tree = self._git("write-tree", env=env).strip()
        parents = ["-p", head] if head else []
        author, committer = self._author()
        with tempfile.TemporaryDirectory(prefix="recovery-msg-") as folder:
            message_file = Path(folder) / "message"
            message_file.write_text(body, encoding="utf-8")
            return self._git(
                "commit-tree",
                *parents,
                "-F",
                str(message_file),
                tree,
                env=_ident_env(author, committer),
            ).strip()

    def _staged(self, files: Sequence[str]) -> dict[str, Entry] | None:
        """The user's index entries of ``files``; None when any of them is
        unmerged (then the index is left as it is)."""
        found: dict[str, Entry] = {}
        wanted = set(files)
        for chunk in _chunks(files):
            out = self._git("--literal-pathspecs", "ls-files", "-s", "-z", "--", *chunk)
            for record in filter(None, out.split("\0")):
                meta, _, path = record.partition("\t")
                mode, sha, stage = meta.split()
                if path not in wanted:
                    continue  # a file below a listed folder
                if stage != "0":
                    return None
                found[path] = Entry(mode, sha)
        return found

    def _sync_index(self, old: str | None, new: str, files: Sequence[str]) -> None:
        """Moves the user's index entries of ``files`` from the old HEAD's to the new
        commit's, where the user had nothing staged in them; staged work stays."""
        if not files:
            return
        index_tree = self._index_tree() if self._in_process else None
        staged = (
            self._entries(index_tree, files)
            if index_tree is not None
            else self._staged(files)
        )
        if staged is None:
            return
        old_entries = self._entries(old, files) if old else {}
        # The user staged nothing in these: they take what the commit has, which
        # is the working tree's content (the commit was made from it), so git
        # stages them from the working tree, with fresh stat data (git status
        # then shows them clean without hashing them again).
        # A path that is no file now leaves the index (git refuses to "update" a
        # folder it has no entry for, and there is nothing to remove then).
        paths = [
            p
            for p in files
            if staged.get(p) == old_entries.get(p)
            and (p in staged or _is_file(self._root / p))
        ]
        if not paths:
            return
        context = self._context()
        self._git_nul("update-index", "--add", "--remove", "--replace", paths=paths)
        if self._synced is not None and self._synced[1] == context:
            # The paths our update tracks now were in the followed tree already
            # (it holds the working tree's untracked files that are not
            # ignored): it still holds, under the index as it is now.
            self._synced = (self._synced[0], self._context())
        if index_tree is not None:
            # What git just staged is the commit's entries (both were taken from
            # the working tree): the index's tree follows without asking git.
            new_entries = self._entries(new, paths)
            self._index_state = (
                self._index_key(),
                self._objects.with_changes(
                    index_tree, {p: new_entries.get(p) for p in paths}
                ),
            )

    def _author(self) -> tuple[str, str]:
        """The author and committer (``Name <email>``) of a verified batch's commit:
        the user's when git has an identity for them, else recovery-core's (asked
        once per workspace)."""
        if self._identity is None:
            if "user.email" not in self._git_config():
                self._identity = (_OUR_NAME, _OUR_NAME)
            else:
                author = self._git("var", "GIT_AUTHOR_IDENT")
                committer = self._git("var", "GIT_COMMITTER_IDENT")
                self._identity = (_ident_name(author), _ident_name(committer))
        return self._identity

    def default_strategy(self) -> object:
        """The strategy a run in a git workspace gets by default: manual-git."""
        from recovery_adapters.strategies import ManualGitStrategy

        return ManualGitStrategy()


def _config_true(value: str) -> bool:
    """A git boolean (a key with no value is true)."""
    return value.strip().lower() not in ("false", "no", "off", "0")


def _ident_name(ident: str) -> str:
    """``Name <email>`` from git's ``Name <email> 1700000000 +0100``."""
    return ident.strip().rsplit(" ", 2)[0]


def _ident_env(author: str, committer: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for role, ident in (("AUTHOR", author), ("COMMITTER", committer)):
        name, _, email = ident.rpartition(" <")
        env[f"GIT_{role}_NAME"] = name
        env[f"GIT_{role}_EMAIL"] = email.rstrip(">")
    return env


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _has_other_names(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink > 1


def _files_below(folder: Path, relative: str) -> list[str] | None:
    """The files (and symlinks) below ``folder``, as paths below ``relative``;
    None when a nested repository is among them."""
    found: list[str] = []
    for current, folders, files in os.walk(folder):
        if ".git" in folders or ".git" in files:
            return None
        inside = Path(current).relative_to(folder).as_posix()
        prefix = relative if inside == "." else f"{relative}/{inside}"
        for name in files:
            found.append(f"{prefix}/{name}")
        for name in list(folders):
            if (Path(current) / name).is_symlink():
                found.append(f"{prefix}/{name}")  # git keeps the link itself
                folders.remove(name)
    return found


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _is_file(path: Path) -> bool:
    """A file or a symlink (as git tracks them), not a folder or nothing."""
    return path.is_symlink() or path.is_file()


def _chunks(paths: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


#: Standard input up to this size goes through a pipe, filled before git starts
#: (a pipe holds at least 64 KiB on Linux); more goes through a temporary file.
_PIPED: Final = 16 * 1024


@contextmanager
def _stdin_file(data: bytes | None) -> Iterator[BinaryIO | None]:
    """A file holding ``data`` for a git command's standard input (GitPython
    takes a file), or None."""
    if data is None:
        yield None
        return
    if len(data) <= _PIPED:
        reading, writing = os.pipe()
        try:
            os.write(writing, data)
        finally:
            os.close(writing)
        with os.fdopen(reading, "rb") as source:
            yield source
        return
    with tempfile.TemporaryFile() as source:
        source.write(data)
        source.seek(0)
        yield source
