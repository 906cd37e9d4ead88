"""A failure's fingerprint: what stays the same when the same failure happens
again in another attempt.

The fingerprint covers the failed step (``phase.step``), the component and the
*normalised* error: its first line, with what differs from one attempt to the
next for the same cause replaced by placeholders (temporary paths, hex ids,
durations, ``line:col`` positions, other numbers). A batch's policy never
decides automatically for an attempt whose fingerprint equals the previous
attempt's: that failure is deterministic, and another automatic try would
only fail the same way again.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from recovery_core.tracebacks import first_line

__all__ = ["failure_fingerprint", "normalise_error"]

#: In order: each rule's placeholder stands in for what it matched, before the
#: rules after it look (a temporary path's digits are the path's, not numbers).
_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Temporary files and folders (POSIX, macOS, Windows), up to a space or quote.
    (
        re.compile(
            r"(?:/private)?/(?:tmp|var/tmp|var/folders|dev/shm)/[^\s'\"),;]*"
            r"|[A-Za-z]:\\[^\s'\"]*?\\(?:Temp|tmp)\\[^\s'\"),;]*",
            re.I,
        ),
        "<tmp>",
    ),
    (
        re.compile(
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I
        ),
        "<id>",
    ),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    # Commit ids, object ids, digests: 7+ hex digits with a digit and a letter.
    (
        re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b", re.I),
        "<hex>",
    ),
    (
        re.compile(
            r"\b\d+(?:\.\d+)?\s?(?:ms|us|µs|ns|s|sec|secs|seconds?|min|minutes?|h)\b"
        ),
        "<duration>",
    ),
    (re.compile(r"(?<=\w):\d+(?::\d+)?\b"), ":<line>"),
    (re.compile(r"\bline \d+\b", re.I), "line <line>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalise_error(error: str) -> str:
    """The first line of ``error`` that is not blank, with the parts that vary
    between attempts replaced by placeholders (``<tmp>``, ``<id>``, ``<hex>``,
    ``<duration>``, ``:<line>``, ``<n>``)."""
    text = first_line(error)
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    return text.strip()


def failure_fingerprint(step_id: str, component: str, error: str) -> str:
    """The fingerprint of a failure of step ``step_id`` (``phase.step``) in
    ``component``: 16 hex digits of a SHA-256, equal for two failures whose
    step, normalised component and normalised error are equal."""
    parts = (step_id, normalise_error(component), normalise_error(error))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]
