"""The repository's own state, kept at a baseline and put back first.

A batch is code nobody reviewed, run with the user's repository at hand: it
could plant ``core.fsmonitor``, a hook, a filter driver, a ``core.worktree``
or an attributes file, move HEAD, or commit by itself, and the next git command
of ours (or the user's) would run its code or write somewhere else. So the
settings files (``config``, ``config.worktree``), ``info/`` and ``hooks/`` are
kept byte for byte and written back before any other git command of ours runs;
HEAD and the branches are then put back through git. New branches are left in
place and reported.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import attrs

from recovery_adapters.git.refs import Refs, RefState

__all__ = ["Guard", "RepositoryState"]


@attrs.frozen
class _File:
    """A file's bytes and mode, or a symlink's target (git follows links)."""

    content: bytes
    mode: int
    link: bool

    @classmethod
    def read(cls, path: Path) -> _File:
        if path.is_symlink():
            return cls(os.fsencode(path.readlink()), 0, True)
        return cls(path.read_bytes(), stat.S_IMODE(path.stat().st_mode), False)

    def write(self, path: Path) -> None:
        """Puts the file back whole: written beside it and renamed over it, so
        that a kill halfway never leaves the user's settings half written."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.recovery-{os.getpid()}")
        _remove(temporary)
        if self.link:
            temporary.symlink_to(os.fsdecode(self.content))
        else:
            temporary.write_bytes(self.content)
            temporary.chmod(self.mode)
        temporary.replace(path)


#: What a folder of ours holds: each file below it by relative path.
_Files = tuple[tuple[str, _File], ...]


@attrs.frozen
class RepositoryState:
    """What a batch must not change in the repository."""

    files: tuple[tuple[str, _File | None], ...]
    folders: tuple[tuple[str, _Files], ...]
    refs: RefState


#: What is reported when a file or folder of ours differs from its baseline.
_CHANGED = {
    "config": "the repository's git config was changed",
    "config.worktree": "the repository's git config.worktree was changed",
    ".git": "the work tree's .git file was changed",
    "info": "the repository's info/ files (exclude, attributes) were changed",
    "hooks": "the repository's hooks were changed",
}


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _read_file(path: Path) -> _File | None:
    """The file or symlink at ``path``, else None. Read every time: a stat
    cache could miss a same-size rewrite within the file system's time tick."""
    try:
        st = path.lstat()
        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            return _File.read(path)
    except OSError:
        pass
    return None


def _read_folder(folder: Path, prefix: str = "") -> _Files:
    """Every file (and symlink) below ``folder``, by relative path; a folder
    that is a symlink holds nothing of ours."""
    if not prefix and folder.is_symlink():
        return ()
    try:
        entries = list(os.scandir(folder))
    except (NotADirectoryError, FileNotFoundError):
        return ()
    found: list[tuple[str, _File]] = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            found += _read_folder(Path(entry.path), f"{prefix}{entry.name}/")
        elif (content := _read_file(Path(entry.path))) is not None:
            found.append((f"{prefix}{entry.name}", content))
    return tuple(sorted(found))


class Guard:
    """Keeps and puts back one repository's state. ``git_dir`` is the work
    tree's own git folder, ``common_dir`` the repository's (they differ in a
    linked worktree)."""

    def __init__(
        self, refs: Refs, *, root: Path, git_dir: Path, common_dir: Path
    ) -> None:
        self._refs = refs
        self._files = {
            "config": common_dir / "config",
            "config.worktree": git_dir / "config.worktree",
            ".git": root / ".git",  # a linked worktree's pointer file
        }
        self._folders = {"info": common_dir / "info", "hooks": common_dir / "hooks"}

    def state(self) -> RepositoryState:
        """The state now (files read as they are; refs through git)."""
        return attrs.evolve(self.files(), refs=self._refs.state())

    def files(self) -> RepositoryState:
        """The state of the settings files and folders, without the refs."""
        files = tuple((n, _read_file(p)) for n, p in self._files.items())
        folders = tuple((n, _read_folder(p)) for n, p in self._folders.items())
        return RepositoryState(files, folders, RefState(None, None, ()))

    def put_back(self, before: RepositoryState) -> tuple[str, ...]:
        """Writes back whatever differs from ``before``, the files first (so
        that the git commands that read the refs run with the settings as they
        were); returns what was found changed."""
        return (*self.put_back_files(before), *self._put_back_refs(before.refs))

    def put_back_files(self, before: RepositoryState) -> list[str]:
        """Writes back the settings files and folders that differ from
        ``before``; returns what was found changed."""
        now = self.files()
        problems: list[str] = []
        for (name, was), (_, found) in zip(before.files, now.files, strict=True):
            if was != found:
                problems.append(_CHANGED[name])
                if was is None:
                    _remove(self._files[name])
                else:
                    was.write(self._files[name])
        for (name, saved), (_, there) in zip(before.folders, now.folders, strict=True):
            if saved == there:
                continue
            problems.append(_CHANGED[name])
            folder, present = self._folders[name], dict(there)
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                _remove(folder)  # a link would send what is put back elsewhere
            for relative in present.keys() - dict(saved).keys():
                _remove(folder / relative)
            for relative, content in saved:
                if present.get(relative) != content:
                    content.write(folder / relative)
        return problems

    def _put_back_refs(self, before: RefState) -> list[str]:
        now = self._refs.state()
        problems: list[str] = []
        # HEAD is the branch it names, or the commit when detached: a branch
        # that moved under an unchanged HEAD is reported below, as that branch.
        head_was, head_now = before.head_ref or before.head, now.head_ref or now.head
        if head_was != head_now:
            problems.append(f"HEAD moved from {head_was} to {head_now}")
            self._refs.put_head(before)
        old, new = dict(before.branches), dict(now.branches)
        for name, sha in old.items():
            if new.get(name) != sha:
                problems.append(f"branch {name} was rewritten or deleted")
                self._refs.put_branch(name, sha)
        for name in sorted(new.keys() - old.keys()):
            problems.append(f"branch {name} was created (left in place)")
        return problems
