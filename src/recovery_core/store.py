"""Store URLs, mapped onto the eventsourcing library's settings in this one place.

- ``sqlite:///path/to/events.sqlite3`` (relative: ``sqlite:///rel/path``;
  absolute: ``sqlite:////abs/path``, as SQLAlchemy spells them)
- ``memory://``: in-process, gone when the process ends
- ``postgresql://user:password@host:port/dbname?schema=NAME``

``?compress=zlib`` (on a SQLite or PostgreSQL URL) compresses the events this
application writes; events are read whether they were written compressed or
not, so a store may hold both and any URL of it reads it. Encryption is not a
URL parameter (URLs are recorded in events and printed in messages): the key
is given to :class:`~recovery_core.RecoveryApp` (``cipher_key``; the command
line reads it from ``RECOVERY_CIPHER_KEY``), see :func:`cipher_settings`.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import os
import zlib
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from eventsourcing.persistence import Compressor

from recovery_core.errors import CipherKeyError, StoreURLError

__all__ = [
    "CIPHER_KEY_ENV",
    "COMPRESSIONS",
    "DEFAULT_STORE_NAME",
    "RECOVERY_DIR",
    "STORE_ENV",
    "ReadsCompressed",
    "StoreSpec",
    "ZlibCompressor",
    "cipher_settings",
    "default_store_url",
    "parse_store_url",
]

STORE_ENV: Final = "RECOVERY_STORE"
RECOVERY_DIR: Final = ".recovery"
DEFAULT_STORE_NAME: Final = "events.sqlite3"
#: Where the command line finds the key of an encrypted store.
CIPHER_KEY_ENV: Final = "RECOVERY_CIPHER_KEY"
#: The values of a store URL's ``compress`` parameter, and the compressor of each.
COMPRESSIONS: Final = {"zlib": "recovery_core.store:ZlibCompressor"}
#: The compressor of a store that writes events uncompressed.
READS_COMPRESSED: Final = "recovery_core.store:ReadsCompressed"
#: eventsourcing's AES-GCM cipher on the ``cryptography`` package.
_CIPHER_TOPIC: Final = "eventsourcing.cryptography:AESCipher"
_KEY_SIZES: Final = (16, 24, 32)


def _is_zlib(data: bytes) -> bool:
    # A zlib stream's header: deflate with a 32K window (0x78) and a check
    # byte; an event's JSON starts with "{", so the two never mix up.
    return len(data) > 2 and data[0] == 0x78 and int.from_bytes(data[:2]) % 31 == 0


class ReadsCompressed(Compressor):
    """Writes events as they are; reads them compressed with zlib or not."""

    def compress(self, data: bytes) -> bytes:
        return data

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data) if _is_zlib(data) else data


class ZlibCompressor(ReadsCompressed):
    """Writes events compressed with zlib; reads them compressed or not."""

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data)


def cipher_settings(key: str) -> dict[str, str]:
    """The eventsourcing settings that encrypt and decrypt a store's events
    with AES-GCM under ``key`` (16, 24 or 32 bytes, in base64). A key that is
    not one, or a missing ``cryptography`` package (the ``crypto`` extra),
    raises :class:`CipherKeyError` (exit code 2); the key is never shown."""
    try:
        raw = base64.b64decode(key.strip().encode(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) not in _KEY_SIZES:
        raise CipherKeyError(
            f"the cipher key ({CIPHER_KEY_ENV}) is not a key: it must be 16, 24 or "
            "32 random bytes in base64 (make one with `openssl rand -base64 32`)"
        )
    if importlib.util.find_spec("cryptography") is None:
        raise CipherKeyError(
            "an encrypted store needs the 'cryptography' package: "
            "pip install 'recovery-core[crypto]'"
        )
    return {"CIPHER_TOPIC": _CIPHER_TOPIC, "CIPHER_KEY": key.strip()}


@attrs.frozen
class StoreSpec:
    """A parsed store URL: its kind and the eventsourcing settings it maps to."""

    url: str
    kind: str
    settings: dict[str, str]
    path: Path | None = None
    #: How the events written are compressed (``?compress=``), or None.
    compress: str | None = None

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
        where, _, params = rest.partition("?")
        compress = _compression(url, parse_qs(params), ())
        path = Path(unquote(where[1:]))
        if path.exists() and path.is_dir():
            raise StoreURLError(f"store URL {url!r}: {path} is a directory")
        return StoreSpec(
            url=url,
            kind="sqlite",
            settings={
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(path),
                "SQLITE_LOCK_TIMEOUT": "30",
                **_compressor(compress),
            },
            path=path,
            compress=compress,
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
        compress = _compression(
            StoreSpec(url, "postgres", {}).display, query, ("schema",)
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
        settings.update(_compressor(compress))
        return StoreSpec(url=url, kind="postgres", settings=settings, compress=compress)
    raise StoreURLError(
        f"store URL {url!r}: unknown scheme {scheme!r}; use sqlite, memory or postgresql"
    )


def _compression(
    url: str, query: dict[str, list[str]], known: tuple[str, ...]
) -> str | None:
    """The URL's ``compress`` parameter, checked with the others."""
    names = (*known, "compress")
    unknown = sorted(set(query) - set(names))
    if unknown:
        listed = " and ".join(repr(n) for n in names)
        raise StoreURLError(
            f"store URL {url!r}: unknown parameter {unknown[0]!r} "
            f"(only {listed} are known)"
        )
    if "compress" not in query:
        return None
    value = query["compress"][-1]
    if value not in COMPRESSIONS:
        raise StoreURLError(
            f"store URL {url!r}: compress={value!r} is not known; "
            f"use compress={' or '.join(COMPRESSIONS)}"
        )
    return value


def _compressor(compress: str | None) -> dict[str, str]:
    return {} if compress is None else {"COMPRESSOR_TOPIC": COMPRESSIONS[compress]}


def default_store_url(workspace: str | os.PathLike[str]) -> str:
    """The default store of a workspace: ``<workspace>/.recovery/events.sqlite3``."""
    path = Path(workspace).resolve() / RECOVERY_DIR / DEFAULT_STORE_NAME
    return f"sqlite:///{path}"
