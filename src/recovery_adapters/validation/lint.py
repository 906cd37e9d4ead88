"""The ``lint`` step: ruff on the Python files the batch changed.

Only the changed files that still exist are checked, so that lint problems the
repository already had elsewhere are not the batch's failure, and the cost
follows the change. ruff runs in the workspace with the workspace's own
configuration (``pyproject.toml``, ``ruff.toml`` or ``.ruff.toml``, found as ruff
finds them), including its excludes: files are passed with ``--force-exclude``, so
that a file the configuration excludes (generated code, vendored code) is not
linted because a batch touched it. ruff's cache is not used (``--no-cache``): the
step must not write into the workspace.

A failure keeps ruff's findings: ``error`` is the first finding and the count,
``output_tail`` every finding, one per line (up to :data:`MAX_FINDINGS`),
``component`` the first finding's ``path:line``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import attrs

from recovery_adapters.validation.process import output_tail, run_process
from recovery_core.plan import Step
from recovery_core.ports import StepContext, StepOutcome

__all__ = ["MAX_FINDINGS", "Finding", "find_ruff", "lint_step"]

#: Findings kept in a failure's output; the count always covers them all.
MAX_FINDINGS: Final = 500
#: The files ruff lints for this step.
LINTED_SUFFIXES: Final = (".py", ".pyi")


@attrs.frozen
class Finding:
    """One ruff finding, with its path relative to the workspace."""

    path: str
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{self.path}:{self.line}:{self.column}: {code}{self.message}"


def find_ruff() -> list[str] | None:
    """The ruff executable: on ``PATH``, else beside this interpreter (a venv's
    ``bin/`` that is not on ``PATH``); None when there is none."""
    found = shutil.which("ruff")
    if found:
        return [found]
    beside = Path(sys.executable).with_name("ruff")
    return [str(beside)] if beside.is_file() else None


def _relative(filename: str, root: Path) -> str:
    path = Path(filename)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _findings(raw: Any, root: Path) -> list[Finding]:
    findings = []
    for item in raw:
        location = item.get("location") or {}
        findings.append(
            Finding(
                path=_relative(str(item.get("filename", "")), root),
                line=int(location.get("row") or 0),
                column=int(location.get("column") or 0),
                code=str(item.get("code") or ""),
                message=str(item.get("message", "")).strip(),
            )
        )
    return findings


def lint_step(step: Step, context: StepContext) -> StepOutcome:
    """Runs ``ruff check`` on the Python files the batch changed, with the
    workspace's ruff configuration; any finding fails the step."""
    started = time.monotonic()
    files = [
        f
        for f in context.changed_files
        if f.endswith(LINTED_SUFFIXES) and (context.root / f).is_file()
    ]
    if not files:
        return StepOutcome(
            passed=True,
            duration_s=time.monotonic() - started,
            output_tail="no Python file changed",
        )
    ruff = find_ruff()
    if ruff is None:
        return StepOutcome(
            passed=False,
            duration_s=time.monotonic() - started,
            error="ruff is not installed (looked on PATH and beside "
            f"{sys.executable}); install it or remove the lint step",
        )
    with tempfile.TemporaryDirectory(prefix="recovery-lint-") as folder:
        # The report goes to its own file so that ruff's warnings on stderr can
        # never garble the JSON.
        report = Path(folder) / "ruff.json"
        result = run_process(
            [
                *ruff,
                "check",
                "--output-format",
                "json",
                "--output-file",
                str(report),
                "--no-cache",
                "--no-fix",
                "--force-exclude",
                "--",
                *files,
            ],
            cwd=context.root,
            timeout_s=step.timeout_s,
        )
        text = report.read_text(encoding="utf-8") if report.is_file() else ""
    duration = time.monotonic() - started
    if result.timed_out:
        return StepOutcome(
            passed=False,
            duration_s=duration,
            error=f"ruff timed out after {result.duration_s:.1f}s; its process group "
            "was killed",
            output_tail=output_tail(result.output),
            timed_out=True,
        )
    try:
        findings = _findings(json.loads(text), context.root) if text.strip() else []
    except (ValueError, TypeError, AttributeError):
        findings = []
        text = ""
    if result.exit_code not in (0, 1) or (result.exit_code == 1 and not findings):
        # Exit 2 is ruff's own error (a broken configuration, an unknown rule):
        # the batch may have caused it, and nothing was checked either way.
        message = next(
            (ln.strip() for ln in result.output.splitlines() if ln.strip()), ""
        )
        return StepOutcome(
            passed=False,
            duration_s=duration,
            error=f"ruff failed (exit code {result.exit_code})"
            + (f": {message}" if message else ""),
            output_tail=output_tail(result.output),
            exit_code=result.exit_code,
        )
    checked = f"ruff checked {len(files)} changed file(s)"
    if not findings:
        return StepOutcome(
            passed=True, duration_s=duration, exit_code=0, output_tail=checked
        )
    first = findings[0]
    count = len(findings)
    listing = [str(f) for f in findings[:MAX_FINDINGS]]
    if count > MAX_FINDINGS:
        listing.append(f"... and {count - MAX_FINDINGS} more findings")
    noun = "finding" if count == 1 else "findings"
    return StepOutcome(
        passed=False,
        duration_s=duration,
        error=f"{first} ({count} ruff {noun} in the changed files)",
        component=f"{first.path}:{first.line}",
        output_tail="\n".join(listing),
        exit_code=result.exit_code,
    )
