"""Which paths of a working tree changed since last asked, from Linux inotify
(through ``inotify_simple``), so that a snapshot after the first costs what the
change costs instead of a scan of every file.

It is conservative: when it cannot vouch for what changed, :meth:`Tracker.changes`
answers None and the caller scans the whole tree; once it can never vouch again,
:attr:`Tracker.usable` turns False and the caller drops it for good.

Limits: inotify misses writes through a memory mapping whose file was closed
first. Not watched at all: a tree on a network or shared file system (NFS, SMB,
FUSE, 9P, virtiofs, ...), where changes can come from another machine or a virtual
machine's host, or one with a nested repository or a file of several names.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from pathlib import Path
from typing import Final, Protocol

try:
    from inotify_simple import INotify, flags  # type: ignore[import-untyped]
except ImportError:  # not Linux (it needs termios and fcntl), or not installed
    INotify = flags = None

__all__ = [
    "MAX_FOLDERS",
    "MOUNTINFO",
    "InotifyTracker",
    "Tracker",
    "is_remote_mount",
    "start_tracker",
]

#: More folders than this and the tree is scanned instead of watched.
MAX_FOLDERS: Final = 20_000
#: Where changes can come from elsewhere (another machine, the host of a virtual
#: machine, a cluster node) without inotify seeing them; every ``fuse.*`` too.
_REMOTE: Final = (
    "9p afs beegfs ceph cifs coda davfs fuse fuseblk gfs2 glusterfs gpfs lustre "
    "ncpfs nfs nfs4 ocfs2 orangefs prl_fs smb3 smbfs vboxsf virtiofs vmhgfs"
)
_REMOTE_FILE_SYSTEMS: Final = frozenset(_REMOTE.split())
#: Asked of every folder. ONLYDIR and DONT_FOLLOW: a file or symbolic link found
#: where a folder was is not watched, its parent reports it; EXCL_UNLINK: nothing
#: from files deleted but still open.
_EVENTS: Final = (
    "MODIFY ATTRIB CLOSE_WRITE CREATE DELETE DELETE_SELF MOVE_SELF MOVED_FROM "
    "MOVED_TO ONLYDIR DONT_FOLLOW EXCL_UNLINK"
)
#: Where the kernel lists this process's mounts.
MOUNTINFO: Final = Path("/proc/self/mountinfo")
_OCTAL_ESCAPE: Final = re.compile(r"\\([0-7]{3})")

_Event = tuple[int, int, int, str]


class Tracker(Protocol):
    """Answers "which paths changed below the root since the last call"."""

    @property
    def usable(self) -> bool:
        """False once it can never vouch again; the caller then drops it."""

    def changes(self) -> set[str] | None:
        """The paths (relative to the root, ``/``-separated, a folder standing
        for everything below it) that changed since the last call, or None when
        it cannot vouch for them this time or is not usable."""

    def close(self) -> None:
        """Stops watching."""


class _Inotify(Protocol):
    """The part of ``inotify_simple.INotify`` used here (it ships no types)."""

    def add_watch(self, path: Path, mask: int) -> int: ...
    def rm_watch(self, wd: int) -> None: ...
    def read(self, timeout: int | None = None) -> list[_Event]: ...
    def close(self) -> None: ...


def start_tracker(root: Path) -> Tracker | None:
    """A tracker for the working tree at ``root``, or None where it cannot watch."""
    return InotifyTracker.start(root)


def is_remote_mount(mountinfo: str, path: Path) -> bool:
    """Whether ``path`` lies on a network or shared file system, going by the
    text of ``/proc/self/mountinfo``."""
    return _remote_at(_mounts(mountinfo), str(path.resolve()))


def _mounts(mountinfo: str) -> list[tuple[str, bool]]:
    """Each mount point (the fifth field) and whether its file system type (the
    first field after the ``-`` that ends the optional fields) is remote."""
    mounts = []
    for line in mountinfo.split("\n"):
        before, _, after = line.partition(" - ")
        fields, kind = before.split(), after.split()[:1]
        if len(fields) >= 5 and kind:
            # The kernel writes space, tab, newline and backslash as octal escapes.
            point = _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), fields[4])
            remote = kind[0] in _REMOTE_FILE_SYSTEMS or kind[0].startswith("fuse.")
            mounts.append((point, remote))
    return mounts


def _remote_at(mounts: list[tuple[str, bool]], target: str) -> bool:
    """Whether the mount holding ``target`` is remote: the longest mount point
    above it, of several stacked there the last listed (it is on top)."""
    length, remote = -1, False
    for point, point_remote in mounts:
        if len(point) >= length and _is_below(target, point):
            length, remote = len(point), point_remote
    return remote


def _is_below(path: str, point: str) -> bool:
    return path == point or path.startswith(point.rstrip("/") + "/")


def _mount_refused(root: Path, mountinfo: Path) -> bool:
    """Whether ``root``, or a mount inside it, is remote (or ``root`` cannot even
    be resolved); an unreadable mountinfo counts as all local."""
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return False
    try:
        top = str(root.resolve())
    except (OSError, RuntimeError):  # a loop of symbolic links: nothing to watch
        return True
    mounts = _mounts(text)
    return _remote_at(mounts, top) or any(
        remote and _is_below(point, top) for point, remote in mounts
    )


def _linked(entry: os.DirEntry[str]) -> bool:
    """A file with another name too: a change made through that name is
    reported for that name's folder only, maybe outside the tree."""
    try:
        return entry.is_file(follow_symlinks=False) and (
            entry.stat(follow_symlinks=False).st_nlink > 1
        )
    except OSError:
        return False


