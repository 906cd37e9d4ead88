"""``recovery history RUN [--at POSITION|TIME]``: a run's events as a
timeline, or the run's state as of one point of it, computed from the events
alone (:meth:`~recovery_core.RecoveryApp.view_at`).

``POSITION`` is an event's version within the run (1 is ``RunStarted``);
``TIME`` is ISO 8601, and a time without a zone is UTC.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from recovery_adapters.cli.output import clip, format_table, print_json, status_text
from recovery_adapters.stores import find_store, store_to_name
from recovery_adapters.usage import UsageError
from recovery_adapters.words import no_runs_text, recovery_command, run_json
from recovery_core import RecoveryApp, UnknownPoint, UnknownRun
from recovery_core.timeline import as_utc

__all__ = ["add_arguments", "cmd_history", "parse_point"]

#: The characters of an event's summary that the timeline shows.
SUMMARY_WIDTH = 80


def parse_point(text: str) -> int | datetime:
    """``--at``: a position (digits) or an ISO 8601 time (UTC when it has no
    zone); anything else is :class:`UsageError` (exit 2), naming the value."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--at {text!r}: give a position (1 is the run's first event) or an "
            "ISO 8601 time such as 2025-01-31T14:05:00 (UTC) or "
            "2025-01-31T15:05:00+01:00"
        ) from None
    return as_utc(moment)


def cmd_history(args: argparse.Namespace) -> int:
    """``recovery history RUN [--at POSITION|TIME]``."""
    point = None if args.at is None else parse_point(args.at)
    app = find_store(Path.cwd(), args.store)
    if not app.has_runs():
        raise UnknownRun(no_runs_text(app.store.display, args.store))
    run_id = app.resolve(args.run)
    if point is None:
        _timeline(app, str(run_id), args.json)
        return 0
    try:
        if isinstance(point, int):
            view = app.view_at(run_id, position=point)
        else:
            view = app.view_at(run_id, time=point)
    except UnknownPoint as exc:
        raise UnknownPoint(f"--at {args.at}: {exc}") from None
    store = store_to_name(app.store_hint(view.workspace), view.workspace)
    if args.json:
        print_json(run_json(view, store, command=recovery_command()))
        return 0
    entries = app.timeline(run_id)
    at = entries[view.version - 1]
    sys.stdout.write(
        f"as of {args.at}: after event {at.position} of {len(entries)} "
        f"({at.event} at {_utc_text(at.time)} UTC)\n\n"
        + status_text(view, store)
        + "\n"
    )
    return 0


def _utc_text(moment: datetime) -> str:
    """A time as the timeline shows it: UTC, without the zone."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def _timeline(app: RecoveryApp, run_id: str, as_json: bool) -> None:
    entries = app.timeline(run_id)
    if as_json:
        print_json([e.as_json() for e in entries])
        return
    rows = [
        [
            str(e.position),
            _utc_text(e.time),
            e.event,
            e.batch_id or "",
            "" if e.attempt is None else str(e.attempt),
            clip(e.summary, SUMMARY_WIDTH),
        ]
        for e in entries
    ]
    headers = ["POS", "TIME (UTC)", "EVENT", "BATCH", "ATTEMPT", "WHAT"]
    sys.stdout.write(f"run {run_id}\n" + format_table(headers, rows) + "\n")


def add_arguments(sub: argparse.ArgumentParser) -> None:
    """The arguments of ``recovery history``."""
    sub.add_argument(
        "run", nargs="?", default="latest", help="run id, prefix or 'latest'"
    )
    sub.add_argument(
        "--at",
        metavar="POSITION|TIME",
        help="the run's state as of this point instead of the timeline: an "
        "event's position (1 is RunStarted), or an ISO 8601 time (UTC when it "
        "has no zone)",
    )
