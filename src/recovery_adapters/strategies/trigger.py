"""The trigger: what an agent is told about a failure
(``<workspace>/.recovery/recovery_plan_trigger.json``), and the analysis that
needs no agent: where the error is, and the hunk of the batch's change that
holds it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs

from recovery_core.ports import FailureContext
from recovery_core.projections import FailureLogEntry, default_failure_log
from recovery_core.store import RECOVERY_DIR
from recovery_core.tracebacks import component_from_traceback

__all__ = [
    "TRIGGER_NAME",
    "TRIGGER_VERSION",
    "Location",
    "error_location",
    "failure_log_entry",
    "hunk_at",
    "trigger_path",
]

TRIGGER_NAME: Final = "recovery_plan_trigger.json"
#: The version of the trigger's format; a new key is no new version, a key
#: that changes meaning or goes away is.
TRIGGER_VERSION: Final = 1
#: How many lines before and after the error's line the trigger shows.
WINDOW: Final = 10
_PLACE: Final = re.compile(r"(?P<path>[\w./-]+\.\w+):(?P<line>\d+)")
_HUNK: Final = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,(?P<count>\d+))? @@")


def trigger_path(root: Path) -> Path:
    """``<workspace>/.recovery/recovery_plan_trigger.json``."""
    return root / RECOVERY_DIR / TRIGGER_NAME


@attrs.frozen
class Location:
    """Where an error is: a file of the workspace, and its line when known."""

    file: str
    line: int | None = None


def error_location(context: FailureContext, files: Sequence[str]) -> Location | None:
    """Where the failure's error is: the failure's component when it names a
    file, else the innermost traceback frame in the workspace, else a
    ``path:line`` in the error; a changed file is preferred over another."""
    failure = context.failure
    found: list[Location] = []
    for text in (
        failure.component,
        component_from_traceback(
            failure.traceback or failure.output_tail, context.root
        ),
        failure.error,
        failure.output_tail,
    ):
        for match in _PLACE.finditer(text or ""):
            found.append(Location(match["path"], int(match["line"])))
        if text and not found and text in files:  # a component with no line
            found.append(Location(text))
    for place in found:
        if place.file in files:
            return place
    return found[0] if found else None


def hunk_at(diff: str, location: Location) -> str | None:
    """The hunk of ``diff`` (as ``git diff`` prints it) that changed the
    lines around ``location``: the one holding its line, else the nearest in
    its file, else its file's first; None when the diff does not touch it."""
    hunks = _hunks(diff).get(location.file)
    if not hunks:
        return None
    if location.line is None:
        return hunks[0][2]
    line = location.line

    def distance(hunk: tuple[int, int, str]) -> int:
        start, count, _ = hunk
        if start <= line < start + max(count, 1):
            return 0
        return min(abs(line - start), abs(line - (start + max(count, 1) - 1)))

    return min(hunks, key=distance)[2]


def _hunks(diff: str) -> dict[str, list[tuple[int, int, str]]]:
    """Each file's hunks: the new side's first line, its line count, the text."""
    found: dict[str, list[tuple[int, int, str]]] = {}
    path = ""
    current: list[str] | None = None
    start = count = 0

    def close() -> None:
        if current is not None and path:
            found.setdefault(path, []).append((start, count, "\n".join(current)))

    for line in diff.splitlines():
        if line.startswith("diff --git "):
            close()
            current, path = None, ""
        elif line.startswith("--- ") and current is None:
            name = line[4:].split("\t")[0]
            path = name[2:] if name.startswith("a/") else path
        elif line.startswith("+++ ") and current is None:
            name = line[4:].split("\t")[0]
            if name.startswith("b/"):
                path = name[2:]
        elif (match := _HUNK.match(line)) is not None:
            close()
            current = [line]
            start = int(match["start"])
            count = int(match["count"]) if match["count"] is not None else 1
        elif current is not None:
            current.append(line)
    close()
    return found


def around(content: bytes | None, location: Location) -> dict[str, Any] | None:
    """The lines of ``content`` around ``location``'s line."""
    if content is None or location.line is None:
        return None
    lines = content.decode("utf-8", "replace").splitlines()
    first = max(1, location.line - WINDOW)
    last = min(len(lines), location.line + WINDOW)
    return {
        "file": location.file,
        "line": location.line,
        "first_line": first,
        "last_line": last,
        "lines": lines[first - 1 : last],
    }


def text_files(contents: Mapping[str, bytes | None]) -> dict[str, str | None]:
    """Each file's content as text; None for a deleted or binary file."""
    texts: dict[str, str | None] = {}
    for path, data in contents.items():
        if data is None or b"\0" in data:
            texts[path] = None
            continue
        try:
            texts[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            texts[path] = None
    return texts


def failure_log_entry(context: FailureContext, quarantine_ref: str) -> dict[str, Any]:
    """The failure's line of the workspace's failure log (as written there,
    with where the change was kept); built from the failure record when the
    log has none (a host that keeps its log elsewhere)."""
    failure = context.failure
    wanted = (context.run_id, failure.batch_id, failure.attempt)
    entry: dict[str, Any] | None = None
    try:
        text = default_failure_log(context.root).read_text(encoding="utf-8")
    except OSError:
        text = ""
    for line in reversed(text.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(data, dict)
            and (
                data.get("run_id"),
                data.get("batch_id"),
                data.get("attempt"),
            )
            == wanted
        ):
            entry = data
            break
    if entry is None:
        entry = FailureLogEntry(
            timestamp=datetime.now(UTC).isoformat(),
            run_id=context.run_id,
            plan_id=context.plan_id,
            failure=failure,
        ).as_json()
    state = entry.get("state")
    if isinstance(state, dict) and quarantine_ref:
        state["quarantine_ref"] = quarantine_ref
    return entry
