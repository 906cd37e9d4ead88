"""Fault injection for the ``recovery`` command, from outside the library.

Put this folder first on the ``PYTHONPATH`` of a ``recovery`` process (and of
that process only: it takes its own folder off ``PYTHONPATH`` and its variables
out of the environment as it loads, so the actions and steps the runner starts
never see it). When one of its variables is set it wraps, before the library
runs, every point where the process writes something:

- the event store: eventsourcing's SQLite recorder ``insert_events`` (events
  and snapshots) and its table creation (``store.insert``, ``store.create``);
- each git command that writes, started through ``subprocess.run``
  (``git.update-ref``, ``git.update-index``, ``git.checkout-index``,
  ``git.hash-object`` with ``-w``, ``git.write-tree``, ``git.add``,
  ``git.symbolic-ref`` with a target, ...), and each request to a long-lived
  git process that writes (``git-server.mktree``, ``git-server.hash-object``,
  ``git-server.update-ref``: ``Server.talk`` in
  ``recovery_adapters.git.command``);
- each file write in the folder ``RECOVERY_CRASH_ROOT`` (the workspace and its
  neighbours): ``os.replace``/``os.rename`` (and so ``Path.replace``/
  ``Path.rename``), ``open`` in ``w``/``a``/``x``/``+`` mode (so
  ``Path.write_text``, ``os.fdopen``), ``os.open`` that may write (so
  ``tempfile.mkstemp``), ``os.unlink``/``os.remove``/``os.rmdir``,
  ``os.ftruncate`` and ``os.pwrite``.

Each point is crossed ``before`` and ``after`` the write, and crossings are
counted per point (``git.update-ref:before`` is one point). Variables:

``RECOVERY_CRASH_TRACE=FILE``
    count mode: appends one line per crossing, ``point<TAB>n<TAB>detail``.
``RECOVERY_CRASH_AT=POINT:N``
    at the N-th crossing of POINT the process SIGKILLs itself, after writing
    ``point<TAB>n<TAB>detail`` to ``RECOVERY_CRASH_KILLED`` when that is set.
``RECOVERY_CRASH_ROOT=DIR``
    only file writes under DIR count (default: every file write).

The first line of the trace names the seams that were found (``#patched
...``), so that a driver can tell when the library moved one.
"""

from __future__ import annotations

import builtins
import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = str(Path(__file__).resolve().parent)
_AT = os.environ.pop("RECOVERY_CRASH_AT", "")
_TRACE = os.environ.pop("RECOVERY_CRASH_TRACE", "")
_KILLED = os.environ.pop("RECOVERY_CRASH_KILLED", "")
_ROOT = os.environ.pop("RECOVERY_CRASH_ROOT", "")


def _strip_pythonpath() -> None:
    """Takes this folder off PYTHONPATH, for the processes this one starts."""
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    kept = [e for e in entries if e and str(Path(e).resolve()) != _HERE]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)


_strip_pythonpath()

# The originals, used by the tool itself (never counted).
_open = io.open
_os_open = os.open
_os_write = os.write
_os_close = os.close
_replace = os.replace
_rename = os.rename
_unlink = os.unlink
_remove = os.remove
_rmdir = os.rmdir
_ftruncate = os.ftruncate
_pwrite = os.pwrite
_run = subprocess.run

_lock = threading.RLock()
_counts: dict[str, int] = {}
_busy = threading.local()
_target_point, _, _target_n = _AT.rpartition(":")
_TARGET = (_target_point, int(_target_n)) if _target_point else None
_PID = os.getpid()


def _append(path: str, line: str) -> None:
    fd = _os_open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        _os_write(fd, line.encode("utf-8", "backslashreplace"))
    finally:
        _os_close(fd)


