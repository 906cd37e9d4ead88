"""The hash chain of a run's events: each event's digest is the SHA-256 of its
content and the digest of the event before it, so that any change, removal,
insertion or reordering of stored events shows (:func:`verify_chain`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import attrs

from recovery_core.errors import IntegrityError

__all__ = [
    "GENESIS_DIGEST",
    "StoredRecord",
    "Unreadable",
    "event_digest",
    "json_native",
    "payload_of",
    "verify_chain",
]

GENESIS_DIGEST: Final = "0" * 64

#: Fields every event has that are not its payload.
_ENVELOPE: Final = frozenset(
    {"originator_id", "originator_version", "timestamp", "prev_digest", "digest"}
)


#: One encoder for every digest (``json.dumps`` with these options makes a
#: new one at each call).
_ENCODE: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode


def _canonical(value: object) -> str:
    return _ENCODE(value)


def json_native(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as it will read back from the store: tuples become lists, a
    text that UTF-8 cannot hold (a file name git gave in bytes that are not
    UTF-8, kept as surrogate escapes) holds those bytes as ``\\xNN``, and
    anything else that JSON cannot hold is refused now rather than after the
    save."""
    result: dict[str, Any] = json.loads(_canonical(_utf8(payload)))
    return result


def _utf8(value: Any) -> Any:
    """``value`` with every text made encodable as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
            return raw.decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, Mapping):
        return {_utf8(k): _utf8(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_utf8(v) for v in value]
    return value


def event_digest(
    topic: str,
    originator_id: UUID,
    originator_version: int,
    timestamp: datetime,
    payload: Mapping[str, Any],
    prev_digest: str,
) -> str:
    """The digest of one event: its topic, position, time, payload and the digest
    of the event before it."""
    content = _canonical(
        {
            "topic": topic,
            "originator_id": str(originator_id),
            "originator_version": originator_version,
            "timestamp": timestamp.isoformat(),
            "payload": payload,
            "prev_digest": prev_digest,
        }
    )
    return hashlib.sha256(content.encode()).hexdigest()


@attrs.frozen
class StoredRecord:
    """One event as it is stored, before any upcasting: what the digest of an
    event of an older version covers."""

    topic: str
    originator_id: UUID
    originator_version: int
    timestamp: datetime
    payload: dict[str, Any]
    prev_digest: str
    digest: str

    def content_digest(self) -> str:
        """The digest of the record's content as stored (what ``digest``
        should be)."""
        return event_digest(
            self.topic,
            self.originator_id,
            self.originator_version,
            self.timestamp,
            self.payload,
            self.prev_digest,
        )

    @classmethod
    def of_state(cls, topic: str, state: Mapping[str, Any]) -> StoredRecord:
        """The record of a stored event's decoded state."""
        payload = dict(state)
        for key in _ENVELOPE:
            payload.pop(key, None)
        return cls(
            topic=topic,
            originator_id=_uuid(state["originator_id"]),
            originator_version=int(state["originator_version"]),
            timestamp=state["timestamp"],
            payload=payload,
            prev_digest=str(state.get("prev_digest", "")),
            digest=str(state.get("digest", "")),
        )


@attrs.frozen
class Unreadable:
    """A stored event that cannot be decoded, and why."""

    version: int
    topic: str
    error: str


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def payload_of(event: Any) -> dict[str, Any]:
    """The fields of an event that are its content, not its envelope (the first
    event's aggregate topic is content: it says what the history is of; an
    event of a later class version says so)."""
    payload = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    version = getattr(type(event), "class_version", 1)
    return {**payload, "class_version": version} if version > 1 else payload


def _record(item: Any) -> StoredRecord:
    if isinstance(item, StoredRecord):
        return item
    return StoredRecord(
        topic=type(item).TOPIC,
        originator_id=item.originator_id,
        originator_version=item.originator_version,
        timestamp=item.timestamp,
        payload=payload_of(item),
        prev_digest=item.prev_digest,
        digest=item.digest,
    )


def verify_chain(
    events: Iterable[Any], *, prev: str = GENESIS_DIGEST, version: int = 0
) -> str:
    """Checks the hash chain of a run's events, in order; returns the head digest.
    ``prev`` and ``version``: the digest and version of the event before the
    first (for events that follow a snapshot).

    ``events`` are events of the current class versions (a live run's, or ones
    stored by this version of the library) or :class:`StoredRecord` as stored
    (see :meth:`RecoveryApp.stored_records`), which any history verifies as.
    Raises :class:`IntegrityError` naming the first event whose digest or link
    does not hold, or a gap in the versions.
    """
    expected_version = version + 1
    for item in events:
        record = _record(item)
        name = record.topic.removeprefix("recovery:")
        where = f"event {record.originator_version} ({name})"
        if record.originator_version != expected_version:
            raise IntegrityError(
                f"{where}: expected version {expected_version}: an event is missing "
                "or out of order"
            )
        if record.prev_digest != prev:
            raise IntegrityError(f"{where}: does not link to the event before it")
        digest = record.content_digest()
        if digest != record.digest:
            raise IntegrityError(f"{where}: content does not match its digest")
        prev = digest
        expected_version += 1
    return prev
