"""Which paths of a working tree changed since the last time it was asked, as
Linux inotify reports them (through the ``inotify_simple`` package), so that a
snapshot after the first costs what the change costs instead of a scan of every
file.

It is conservative: whatever it cannot vouch for makes
:meth:`Tracker.changes` answer None, and the caller scans the whole tree as
before. Once a tracker can never vouch again (a folder it could not watch, too
many folders, the top of the tree moved or went), :attr:`Tracker.usable` turns
False and the caller drops it for good.

Limits: what inotify does not see it cannot report, namely writes through a
memory mapping whose file was closed first. A tree on a network or shared file
system (NFS, SMB, FUSE, 9P, virtiofs, ...), where changes can come from another
machine or from the host of a virtual machine, is not watched at all; nor is a
tree with a nested repository or with a file that has several names.

It watches folders, never ``.git`` at the top; events are read only when asked,
and a folder created or moved in meanwhile is reported whole, so what happened
in it before its watch was added is not lost.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Protocol

try:
    from inotify_simple import INotify, flags, masks  # type: ignore[import-untyped]
except ImportError:  # not Linux (it needs termios and fcntl), or not installed
    INotify = flags = masks = None

__all__ = [
    "MAX_FOLDERS",
    "InotifyTracker",
    "Tracker",
    "is_remote_mount",
    "start_tracker",
]

#: More folders than this and the tree is scanned instead of watched.
MAX_FOLDERS: Final = 20_000
#: File systems where changes can come from elsewhere (another machine, the
#: host of a virtual machine, a cluster node) without inotify seeing them.
#: Every FUSE file system counts too, as the statfs check before did.
_REMOTE: Final = (
    "9p afs beegfs ceph cifs coda davfs fuse fuseblk gfs2 glusterfs gpfs lustre "
    "ncpfs nfs nfs4 ocfs2 orangefs prl_fs smb3 smbfs vboxsf virtiofs vmhgfs"
)
_REMOTE_FILE_SYSTEMS: Final = frozenset(_REMOTE.split())
_MOUNTINFO: Final = Path("/proc/self/mountinfo")
_OCTAL_ESCAPE: Final = re.compile(r"\\([0-7]{3})")

_Event = tuple[int, int, int, str]


class Tracker(Protocol):
    """Answers "which paths changed below the root since the last call"."""

    @property
    def usable(self) -> bool:
        """False once it can never vouch again; the caller then drops it."""
        ...

    def changes(self) -> set[str] | None:
        """The paths (relative to the root, ``/``-separated, a folder standing
        for everything below it) that changed since the last call, or None when
        it cannot vouch for them this time or is not usable."""
        ...

    def close(self) -> None:
        """Stops watching."""
        ...


class _Inotify(Protocol):
    """The part of ``inotify_simple.INotify`` used here (it ships no types)."""

    def add_watch(self, path: Path, mask: int) -> int: ...
    def rm_watch(self, wd: int) -> None: ...
    def read(self, timeout: int | None = None) -> list[_Event]: ...
    def close(self) -> None: ...


def start_tracker(root: Path) -> Tracker | None:
    """A tracker for the working tree at ``root``, or None where it cannot be
    watched."""
    return InotifyTracker.start(root)


def is_remote_mount(mountinfo: str, path: Path) -> bool:
    """Whether ``path`` lies on a network or shared file system, from the text
    of ``/proc/self/mountinfo``: the mount whose mount point is the longest
    prefix of the resolved path decides (the last one listed when several are
    stacked on the same point, as that one is on top)."""
    return _is_remote(_mount_type(mountinfo, str(path.resolve())))


def _mount_type(mountinfo: str, target: str) -> str:
    """The file system type of the mount holding the resolved path ``target``,
    or "" when mountinfo lists none."""
    length, kind = -1, ""
    for point, fs_type in _mounts(mountinfo):
        if _is_below(target, point) and len(point) >= length:
            length, kind = len(point), fs_type
    return kind


def _mounts(mountinfo: str) -> Iterator[tuple[str, str]]:
    """The mount point and file system type of each line of mountinfo: the
    fifth field, and the first after the ``-`` that ends the optional fields."""
    for line in mountinfo.split("\n"):
        before, separator, after = line.partition(" - ")
        fields, rest = before.split(), after.split()
        if separator and len(fields) >= 5 and rest:
            yield _OCTAL_ESCAPE.sub(_unescape, fields[4]), rest[0]


def _unescape(match: re.Match[str]) -> str:
    # The kernel writes space, tab, newline and backslash as octal escapes.
    return chr(int(match.group(1), 8))


def _is_below(path: str, point: str) -> bool:
    return path == point or path.startswith(point.rstrip("/") + "/")


def _is_remote(fs_type: str) -> bool:
    return fs_type in _REMOTE_FILE_SYSTEMS or fs_type.startswith("fuse.")


def _mount_refused(root: Path) -> bool:
    """Whether ``root``, or a mount inside it, is on a remote file system (or
    its path cannot even be resolved); an unreadable mountinfo counts as all
    local."""
    try:
        mountinfo = _MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return False
    try:
        top = str(root.resolve())
    except (OSError, RuntimeError):  # a loop of symbolic links: nothing to watch
        return True
    inside = (p for p, kind in _mounts(mountinfo) if _is_remote(kind))
    return _is_remote(_mount_type(mountinfo, top)) or any(
        _is_below(point, top) for point in inside
    )


def _watch_mask() -> int:
    """The events asked for on every folder. ONLYDIR and DONT_FOLLOW: a file or
    a symbolic link found where a folder was is not watched, its parent reports
    it; EXCL_UNLINK: nothing from files still open but already deleted."""
    names = "MODIFY ATTRIB CLOSE_WRITE CREATE DELETE DELETE_SELF MOVE_SELF"
    names += " ONLYDIR DONT_FOLLOW EXCL_UNLINK"
    mask = masks.MOVE
    for name in names.split():
        mask |= getattr(flags, name)
    return int(mask)


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
    """The changed paths below ``root`` (relative, ``/``-separated), as inotify
    reports them, since the last call of :meth:`changes`. Made by
    :meth:`start`."""

    def __init__(self, root: Path, inotify: _Inotify, max_folders: int) -> None:
        self.root = root
        self._inotify = inotify
        self._max_folders = max_folders
        self._mask = _watch_mask()
        self._folders: dict[int, str] = {}
        self._uncertain = False
        self._broken = False
        self._closed = False

    @classmethod
    def start(
        cls, root: Path, *, max_folders: int = MAX_FOLDERS
    ) -> InotifyTracker | None:
        """A tracker watching every folder below ``root`` (``.git`` aside), or
        None where it cannot watch: not Linux or inotify_simple not importable,
        a remote or shared file system, a nested repository (a ``.git`` below
        the top), a regular file with several hard links, more than
        ``max_folders`` folders, no watch left."""
        if INotify is None or not sys.platform.startswith("linux"):
            return None
        if _mount_refused(root):
            return None
        try:
            inotify = INotify(nonblocking=True)
        except OSError:  # no inotify instance left for this user
            return None
        tracker = cls(root, inotify, max_folders)
        if not tracker._watch_top():
            tracker.close()
            return None
        return tracker

    @property
    def usable(self) -> bool:
        """False once it can never vouch again (a watch lost, the root moved
        or went, too many folders, a folder it could not watch, closed)."""
        return not (self._broken or self._closed)

    def changes(self) -> set[str] | None:
        """The paths that changed since the last call (a folder stands for
        everything below it), or None when it cannot vouch for them."""
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

    # -- inside -------------------------------------------------------------

    def _read(self) -> list[_Event]:
        """Every event queued so far, without waiting for more."""
        events: list[_Event] = []
        while True:
            try:
                batch = self._inotify.read(timeout=0)
            except BlockingIOError:
                break
            except OSError:
                self._uncertain = True
                break
            if not batch:
                break
            events.extend(batch)
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
            self._broken = self._broken or folder == ""
            return
        if not name or (folder == "" and name == ".git"):
            return
        path = f"{folder}/{name}" if folder else name
        changed.add(path)
        if mask & flags.ISDIR:
            self._follow_folder(path, mask)

    def _follow_folder(self, path: str, mask: int) -> None:
        if mask & flags.MOVED_FROM:
            self._unwatch(path)
        made = mask & (flags.CREATE | flags.MOVED_TO)
        if made and not self._watch_tree(path):
            # Some folder goes unwatched from now on: this tracker can never
            # vouch for a change again.
            self._broken = True

    def _watch_top(self) -> bool:
        # A root that is missing or not a folder would be skipped like a folder
        # gone meanwhile, leaving nothing watched that vouches for anything.
        return self._watch_tree("") and bool(self._folders)

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
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(f"{current}/{entry.name}" if current else entry.name)
                elif _linked(entry):
                    return False
        return True

    def _watch_folder(self, relative: str) -> list[os.DirEntry[str]] | None:
        """Watches one folder, then lists it: its entries, none when it went
        again already (its parent reports it), None when it cannot be watched."""
        full = self.root / relative if relative else self.root
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
        prefix = f"{relative}/"
        for wd, folder in list(self._folders.items()):
            if folder == relative or folder.startswith(prefix):
                self._folders.pop(wd)
                with contextlib.suppress(OSError):  # the kernel dropped it already
                    self._inotify.rm_watch(wd)
