"""``recovery report RUN --html FILE``: the run as one self-contained HTML page
(:mod:`recovery_adapters.report`), written atomically.

The page is made from the run's events; the quarantined diffs come from the
workspace's repository, as ``recovery show`` reads them. Where the workspace
or a quarantine ref is gone (pruned, or the store read on another machine),
the page says so instead of the diff. Nothing is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from recovery_adapters.cli.output import print_json
from recovery_adapters.cli.quarantined import kept_change
from recovery_adapters.cli.wiring import UsageError
from recovery_adapters.git import GitWorkspace
from recovery_adapters.report import QuarantinedDiff, render_html
from recovery_adapters.stores import find_store
from recovery_core import RecoveryApp, RecoveryError, RunView
from recovery_core.records import apply
from recovery_core.run import Run

__all__ = ["MAX_DIFF_BYTES", "add_arguments", "cmd_report", "quarantined_diffs"]

#: The most of one quarantined diff the page holds; ``recovery show`` prints
#: all of it.
MAX_DIFF_BYTES = 256 * 1024


def quarantined_diffs(
    app: RecoveryApp, view: RunView, events: Sequence[Run.Event]
) -> dict[tuple[str, int], QuarantinedDiff]:
    """Every quarantined change of the run, by ``(batch_id, attempt)``: its
    diff as ``recovery show`` prints it, or why it cannot be read."""
    kept = [e for e in events if isinstance(e, Run.ChangesQuarantined)]
    if not kept:
        return {}
    try:
        workspace = GitWorkspace(view.workspace, tracker=False)
    except (RecoveryError, OSError) as exc:
        why = f"the workspace {view.workspace} cannot be read here ({exc})"
        return {
            (e.batch_id, e.attempt): QuarantinedDiff(
                e.batch_id, e.attempt, e.quarantine_ref, tuple(e.files), missing=why
            )
            for e in kept
        }
    found: dict[tuple[str, int], QuarantinedDiff] = {}
    with workspace:
        for event in kept:
            key = (event.batch_id, event.attempt)
            found[key] = _diff_of(app, view, workspace, event)
    return found


def _diff_of(
    app: RecoveryApp,
    view: RunView,
    workspace: GitWorkspace,
    event: Run.ChangesQuarantined,
) -> QuarantinedDiff:
    shown = QuarantinedDiff(
        event.batch_id, event.attempt, event.quarantine_ref, tuple(event.files)
    )
    try:
        change = kept_change(app, view, event.batch_id, event.attempt)
        commit = workspace.kept.commit(change.quarantine_ref)
        if commit is None:
            retired = any(ref == change.quarantine_ref for ref, _ in view.retired_refs)
            why = (
                "retired by `recovery prune` (RefsRetired; an export made "
                "before keeps it)"
                if retired
                else "deleted, and not by `recovery prune`"
            )
            return QuarantinedDiff(
                event.batch_id,
                event.attempt,
                event.quarantine_ref,
                tuple(event.files),
                missing=f"the quarantine ref {change.quarantine_ref} is gone from "
                f"the repository at {workspace.root}: {why}",
            )
        diff = workspace.kept.diff(change.baseline, commit, change.files, binary=False)
    except (RecoveryError, OSError) as exc:
        return QuarantinedDiff(
            event.batch_id,
            event.attempt,
            event.quarantine_ref,
            tuple(event.files),
            missing=str(exc),
        )
    truncated = len(diff) > MAX_DIFF_BYTES
    if truncated:
        diff = diff[: diff.rfind(b"\n", 0, MAX_DIFF_BYTES) + 1] or diff[:MAX_DIFF_BYTES]
    text = diff.decode("utf-8", "replace")
    return QuarantinedDiff(
        shown.batch_id,
        shown.attempt,
        shown.quarantine_ref,
        shown.files,
        diff=text,
        truncated=truncated,
    )


def write_atomically(path: Path, text: str) -> int:
    """Writes ``text`` to ``path`` through a temporary file beside it and a
    rename, so that ``path`` is never half-written; returns the bytes written."""
    data = text.encode("utf-8")
    folder = path.parent
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed, not closed by with
        dir=folder, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        Path(handle.name).chmod(0o666 & ~umask)
        Path(handle.name).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(handle.name).unlink()
        raise
    return len(data)


def cmd_report(args: argparse.Namespace) -> int:
    """``recovery report RUN --html FILE``: the run's report, as one HTML page."""
    app = find_store(Path.cwd(), args.store)
    run_id = app.resolve(args.run)
    events = app.history(run_id)
    # The state as of the last event read (a runner may be recording more
    # meanwhile), so that the page's parts agree with each other.
    view: RunView | None = None
    for event in events:
        view = apply(view, event)
    assert view is not None  # a run has its RunStarted
    page = render_html(view, events, quarantined_diffs(app, view, events))
    target = Path(args.html)
    if target.is_dir():
        raise UsageError(f"--html {args.html}: is a folder; name the file to write")
    try:
        written = write_atomically(target, page)
    except OSError as exc:
        raise UsageError(f"--html {args.html}: cannot write it: {exc}") from exc
    where = str(target.resolve())
    if args.json:
        said = {"path": where, "bytes": written, "run_id": view.run_id}
        print_json(said)
    else:
        sys.stdout.write(
            f"wrote the report of run {view.run_id} to {where} ({written} bytes)\n"
        )
    return 0


def add_arguments(sub: argparse.ArgumentParser) -> None:
    """The arguments of ``report``."""
    sub.add_argument("run", help="run id, unique prefix (6+ characters) or 'latest'")
    sub.add_argument(
        "--html",
        required=True,
        metavar="FILE",
        help="the HTML file to write (replaced whole, never half-written)",
    )
