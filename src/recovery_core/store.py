"""Store URLs, mapped onto the eventsourcing library's settings in this one place.

- ``sqlite:///path/to/events.sqlite3`` (relative: ``sqlite:///rel/path``;
  absolute: ``sqlite:////abs/path``, as SQLAlchemy spells them)
- ``memory://``: in-process, gone when the process ends
- ``postgresql://user:password@host:port/dbname?schema=NAME``
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from recovery_core.errors import StoreURLError

__all__ = [
    "DEFAULT_STORE_NAME",
    "RECOVERY_DIR",
    "STORE_ENV",
    "StoreSpec",
    "default_store_url",
    "parse_store_url",
]

STORE_ENV: Final = "RECOVERY_STORE"
RECOVERY_DIR: Final = ".recovery"
DEFAULT_STORE_NAME: Final = "events.sqlite3"


@attrs.frozen
class StoreSpec:
    """A parsed store URL: its kind and the eventsourcing settings it maps to."""

    url: str
    kind: str
    settings: dict[str, str]
    path: Path | None = None

    @property
    def display(self) -> str:
        """The URL with any password hidden, for messages and events."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url


def parse_store_url(url: str) -> StoreSpec:
    """Parses a store URL; a bad one raises :class:`StoreURLError` (exit code 2)."""
    if not url:
        raise StoreURLError("store URL is empty")
    if url in ("memory://", "memory:"):
        return StoreSpec(
            url="memory://",
            kind="memory",
            settings={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        )
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StoreURLError(
            f"store URL {url!r} has no scheme; use sqlite:///PATH, memory:// or "
            "postgresql://USER@HOST:PORT/DB"
        )
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise StoreURLError(
                f"store URL {url!r}: a SQLite URL is sqlite:///relative/path or "
                "sqlite:////absolute/path"
            )
        path = Path(unquote(rest[1:]))
        if path.exists() and path.is_dir():
            raise StoreURLError(f"store URL {url!r}: {path} is a directory")
        return StoreSpec(
            url=url,
            kind="sqlite",
            settings={
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(path),
                "SQLITE_LOCK_TIMEOUT": "30",
            },
            path=path,
        )
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        dbname = parts.path.lstrip("/")
        if not parts.hostname or not dbname:
            raise StoreURLError(
                f"store URL {StoreSpec(url, 'postgres', {}).display!r}: a PostgreSQL "
                "URL needs a host and a database: postgresql://USER@HOST:PORT/DB"
            )
        try:
            port = parts.port or 5432
        except ValueError:
            raise StoreURLError(
                f"store URL {url!r}: the port is not a number"
            ) from None
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - {"schema"})
        if unknown:
            raise StoreURLError(
                f"store URL: unknown parameter {unknown[0]!r} (only 'schema' is known)"
            )
        settings = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(dbname),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(port),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
        }
        if "schema" in query:
            settings["POSTGRES_SCHEMA"] = query["schema"][-1]
        return StoreSpec(url=url, kind="postgres", settings=settings)
    raise StoreURLError(
        f"store URL {url!r}: unknown scheme {scheme!r}; use sqlite, memory or postgresql"
    )


def default_store_url(workspace: str | os.PathLike[str]) -> str:
    """The default store of a workspace: ``<workspace>/.recovery/events.sqlite3``."""
    path = Path(workspace).resolve() / RECOVERY_DIR / DEFAULT_STORE_NAME
    return f"sqlite:///{path}"