def _cross(point: str, detail: str) -> None:
    """One crossing of ``point``: counted, traced, and the kill when it is the
    chosen one. Crossings in a child forked from this process do not count."""
    if os.getpid() != _PID:
        return
    with _lock:
        n = _counts.get(point, 0) + 1
        _counts[point] = n
        clean = detail.replace("\t", " ").replace("\n", " ")[:300]
        line = f"{point}\t{n}\t{clean}\n"
        if _TRACE:
            _append(_TRACE, line)
        if (point, n) == _TARGET:
            if _KILLED:
                _append(_KILLED, line)
            os.kill(os.getpid(), signal.SIGKILL)


def _around(point: str, detail: str, call: Callable[[], Any]) -> Any:
    """Runs ``call`` between the crossings ``point:before`` and ``point:after``
    (none after, when it raised). What ``call`` itself writes is part of this
    crossing, not one of its own."""
    depth = getattr(_busy, "depth", 0)
    if depth:
        return call()
    _cross(f"{point}:before", detail)
    _busy.depth = depth + 1
    try:
        result = call()
    finally:
        _busy.depth = depth
    _cross(f"{point}:after", detail)
    return result


# -- files ---------------------------------------------------------------------


def _path_of(file: Any) -> str | None:
    """The absolute path of a path or file descriptor argument."""
    if isinstance(file, int):
        try:
            return os.readlink(f"/proc/self/fd/{file}")  # noqa: PTH115
        except OSError:
            return None
    try:
        return os.path.abspath(os.fsdecode(file))  # noqa: PTH100 - no pathlib here
    except TypeError:
        return None


def _ours(file: Any) -> str | None:
    """The path, when a write to it counts (under RECOVERY_CRASH_ROOT)."""
    path = _path_of(file)
    if path is None:
        return None
    if _ROOT and not (path == _ROOT or path.startswith(_ROOT.rstrip("/") + "/")):
        return None
    return path


def _writing(mode: str) -> bool:
    return any(c in mode for c in "wax+")


def _patched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    path = _ours(file) if _writing(mode) else None
    if path is None:
        return _open(file, mode, *args, **kwargs)
    return _around(
        "file.open-w", f"{mode} {path}", lambda: _open(file, mode, *args, **kwargs)
    )


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _patched_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
    where = _ours(path) if flags & _WRITE_FLAGS else None
    if where is None:
        return int(_os_open(path, flags, *args, **kwargs))
    return int(
        _around(
            "file.os-open",
            f"{flags:#o} {where}",
            lambda: _os_open(path, flags, *args, **kwargs),
        )
    )


