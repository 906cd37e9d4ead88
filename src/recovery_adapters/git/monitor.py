"""A watch on a working tree through Linux inotify: which paths changed since
it was last asked, so that a snapshot after the first costs what the change
costs instead of a scan of every file.

It is conservative: whatever it cannot vouch for (the kernel's queue overflowed,
a watch could not be added, a nested repository or a file with several names
appeared, the tree's top moved) makes :meth:`TreeMonitor.changes` answer None,
and the caller scans the whole tree as before. A tree on a network or shared
file system (NFS, SMB, FUSE, 9P, ...), where changes can come from another
machine, is not watched at all. What inotify does not see it cannot report:
writes through a memory mapping whose file was closed first.

It watches folders, never ``.git``; events are read only when asked, and a
folder created meanwhile is reported whole, so what happened in it before its
watch was added is not lost.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import struct
import sys
from pathlib import Path
from typing import Final

__all__ = ["TreeMonitor"]

_MODIFY: Final = 0x2
_ATTRIB: Final = 0x4
_CLOSE_WRITE: Final = 0x8
_MOVED_FROM: Final = 0x40
_MOVED_TO: Final = 0x80
_CREATE: Final = 0x100
_DELETE: Final = 0x200
_DELETE_SELF: Final = 0x400
_MOVE_SELF: Final = 0x800
_UNMOUNT: Final = 0x2000
_OVERFLOW: Final = 0x4000
_IGNORED: Final = 0x8000
_ONLYDIR: Final = 0x01000000
_DONT_FOLLOW: Final = 0x02000000
_EXCL_UNLINK: Final = 0x04000000
_ISDIR: Final = 0x40000000
_NONBLOCK: Final = os.O_NONBLOCK
_CLOEXEC: Final = 0o2000000

_MASK: Final = (
    _MODIFY
    | _ATTRIB
    | _CLOSE_WRITE
    | _MOVED_FROM
    | _MOVED_TO
    | _CREATE
    | _DELETE
    | _DELETE_SELF
    | _MOVE_SELF
    | _ONLYDIR
    | _DONT_FOLLOW
    | _EXCL_UNLINK
)
_EVENT: Final = struct.Struct("iIII")
#: More folders than this and the tree is scanned instead of watched.
MAX_FOLDERS: Final = 20_000
#: File systems where changes can come from elsewhere (another machine, the
#: host of a virtual machine) without inotify seeing them: NFS, SMB/CIFS, FUSE
#: (sshfs and the like), 9P (shared folders), AFS, Coda, Ceph.
REMOTE_FILE_SYSTEMS: Final = frozenset(
    {
        0x6969,
        0x517B,
        0xFF534D42,
        0xFE534D42,
        0x65735546,
        0x01021997,
        0x5346414F,
        0x73757245,
        0x00C36400,
    }
)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1  # noqa: B018 - present?
    except (OSError, AttributeError):
        return None
    return libc


def _filesystem_type(libc: ctypes.CDLL, path: Path) -> int | None:
    """The ``f_type`` that statfs(2) gives for ``path`` (the struct's first
    field), or None when it cannot be asked."""
    buffer = ctypes.create_string_buffer(256)
    if libc.statfs(os.fsencode(path), buffer) != 0:
        return None
    return ctypes.c_ulong.from_buffer(buffer).value & 0xFFFFFFFF


def _linked(entry: os.DirEntry[str]) -> bool:
    """A file with another name too: a change made through that name is
    reported for that name's folder only, maybe outside the tree."""
    try:
        return entry.is_file(follow_symlinks=False) and (
            entry.stat(follow_symlinks=False).st_nlink > 1
        )
    except OSError:
        return False


class TreeMonitor:
    """The changed paths below ``root`` (relative, ``/``-separated), as inotify
    reports them, since the last call of :meth:`changes`."""

    def __init__(self, root: Path, libc: ctypes.CDLL, descriptor: int) -> None:
        self.root = root
        self._libc = libc
        self._fd = descriptor
        self._folders: dict[int, str] = {}
        self._uncertain = False
        self.broken = False

    @classmethod
    def start(cls, root: Path) -> TreeMonitor | None:
        """A monitor watching every folder below ``root`` (``.git`` aside), or
        None where that cannot be done (not Linux, too many folders, a nested
        repository, no watch left)."""
        libc = _libc()
        if libc is None or _filesystem_type(libc, root) in REMOTE_FILE_SYSTEMS:
            return None
        descriptor = libc.inotify_init1(_NONBLOCK | _CLOEXEC)
        if descriptor < 0:
            return None
        monitor = cls(root, libc, descriptor)
        if not monitor._watch_tree(""):
            monitor.close()
            return None
        monitor._uncertain = False
        return monitor

    def close(self) -> None:
        """Stops watching."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._folders.clear()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # late in interpreter shutdown
            self.close()

    def changes(self) -> set[str] | None:
        """The paths that changed since the last call (a folder stands for
        everything below it), or None when the monitor cannot vouch for them."""
        changed: set[str] = set()
        for wd, mask, name in self._read():
            if mask & (_OVERFLOW | _UNMOUNT):
                self._uncertain = True
                continue
            folder = self._folders.get(wd)
            if mask & _IGNORED:
                self._folders.pop(wd, None)
                continue
            if folder is None:
                continue  # a watch already dropped (its folder moved or went)
            if mask & (_DELETE_SELF | _MOVE_SELF):
                if folder == "":
                    self.broken = True  # the top of the tree itself
                continue  # its parent reports the path
            if not name:
                continue
            path = f"{folder}/{name}" if folder else name
            if folder == "" and name == ".git":
                continue
            changed.add(path)
            if mask & _ISDIR and mask & _MOVED_FROM:
                self._unwatch(path)
            made = mask & _ISDIR and mask & (_CREATE | _MOVED_TO)
            if made and not self._watch_tree(path):
                # Some folder goes unwatched from now on: this monitor can
                # never vouch for a change again.
                self.broken = True
        if self.broken:
            return None
        if self._uncertain:
            self._uncertain = False
            return None
        return changed

    # -- inside -------------------------------------------------------------

    def _read(self) -> list[tuple[int, int, str]]:
        events: list[tuple[int, int, str]] = []
        while self._fd >= 0:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                self._uncertain = True
                break
            position = 0
            while position + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, position)
                start = position + _EVENT.size
                raw = data[start : start + length].split(b"\0", 1)[0]
                events.append((wd, mask, os.fsdecode(raw)))
                position = start + length
        return events

    def _watch_tree(self, relative: str) -> bool:
        """Watches ``relative`` and every folder below it, each before its
        entries are listed, so that nothing made meanwhile goes unseen."""
        pending = [relative]
        while pending:
            current = pending.pop()
            full = self.root / current if current else self.root
            wd = self._libc.inotify_add_watch(
                self._fd, os.fsencode(full), ctypes.c_uint32(_MASK)
            )
            if wd < 0:
                code = ctypes.get_errno()
                if code in (errno.ENOENT, errno.ENOTDIR):
                    continue  # gone again already; its parent reports it
                return False
            self._folders[wd] = current
            if len(self._folders) > MAX_FOLDERS:
                return False
            try:
                entries = list(os.scandir(full))
            except FileNotFoundError:
                continue
            except OSError:
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

    def _unwatch(self, relative: str) -> None:
        prefix = f"{relative}/"
        for wd, folder in list(self._folders.items()):
            if folder == relative or folder.startswith(prefix):
                self._libc.inotify_rm_watch(self._fd, wd)
                self._folders.pop(wd, None)