class InotifyTracker:
    """The changed paths below ``root`` since the last call of :meth:`changes`,
    as inotify reports them. Made by :meth:`start`."""

    def __init__(self, root: Path, inotify: _Inotify, max_folders: int) -> None:
        self.root = root
        self._inotify = inotify
        self._max_folders = max_folders
        self._mask = 0
        for name in _EVENTS.split():
            self._mask |= int(getattr(flags, name))
        self._folders: dict[int, str] = {}
        self._uncertain = self._broken = self._closed = False

    @classmethod
    def start(
        cls, root: Path, *, max_folders: int = MAX_FOLDERS, mountinfo: Path = MOUNTINFO
    ) -> InotifyTracker | None:
        """A tracker watching every folder below ``root`` but ``.git``, or None
        where it cannot: off Linux or without inotify_simple, on a remote file
        system (as ``mountinfo`` lists the mounts; unreadable, all are taken
        for local), with a nested repository or a hard-linked file, over
        ``max_folders`` folders, or with no watch left."""
        if INotify is None or not sys.platform.startswith("linux"):
            return None
        if _mount_refused(root, mountinfo):
            return None
        try:
            inotify = INotify(nonblocking=True)
        except OSError:  # no inotify instance left for this user
            return None
        tracker = cls(root, inotify, max_folders)
        # A root that is missing or not a folder is skipped like a folder gone
        # meanwhile, which would leave nothing watched to vouch for anything.
        if not (tracker._watch_tree("") and tracker._folders):
            tracker.close()
            return None
        return tracker

    @property
    def usable(self) -> bool:
        """False once it can never vouch again (a watch lost, the root moved
        or went, too many folders, a folder it could not watch, closed)."""
        return not (self._broken or self._closed)

    def changes(self) -> set[str] | None:
        """As :meth:`Tracker.changes` says."""
        if not self.usable:
            return None
        changed: set[str] = set()
        for wd, mask, _cookie, name in self._read():
            self._take(wd, mask, name, changed)
            if self._broken:
                return None
        if self._uncertain:
            self._uncertain = False
            return None
        return changed

    def close(self) -> None:
        """Stops watching and closes the inotify descriptor; again is harmless."""
        self._closed = True
        self._folders.clear()
        self._inotify.close()

    def __del__(self) -> None:
        # Not contextlib.suppress: late in interpreter shutdown the module's
        # globals may be gone already, and this must stay quiet then.
        try:  # noqa: SIM105
            self.close()
        except Exception:  # noqa: S110
            pass

    def _read(self) -> list[_Event]:
        """Every event queued so far, without waiting for more."""
        events: list[_Event] = []
        try:
            while batch := self._inotify.read(timeout=0):
                events.extend(batch)
        except BlockingIOError:
            pass
        except OSError:
            self._uncertain = True
        return events

    def _take(self, wd: int, mask: int, name: str, changed: set[str]) -> None:
        """Adds the path of one event to ``changed``, following folders made,
        moved in and moved out."""
        if mask & (flags.Q_OVERFLOW | flags.UNMOUNT):
            self._uncertain = True
            return
        if mask & flags.IGNORED:
            self._folders.pop(wd, None)
            return
        folder = self._folders.get(wd)
        if folder is None:
            return  # a watch already dropped (its folder moved out or went)
        if mask & (flags.DELETE_SELF | flags.MOVE_SELF):
            # Below the top its parent reports the path; the top itself is
            # no longer where the caller looks.
            self._broken |= folder == ""
            return
        if not name or (folder == "" and name == ".git"):
            return
        if name == ".git":
            # A repository made inside the tree: git sees one entry there (a
            # gitlink), not the files the watch would report from now on.
            self._broken = True
            return
        path = f"{folder}/{name}" if folder else name
        # A folder made or moved in is reported whole: what happened in it
        # before its watch was added went unseen.
        changed.add(path)
        if not mask & flags.ISDIR:
            return
        if mask & flags.MOVED_FROM:
            self._unwatch(path)
        if mask & (flags.CREATE | flags.MOVED_TO) and not self._watch_tree(path):
            self._broken = True  # some folder goes unwatched from now on

    def _watch_tree(self, relative: str) -> bool:
        """Watches ``relative`` and every folder below it, each before its
        entries are listed, so that nothing made meanwhile goes unseen."""
        pending = [relative]
        while pending:
            current = pending.pop()
            entries = self._watch_folder(current)
            if entries is None:
                return False
            for entry in entries:
                if entry.name == ".git":
                    if current:
                        return False  # a nested repository: git sees a gitlink
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(f"{current}/{entry.name}" if current else entry.name)
                elif _linked(entry):
                    return False
        return True

    def _watch_folder(self, relative: str) -> list[os.DirEntry[str]] | None:
        """Watches one folder, then lists it: its entries, none when it went
        again already (its parent reports it), None when it cannot be watched."""
        full = self.root / relative  # the root itself for ""
        try:
            wd = self._inotify.add_watch(full, self._mask)
        except OSError as error:
            return [] if error.errno in (errno.ENOENT, errno.ENOTDIR) else None
        self._folders[wd] = relative
        if len(self._folders) > self._max_folders:
            return None
        try:
            return list(os.scandir(full))
        except FileNotFoundError:
            return []
        except OSError:
            return None

    def _unwatch(self, relative: str) -> None:
        for wd, folder in list(self._folders.items()):
            if _is_below(folder, relative):
                del self._folders[wd]
                with contextlib.suppress(OSError):  # the kernel dropped it already
                    self._inotify.rm_watch(wd)