def _two_paths(name: str, original: Callable[..., None]) -> Callable[..., None]:
    def patched(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        target = _ours(dst)
        if target is None and _ours(src) is None:
            original(src, dst, *args, **kwargs)
            return
        detail = f"{_path_of(src)} -> {_path_of(dst)}"
        _around(name, detail, lambda: original(src, dst, *args, **kwargs))

    return patched


def _one_path(name: str, original: Callable[..., None]) -> Callable[..., None]:
    def patched(path: Any, *args: Any, **kwargs: Any) -> None:
        where = _ours(path)
        if where is None:
            original(path, *args, **kwargs)
            return
        _around(name, where, lambda: original(path, *args, **kwargs))

    return patched


def _fd_write(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def patched(fd: int, *args: Any) -> Any:
        where = _ours(fd)
        if where is None:
            return original(fd, *args)
        return _around(name, where, lambda: original(fd, *args))

    return patched


def _patch_files() -> None:
    builtins.open = _patched_open
    io.open = _patched_open
    os.open = _patched_os_open
    os.replace = _two_paths("file.replace", _replace)
    os.rename = _two_paths("file.rename", _rename)
    os.unlink = _one_path("file.unlink", _unlink)
    os.remove = _one_path("file.unlink", _remove)
    os.rmdir = _one_path("file.rmdir", _rmdir)
    os.ftruncate = _fd_write("file.ftruncate", _ftruncate)
    os.pwrite = _fd_write("file.pwrite", _pwrite)


# -- git -----------------------------------------------------------------------

#: Subcommands that write to the repository whatever their options.
_GIT_WRITES = frozenset(
    [
        "add",
        "am",
        "apply",
        "checkout",
        "checkout-index",
        "cherry-pick",
        "clean",
        "commit",
        "commit-tree",
        "gc",
        "merge",
        "mktag",
        "mktree",
        "mv",
        "notes",
        "pack-refs",
        "prune",
        "read-tree",
        "rebase",
        "repack",
        "reset",
        "restore",
        "revert",
        "rm",
        "stash",
        "switch",
        "tag",
        "update-index",
        "update-ref",
        "worktree",
        "write-tree",
    ]
)


def _git_subcommand(argv: list[str]) -> tuple[str, list[str]] | None:
    """The subcommand of a git argv and its arguments (None if not git)."""
    if not argv or Path(argv[0]).name != "git":
        return None
    rest = argv[1:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("-c", "-C") and rest:
            rest.pop(0)
    if not rest:
        return None
    return rest[0], rest[1:]


def _git_writes(sub: str, args: list[str]) -> bool:
    if sub in _GIT_WRITES:
        return not (sub == "apply" and "--check" in args)
    if sub == "hash-object":
        return "-w" in args
    if sub == "symbolic-ref":
        named = [a for a in args if not a.startswith("-")]
        return len(named) >= 2 or "-d" in args or "--delete" in args
    if sub == "merge-file":
        return "-p" not in args and "--stdout" not in args
    if sub == "config":
        reads = ("--list", "-l", "--get", "--get-all", "--get-regexp", "--show")
        return not any(a.startswith(reads) for a in args)
    if sub == "branch":
        return bool([a for a in args if not a.startswith("-")])
    return False


def _patched_run(*popenargs: Any, **kwargs: Any) -> Any:
    argv = popenargs[0] if popenargs else kwargs.get("args")
    found = _git_subcommand(list(argv)) if isinstance(argv, list | tuple) else None
    if found is None or not _git_writes(*found):
        return _run(*popenargs, **kwargs)
    sub, args = found
    return _around(
        f"git.{sub}", " ".join(args)[:200], lambda: _run(*popenargs, **kwargs)
    )


def _patch_git() -> list[str]:
    subprocess.run = _patched_run
    patched = ["subprocess.run"]
    try:
        from recovery_adapters.git import command
    except ImportError:
        return patched
    server = getattr(command, "Server", None)
    talk = getattr(server, "talk", None)
    if server is None or talk is None:
        return patched

    def patched_talk(self: Any, exchange: Any, *args: Any, **kwargs: Any) -> Any:
        server_args = [str(a) for a in getattr(self, "_args", ())]
        found = _git_subcommand(["git", *server_args])
        if found is None or not _git_writes(*found):
            return talk(self, exchange, *args, **kwargs)
        point = f"git-server.{found[0]}"
        return _around(point, "", lambda: talk(self, exchange, *args, **kwargs))

    server.talk = patched_talk
    patched.append("Server.talk")
    return patched


# -- the event store -----------------------------------------------------------


def _patch_store() -> list[str]:
    try:
        from eventsourcing import sqlite
    except ImportError:
        return []
    patched = []
    for name in dir(sqlite):
        cls = getattr(sqlite, name)
        if not isinstance(cls, type) or cls.__module__ != sqlite.__name__:
            continue
        for method, point in (
            ("insert_events", "store.insert"),
            ("create_table", "store.create"),
        ):
            original = cls.__dict__.get(method)
            if original is None:
                continue
            setattr(cls, method, _store_method(point, original))
            patched.append(f"{name}.{method}")
    return patched


def _store_method(point: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        events = args[0] if args else kwargs.get("stored_events", ())
        topics = ",".join(
            str(getattr(e, "topic", "")).removeprefix("recovery:") for e in events
        )
        detail = f"{type(self).__name__} {topics}"
        return _around(point, detail, lambda: original(self, *args, **kwargs))

    return patched


def _install() -> None:
    if not (_AT or _TRACE):
        return
    seams = [*_patch_store(), *_patch_git()]
    _patch_files()
    seams.append("files")
    if _TRACE:
        _append(_TRACE, f"#patched {' '.join(seams)} argv={sys.argv!r}\n")


_install()
