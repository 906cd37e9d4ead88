"""``recovery verify [RUN | --all] [--expect-head DIGEST]``: checks runs' stored
histories and compares what is on disk with what their events give; exit 0
when all holds, 6 with every finding otherwise (see
:mod:`recovery_adapters.audit.verify`). ``recovery verify --bundle DIR``
checks an export instead (:mod:`recovery_adapters.audit.export`)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from recovery_adapters.audit.verify import RunReport, verify_runs
from recovery_adapters.cli.export import cmd_verify_bundle
from recovery_adapters.cli.output import print_json
from recovery_adapters.cli.wiring import UsageError
from recovery_adapters.stores import find_store
from recovery_core.audit import recorded_runs, resolve_recorded
from recovery_core.errors import IntegrityError, UnknownRun

__all__ = ["add_arguments", "cmd_verify", "report_text"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


def add_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "run", nargs="?", help="run id, prefix or 'latest' (default: latest)"
    )
    sub.add_argument("--all", action="store_true", help="every run in the store")
    sub.add_argument(
        "--bundle",
        metavar="DIR",
        help="check an export (`recovery export`) instead, with no store or repository",
    )
    sub.add_argument(
        "--expect-head",
        metavar="DIGEST",
        help="the head digest the run should have (finds events removed from "
        "its end, which nothing else can)",
    )


def cmd_verify(args: argparse.Namespace) -> int:
    """``recovery verify``."""
    if args.bundle is not None:
        if args.run or args.all or args.expect_head:
            raise UsageError("--bundle checks an export alone: give no run")
        return cmd_verify_bundle(args)
    if args.all and args.run:
        raise UsageError("give a run or --all, not both")
    if args.expect_head is not None:
        if args.all:
            raise UsageError("--expect-head is the head of one run: give the run")
        if not _DIGEST.fullmatch(args.expect_head):
            raise UsageError(
                f"--expect-head {args.expect_head!r}: a digest is 64 hex characters "
                "(`recovery status --json` prints a run's head_digest)"
            )
    app = find_store(Path.cwd(), args.store)
    if args.all:
        wanted = recorded_runs(app)
        if not wanted:
            raise UnknownRun(f"no run in {app.store.display} yet")
    else:
        wanted = [resolve_recorded(app, args.run or "latest")]
    reports = verify_runs(app, wanted, expect_head=args.expect_head)
    failed = [r for r in reports if not r.ok]
    code = IntegrityError.exit_code if failed else 0
    if args.json:
        print_json(_as_json(reports, code))
    else:
        sys.stdout.write(report_text(reports))
    if failed:
        sys.stderr.write(
            f"recovery: error: {len(failed)} of {len(reports)} run(s) do not verify\n"
        )
    return code


def _as_json(reports: list[RunReport], code: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ok": code == 0,
        "runs": [r.as_json() for r in reports],
    }
    if code:
        failed = [r for r in reports if not r.ok]
        data["error"] = f"{len(failed)} of {len(reports)} run(s) do not verify"
        data["exit_code"] = code
        data["problems"] = [
            f"run {r.run_id}: {f.text()}" for r in failed for f in r.findings
        ]
    return data


def report_text(reports: list[RunReport]) -> str:
    """The reports for people: one line a run, then its findings and notes."""
    lines = []
    for report in reports:
        verdict = "verified" if report.ok else f"{len(report.findings)} finding(s)"
        lines.append(
            f"run {report.run_id}: {report.events} events, head "
            f"{report.head[:16] or '-'}: {verdict}"
        )
        lines += [f"  [{f.check}] {f.text()}" for f in report.findings]
        lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines) + "\n"
