"""Opening the event store from the outside world: making the folder of a
SQLite store, finding the store of a workspace from a folder inside it (as git
finds ``.git``), and opening a new PostgreSQL store while other processes make
its tables. The application itself (:class:`~recovery_core.RecoveryApp`) only
talks to the store."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

from eventsourcing.persistence import DatabaseError

from recovery_adapters.git.own_files import put_back_left
from recovery_adapters.words import no_runs_text
from recovery_core import RecoveryApp, StoreURLError, UnknownRun
from recovery_core.store import (
    CIPHER_KEY_ENV,
    DEFAULT_STORE_NAME,
    RECOVERY_DIR,
    STORE_ENV,
    default_store_url,
    parse_store_url,
)

__all__ = [
    "find_store",
    "find_store_url",
    "open_store",
    "store_for_workspace",
    "store_to_name",
]

#: How often opening a PostgreSQL store is tried while others create its tables.
_SCHEMA_ATTEMPTS: Final = 5


def open_store(url: str, *, create: bool = True) -> RecoveryApp:
    """The application on the store at ``url``, its SQLite folder made when
    missing. With ``create`` false, a SQLite store that does not exist yet is
    refused with :class:`~recovery_core.UnknownRun` instead of being made.

    When ``RECOVERY_CIPHER_KEY`` is set (and not empty), the store's events
    are encrypted with that key, and must have been (see
    docs/how-to/encrypt-and-compress-the-store.md)."""
    spec = parse_store_url(url)
    cipher_key = os.environ.get(CIPHER_KEY_ENV) or None
    if spec.path is not None:
        if not create and not spec.path.is_file():
            raise UnknownRun(f"no store at {spec.path}: no run has been recorded there")
        spec.path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            return RecoveryApp(spec, cipher_key=cipher_key)
        except DatabaseError:
            # Processes opening a new PostgreSQL store at once race to create its
            # tables ("duplicate key ... pg_type", "tuple concurrently updated");
            # the loser's transaction is rolled back, and the tables are there
            # when it tries again.
            if spec.kind != "postgres" or attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def store_for_workspace(
    workspace: str | os.PathLike[str], store: str | None = None
) -> RecoveryApp:
    """The store for runs in ``workspace`` (``store`` if given, else
    ``RECOVERY_STORE``, else ``<workspace>/.recovery/events.sqlite3``), made
    when missing."""
    return open_store(RecoveryApp.store_url(workspace, store))


def find_store_url(start: str | os.PathLike[str], explicit: str | None = None) -> str:
    """The store to use from ``start``: ``explicit`` (``--store``), else
    ``RECOVERY_STORE``, else the nearest ``.recovery/events.sqlite3`` found from
    ``start`` upward, as git finds ``.git`` (one that a runner killed after a
    batch removed it left under second names in ``.git`` is put back first:
    :func:`~recovery_adapters.git.own_files.put_back_left`)."""
    if explicit:
        return explicit
    from_env = os.environ.get(STORE_ENV)
    if from_env:
        return from_env
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / RECOVERY_DIR / DEFAULT_STORE_NAME
        git_dir = folder / ".git"
        if candidate.is_file() or (git_dir.is_dir() and put_back_left(folder, git_dir)):
            return f"sqlite:///{candidate}"
    found = no_runs_text(
        here,
        why=f" (no store found: no {RECOVERY_DIR}/{DEFAULT_STORE_NAME} here or above)",
    )
    raise StoreURLError(
        f"{found}, or pass --store or set {STORE_ENV} to use another store"
    )


def store_to_name(
    store: str | None,
    workspace: str | os.PathLike[str],
    here: str | os.PathLike[str] | None = None,
) -> str | None:
    """The ``--store`` that a command typed in ``here`` (default: the current
    folder) must name to reach the store of a run in ``workspace``: ``store``,
    the one to name anyway (:meth:`~recovery_core.RecoveryApp.store_hint`),
    else the workspace's own store when a command here would not find it by
    itself (typed outside the workspace, or where ``RECOVERY_STORE`` names
    another store), else None."""
    if store is not None:
        return store
    own = default_store_url(workspace)
    try:
        found = find_store_url(Path.cwd() if here is None else here)
    except StoreURLError:
        found = None
    return None if found == own else own


def find_store(
    start: str | os.PathLike[str] = ".", store: str | None = None
) -> RecoveryApp:
    """The store that commands other than ``run`` use (see :func:`find_store_url`).
    Never makes a store: a SQLite file that does not exist is
    :class:`~recovery_core.UnknownRun`, with the command that would start a run."""
    url = find_store_url(start, store)
    path = parse_store_url(url).path
    if path is not None and not path.is_file():
        raise UnknownRun(no_runs_text(path, store, why=" (no store there)"))
    return open_store(url, create=False)
