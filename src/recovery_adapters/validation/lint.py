"""The ``lint`` step: ruff on the Python files the batch changed, judged
against what those files were before the batch.

Only the changed files that still exist are checked, so that lint problems the
repository already had elsewhere are not the batch's failure, and the cost
follows the change. ruff runs in the workspace with the workspace's own
configuration (``pyproject.toml``, ``ruff.toml`` or ``.ruff.toml``, found as ruff
finds them), including its excludes: files are passed with ``--force-exclude``, so
that a file the configuration excludes (generated code, vendored code) is not
linted because a batch touched it. ruff's cache is not used (``--no-cache``): the
step must not write into the workspace.

Real repositories carry lint debt, so by default (``fail_on: new``) a finding
fails the step only when the batch introduced it: when the changed files have
findings, each one's baseline content (read through the workspace) gets the same
check, as if it were that file (``--stdin-filename``), and a finding with the
same rule, file and line text as one of the baseline's was there before (a line
the batch only moved is not new). Those are reported as such and do not fail
the step. ``fail_on: any`` makes every finding fail it.

A failure keeps ruff's findings: ``error`` is the first new finding and the
count, ``output_tail`` every new finding, one per line (up to
:data:`MAX_FINDINGS`), then those that were there before, ``component`` the
first new finding's ``path:line``.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from recovery_adapters.validation.process import (
    ProcessResult,
    output_tail,
    run_process,
)
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
    """The ruff installed with recovery-core (a dependency): the binary its
    Python package names, as ``python -m ruff`` finds it, never a PATH lookup
    (a PATH can hold another version, or a planted one); else the one beside
    this interpreter; None when there is none."""
    try:
        find = getattr(importlib.import_module("ruff"), "find_ruff_bin", None)
        if callable(find):
            return [str(find())]
    except (ImportError, FileNotFoundError):
        pass
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


_RUFF_CHECK: Final = (
    "check",
    "--output-format",
    "json",
    "--no-cache",
    "--no-fix",
    "--force-exclude",
)


@attrs.frozen
class _Check:
    """One ``ruff check``: how it ended, and its findings (None when it gave no
    report: ruff's own error, or a timeout)."""

    result: ProcessResult
    findings: list[Finding] | None


def _ruff_check(
    ruff: Sequence[str],
    root: Path,
    paths: Sequence[str],
    timeout_s: float | None,
    *,
    content: bytes | None = None,
) -> _Check:
    """ruff on ``paths`` in ``root``; with ``content``, on those bytes as if they
    were the file ``paths[0]`` (so its configuration and excludes apply)."""
    with tempfile.TemporaryDirectory(prefix="recovery-lint-") as folder:
        # The report goes to its own file so that ruff's warnings on stderr can
        # never garble the JSON.
        report = Path(folder) / "ruff.json"
        argv = [*ruff, *_RUFF_CHECK, "--output-file", str(report)]
        source = None
        if content is None:
            argv += ["--", *paths]
        else:
            source = Path(folder) / "baseline"
            source.write_bytes(content)
            argv += ["--stdin-filename", paths[0], "-"]
        result = run_process(  # ruff runs none of the workspace's code
            argv, cwd=root, timeout_s=timeout_s, stdin=source, supervised=False
        )
        text = report.read_text(encoding="utf-8") if report.is_file() else ""
    if result.timed_out or result.exit_code not in (0, 1):
        return _Check(result, None)
    try:
        findings = _findings(json.loads(text), root) if text.strip() else []
    except (ValueError, TypeError, AttributeError):
        return _Check(result, None)
    if result.exit_code == 1 and not findings:
        return _Check(result, None)
    return _Check(result, findings)


def _line(content: bytes | None, number: int) -> str:
    lines = (content or b"").splitlines()
    if not 0 < number <= len(lines):
        return ""
    return lines[number - 1].decode("utf-8", "replace").strip()


def _key(finding: Finding, content: bytes | None) -> tuple[str, str, str]:
    """What makes two findings the same: the rule, the file and the text of the
    line (not its number, so that a line the batch moved is not new)."""
    return (finding.code, finding.path, _line(content, finding.line))


def _split_new(
    findings: list[Finding],
    ruff: Sequence[str],
    step: Step,
    context: StepContext,
    deadline: float,
) -> tuple[list[Finding], list[Finding], str]:
    """The findings the batch introduced and those its baseline had already, by
    the same check on the baseline's content of each file with findings; with
    a note when they cannot be told apart (every finding then counts)."""
    if context.workspace is None or context.baseline is None:
        return findings, [], "no baseline to compare with: every finding counts"
    paths = sorted({f.path for f in findings})
    before = context.workspace.read(context.baseline, paths)
    was: Counter[tuple[str, str, str]] = Counter()
    for path in paths:
        content = before.get(path)
        if content is None:
            continue  # a file the batch made: every finding in it is new
        left = None if step.timeout_s is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return findings, [], "the baseline was not linted in time"
        check = _ruff_check(ruff, context.root, [path], left, content=content)
        if check.findings is None:
            return findings, [], f"the baseline of {path} could not be linted"
        was.update(_key(attrs.evolve(f, path=path), content) for f in check.findings)
    new: list[Finding] = []
    old: list[Finding] = []
    now = {path: _read(context.root / path) for path in paths}
    for finding in findings:
        key = _key(finding, now[finding.path])
        if was[key] > 0:
            was[key] -= 1
            old.append(finding)
        else:
            new.append(finding)
    return new, old, ""


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _listing(findings: Sequence[Finding], limit: int) -> list[str]:
    lines = [str(f) for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more findings")
    return lines


def lint_step(step: Step, context: StepContext) -> StepOutcome:
    """Runs ``ruff check`` on the Python files the batch changed, with the
    workspace's ruff configuration. With ``fail_on: new`` (the default) only
    the findings the batch introduced fail the step: each changed file's
    baseline content gets the same check, and findings matched by rule, file
    and line text were there before; with ``fail_on: any``, any finding fails."""
    started = time.monotonic()
    deadline = started + (step.timeout_s or 0)
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
            error="ruff is not installed (recovery-core depends on it; looked for "
            f"the ruff package's binary and beside {sys.executable}); reinstall "
            "recovery-core or remove the lint step",
        )
    check = _ruff_check(ruff, context.root, files, step.timeout_s)
    result = check.result
    if result.timed_out:
        return StepOutcome(
            passed=False,
            duration_s=time.monotonic() - started,
            error=result.timeout_text("ruff"),
            output_tail=output_tail(result.output),
            timed_out=True,
        )
    if check.findings is None:
        # Exit 2 is ruff's own error (a broken configuration, an unknown rule):
        # the batch may have caused it, and nothing was checked either way.
        message = next(
            (ln.strip() for ln in result.output.splitlines() if ln.strip()), ""
        )
        return StepOutcome(
            passed=False,
            duration_s=time.monotonic() - started,
            error=f"ruff failed (exit code {result.exit_code})"
            + (f": {message}" if message else ""),
            output_tail=output_tail(result.output),
            exit_code=result.exit_code,
        )
    new, note = check.findings, ""
    old: list[Finding] = []
    if new and step.fail_on == "new":
        new, old, note = _split_new(new, ruff, step, context, deadline)
    checked = f"ruff checked {len(files)} changed file(s)"
    before = [
        f"{len(old)} finding(s) already there before the batch (not its failure):",
        *_listing(old, MAX_FINDINGS),
    ]
    if not new:
        lines = [f"{checked}: no new finding", *before] if old else [checked]
        return StepOutcome(
            passed=True,
            duration_s=time.monotonic() - started,
            exit_code=0,
            output_tail="\n".join(lines),
        )
    first = new[0]
    noun = "finding" if len(new) == 1 else "findings"
    also = f"; {len(old)} already there before the batch" if old else ""
    lines = [*_listing(new, MAX_FINDINGS), *(before if old else [])]
    if note:
        lines.append(f"({note})")
    return StepOutcome(
        passed=False,
        duration_s=time.monotonic() - started,
        error=f"{first} ({len(new)} ruff {noun} in the changed files{also})",
        component=f"{first.path}:{first.line}",
        output_tail="\n".join(lines),
        exit_code=result.exit_code,
    )
