"""The library's own files in the workspace, put back when a batch removed them.

A batch that cleans the working tree as build scripts do (``git clean -fdx``
removes untracked and ignored files) or removes ``.recovery/`` would take
with it what is no batch's, and in no snapshot:

- the default event store: every event of every run. So at each snapshot its
  files (the SQLite database, its write-ahead log and its shared memory) get
  a second name, a hard link in the work tree's git folder, where no clean
  reaches. The runner's open connections go on writing into the same files
  whatever their names, so linking them back under their names puts back
  every event, those written since the snapshot too. Only names are kept: a
  file a batch rewrote in place is not put back (``recovery verify`` finds
  such an edit), nor a store on another file system than the git folder;
  A runner killed after a batch removed the store, before it could put it
  back, leaves it under its second names only: :func:`put_back_left` links
  it back (the next runner here does, and any command looking for the store);
- the files the workspace leaves out of every tree, such as the plan file:
  kept as they were at the snapshot, and written back where a batch removed
  one (its status keys are then written again with the next transition).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from recovery_adapters.git.lock import WorkspaceInUse, WorkspaceLock
from recovery_adapters.git.worktree import IGNORE_ALL
from recovery_core.store import DEFAULT_STORE_NAME, RECOVERY_DIR

__all__ = ["KEEP_FOLDER", "OwnFiles", "put_back_left"]

#: The files of a SQLite store in WAL mode, the database first.
_NAMES: Final = (
    DEFAULT_STORE_NAME,
    *(f"{DEFAULT_STORE_NAME}-{end}" for end in ("wal", "shm")),
)
#: The folder of the second names, in the work tree's git folder.
KEEP_FOLDER: Final = "recovery-store"
#: A file left out of the trees larger than this is not kept.
_LARGEST: Final = 8 << 20

_Key = tuple[int, int]


def _key(path: Path) -> _Key | None:
    """Which file ``path`` names (a regular file only), or None."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def _drop(path: Path) -> None:
    """Removes the file ``path`` if there (asked first: fewer writes)."""
    if os.path.lexists(path):
        path.unlink(missing_ok=True)


def _make_room(path: Path, root: Path) -> None:
    """Takes away what a batch put where ``path`` goes: a folder, a file, a
    link (never followed), on the way to it from ``root`` too."""
    inside = path.relative_to(root).parts[:-1]
    for depth in range(1, len(inside) + 1):
        folder = root.joinpath(*inside[:depth])
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)


class OwnFiles:
    """The event store's files in ``root``'s ``.recovery/``, kept by a second
    name in ``keep`` (in the git folder), and the files below ``root`` that
    ``left_out()`` names, kept by their content."""

    def __init__(
        self, root: Path, keep: Path, left_out: Callable[[], Iterable[Path]]
    ) -> None:
        self._root, self._store = root, root / RECOVERY_DIR
        self._keep, self._left_out = keep, left_out
        self._kept: dict[str, _Key] = {}
        self._contents: dict[Path, tuple[bytes, int]] = {}

    def keep(self) -> None:
        """Keeps the files as they are now: each of the store's a second name
        (the same file keeps the one it has), the others their content."""
        kept: dict[str, _Key] = {}
        for name in _NAMES:
            key, second = _key(self._store / name), self._keep / name
            if key is not None and (_key(second) == key or self._link(name)):
                kept[name] = key
            else:  # gone since, or left by a runner killed here
                _drop(second)
        self._kept = kept
        self._contents = {}
        for path in self._left_out():
            with contextlib.suppress(OSError):
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_size <= _LARGEST:
                    mode = stat.S_IMODE(info.st_mode)
                    self._contents[path] = (path.read_bytes(), mode)

    def _link(self, name: str) -> bool:
        self._keep.mkdir(exist_ok=True)
        linking = self._keep / f".{name}.{os.getpid()}"
        _drop(linking)
        try:
            os.link(self._store / name, linking)
        except OSError:  # another file system, or no hard links
            return False
        linking.replace(self._keep / name)
        return True

    def put_back(self) -> list[str]:
        """Puts back what a batch removed or replaced; what was found."""
        found = self._put_back_store()
        for path, (content, mode) in self._contents.items():
            if _key(path) is None:
                _make_room(path, self._root)
                temporary = path.with_name(f".{path.name}.recovery-{os.getpid()}")
                temporary.write_bytes(content)
                temporary.chmod(mode)
                temporary.replace(path)
                found.append(f"{path} was removed (put back)")
        return found

    def _put_back_store(self) -> list[str]:
        """Links the store's files back under their names where the database
        is gone or another file is there."""
        database = _NAMES[0]
        if database not in self._kept:
            return []
        if _key(self._store / database) == self._kept[database]:
            return []
        for name, key in self._kept.items():
            target, second = self._store / name, self._keep / name
            if _key(target) != key and _key(second) == key:
                _make_room(target, self._root)
                os.link(second, target)
        return [
            f"the event store {self._store.name}/{database} was removed or "
            "replaced (put back as it was, with every event)"
        ]

    def close(self) -> None:
        """Takes the second names this one gave away."""
        for name in self._kept:
            _drop(self._keep / name)
        self._kept = {}
        with contextlib.suppress(OSError):
            self._keep.rmdir()


def put_back_left(root: Path, git_dir: Path, *, held: bool = False) -> bool:
    """Links back the store a runner killed after a batch removed it left
    under its second names only (in ``git_dir``), unless a live runner holds
    the workspace ``root`` (it puts the store back itself; ``held``: the
    caller holds it); whether it did. The shared memory is not linked back:
    the first connection makes it anew from the database and its log."""
    store, keep = root / RECOVERY_DIR, git_dir / KEEP_FOLDER
    if _key(store / _NAMES[0]) is not None or _key(keep / _NAMES[0]) is None:
        return False
    if held:
        return _link_back(root, keep)
    try:
        with WorkspaceLock(git_dir, root).hold({"pid": str(os.getpid())}):
            return _link_back(root, keep)
    except WorkspaceInUse:
        return False


def _link_back(root: Path, keep: Path) -> bool:
    store = root / RECOVERY_DIR
    if _key(store / _NAMES[0]) is not None:
        return False  # put back meanwhile
    for name in _NAMES[:2]:
        if _key(keep / name) is not None:
            _make_room(store / name, root)
            os.link(keep / name, store / name)
    for name in _NAMES:
        _drop(keep / name)
    with contextlib.suppress(OSError):
        keep.rmdir()
    ignore = store / ".gitignore"  # gone with the rest: out of git again
    if not ignore.exists():
        ignore.write_text(IGNORE_ALL)
    return True
