"""``recovery export``, ``recovery verify --bundle`` and ``recovery prune``.

``export`` writes a run's events, a manifest and a git bundle of its refs
into a new folder (:mod:`recovery_adapters.audit.export`); ``verify --bundle``
checks such a folder with nothing else (no store, no repository); ``prune``
retires the refs of finished runs (:mod:`recovery_adapters.audit.prune`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from recovery_adapters.audit.export import check_export, export_run
from recovery_adapters.audit.prune import Retirement, carry_out, parse_age, plan_prune
from recovery_adapters.cli.output import format_table, print_json
from recovery_adapters.cli.wiring import open_existing, operator_name
from recovery_adapters.usage import UsageError
from recovery_core.errors import IntegrityError

__all__ = [
    "add_export_arguments",
    "add_prune_arguments",
    "cmd_export",
    "cmd_prune",
    "cmd_verify_bundle",
]

#: How much of a run id the tables show.
_SHORT: int = 8


# -- export ----------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """``recovery export RUN --out DIR``."""
    app = open_existing(args)
    run_id = app.resolve(args.run)
    done = export_run(app, run_id, Path(args.out))
    manifest = done.manifest
    events, bundle = manifest["events"], manifest["bundle"]
    refs = 0 if bundle is None else len(bundle["refs"])
    for note in done.notes:
        sys.stderr.write(f"recovery: note: {note}\n")
    if args.json:
        print_json(
            {
                "run_id": manifest["run_id"],
                "export": str(done.path),
                "manifest": str(done.manifest_path),
                "events": events["count"],
                "head_digest": events["head_digest"],
                "refs": refs,
                "bundle": bundle is not None,
                "notes": list(done.notes),
            }
        )
        return 0
    what = "no bundle" if bundle is None else f"a bundle of {refs} ref(s)"
    sys.stdout.write(
        f"exported run {manifest['run_id']} to {done.path}: {events['count']} "
        f"event(s), head {events['head_digest']}, {what}\n"
        f"check it anywhere with: recovery verify --bundle {done.path}\n"
    )
    return 0


def add_export_arguments(sub: argparse.ArgumentParser) -> None:
    """The arguments of ``export``."""
    sub.add_argument("run", help="run id, unique prefix (6+ characters) or 'latest'")
    sub.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the folder to write (new, or empty)",
    )


# -- verify --bundle ---------------------------------------------------------------


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    """``recovery verify --bundle DIR``: checks an export with nothing else
    (no store, no repository is opened); exit 6 with every problem found."""
    checked = check_export(Path(args.bundle))
    if args.json:
        document = checked.as_json()
        if not checked.ok:
            error = IntegrityError(f"export {checked.folder} does not verify")
            document.update(error=str(error), exit_code=error.exit_code)
        print_json(document)
    for note in checked.notes:
        sys.stderr.write(f"recovery: note: {note}\n")
    if not checked.ok:
        lines = "".join(f"  {problem}\n" for problem in checked.problems)
        sys.stderr.write(
            f"recovery: error: export {checked.folder} does not verify:\n{lines}"
        )
        return IntegrityError.exit_code
    if not args.json:
        sys.stdout.write(
            f"export {checked.folder} verifies: run {checked.run_id}, "
            f"{checked.events} event(s), head {checked.head_digest}, "
            f"{checked.refs} ref(s) in its bundle\n"
        )
    return 0


# -- prune -------------------------------------------------------------------------


def cmd_prune(args: argparse.Namespace) -> int:
    """``recovery prune [--keep N] [--older-than AGE] [--dry-run]``."""
    if args.keep is None and args.older_than is None:
        raise UsageError(
            "prune needs --keep N (keep the refs of the N most recently finished "
            "runs), --older-than AGE (runs finished before then), or both"
        )
    if args.keep is not None and args.keep < 0:
        raise UsageError(f"--keep {args.keep}: give 0 or more")
    age = None if args.older_than is None else parse_age(args.older_than)
    app = open_existing(args)
    planned = plan_prune(app, keep=args.keep, older_than=age, now=datetime.now(UTC))
    if args.dry_run:
        done = planned
    else:
        criteria = [f"--keep {args.keep}"] if args.keep is not None else []
        criteria += [f"--older-than {args.older_than}"] if age is not None else []
        reason = args.reason or f"recovery prune {' '.join(criteria)}"
        done = carry_out(
            app, planned, operator=operator_name(args.operator), reason=reason
        )
    if args.json:
        print_json(
            {
                "dry_run": bool(args.dry_run),
                "runs": [r.as_json(dry_run=args.dry_run) for r in done],
            }
        )
        return 0
    sys.stdout.write(_table(done, dry_run=args.dry_run) + "\n")
    return 0


def _table(done: list[Retirement], *, dry_run: bool) -> str:
    if not done:
        return "no finished run to prune"
    rows = []
    for retirement in done:
        refs = retirement.refs if dry_run else retirement.removed
        rows.append(
            [
                retirement.view.run_id[:_SHORT],
                retirement.view.state,
                retirement.finished_at.isoformat()[:19],
                str(len(refs)),
                retirement.note or "",
            ]
        )
    removed = "REFS TO REMOVE" if dry_run else "REFS REMOVED"
    lines = [format_table(["RUN", "STATE", "FINISHED (UTC)", removed, "NOTE"], rows)]
    for retirement in done:
        refs = retirement.refs if dry_run else retirement.removed
        lines += [f"  {'would remove' if dry_run else 'removed'} {r}" for r, _ in refs]
    if dry_run:
        lines.append("dry run: nothing was removed or recorded")
    return "\n".join(lines)


def add_prune_arguments(sub: argparse.ArgumentParser) -> None:
    """The arguments of ``prune``."""
    sub.add_argument(
        "--keep",
        type=int,
        metavar="N",
        help="keep the refs of the N most recently finished runs",
    )
    sub.add_argument(
        "--older-than",
        metavar="AGE",
        help="only runs finished more than AGE ago (30d, 12h, 90m, 2w)",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be removed; write nothing",
    )
    sub.add_argument(
        "--operator", help="who prunes (default: RECOVERY_OPERATOR, else login)"
    )
    sub.add_argument("--reason", default="", help="why, for the record")
