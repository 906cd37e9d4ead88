"""The built-in step runners: ``command``, ``syntax`` and ``smoke``."""

from __future__ import annotations

import ast
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from recovery_adapters.validation.lint import find_ruff
from recovery_adapters.validation.process import (
    ProcessResult,
    component_of,
    output_tail,
    run_process,
)
from recovery_adapters.validation.testrunners import failed_tests, summary
from recovery_core.plan import Step
from recovery_core.ports import (
    StepContext,
    StepOutcome,
    StepRunner,
    runs_no_workspace_code,
)

__all__ = ["command_step", "default_step_runners", "smoke_step", "syntax_step"]


def _step_env(context: StepContext) -> dict[str, str]:
    """What a step's command is told of the attempt it runs in."""
    return {
        "RECOVERY_RUN_ID": context.run_id,
        "RECOVERY_BATCH_ID": context.batch.batch_id,
        "RECOVERY_ATTEMPT": str(context.attempt),
        "RECOVERY_WORKSPACE": str(context.root),
    }


def _from_process(
    result: ProcessResult, context: StepContext, what: str
) -> StepOutcome:
    tail = output_tail(result.output)
    if result.timed_out:
        return StepOutcome(
            passed=False,
            duration_s=result.duration_s,
            error=result.timeout_text(what),
            component=component_of(result.output, context.root),
            output_tail=tail,
            timed_out=True,
        )
    if result.exit_code == 0:
        return StepOutcome(
            passed=True, duration_s=result.duration_s, exit_code=0, output_tail=tail
        )
    traceback = _python_traceback(result.output)
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    tests = [] if result.not_found else failed_tests(result.output)
    if result.not_found:
        error = result.output.strip()
    else:
        error = f"{what} exited with code {result.exit_code}"
        exception = traceback.strip().splitlines()[-1].strip() if traceback else ""
        if tests:  # a test runner's own summary: which tests, and why
            error = f"{summary(tests)} ({error})"
        elif exception:
            error = f"{exception} ({error})"
        elif last:
            error = f"{error}: {last.strip()}"
    return StepOutcome(
        passed=False,
        duration_s=result.duration_s,
        error=error,
        component=component_of(result.output, context.root),
        traceback=traceback,
        output_tail=tail,
        exit_code=result.exit_code,
    )


def _python_traceback(output: str) -> str:
    """The last Python traceback in ``output``, through its exception line,
    less the frames of the import machinery (``<frozen importlib._bootstrap>``,
    ``importlib/__init__.py``) and of code given on the command line
    (``<string>``), which say nothing of where the failure lies."""
    start = output.rfind("Traceback (most recent call last):")
    if start < 0:
        return ""
    lines = output[start:].splitlines()
    kept = [lines[0]]
    dropped = 0
    skipping = False
    for line in lines[1:]:
        if line.startswith("  File "):
            name = line.strip()[len('File "') :].partition('"')[0]
            skipping = name.startswith(_NOISE_FRAMES) or name.endswith(_IMPORTLIB_INIT)
            dropped += skipping
        elif line.startswith("    ") and skipping:
            continue  # the dropped frame's source line and carets
        else:
            skipping = False
        if not skipping:
            kept.append(line)
        if line and not line.startswith((" ", "\t")):
            break
    if dropped:
        kept.insert(
            1, f"  ({dropped} frame(s) of the import machinery or -c code left out)"
        )
    return "\n".join(kept)


_NOISE_FRAMES = ("<frozen importlib", "<string>", "<frozen runpy>")
_IMPORTLIB_INIT = f"importlib{os.sep}__init__.py"


def command_step(step: Step, context: StepContext) -> StepOutcome:
    """Runs ``step.run`` in the workspace: exit code 0 passes."""
    assert step.run is not None
    result = run_process(
        step.run, cwd=context.root, timeout_s=step.timeout_s, env=_step_env(context)
    )
    return _from_process(result, context, f"`{' '.join(step.run)}`")


@runs_no_workspace_code
def syntax_step(step: Step, context: StepContext) -> StepOutcome:
    """Checks that the Python files the batch changed parse. Only the changed
    files are read. Python's own parser (``ast``, which runs nothing) reads them
    first; when one does not parse and ruff is installed, ruff judges them all
    and its listing is kept (it names every problem, and it knows syntax newer
    than the interpreter running us), so a batch whose files parse starts no
    process."""
    started = time.monotonic()
    files = [
        f
        for f in context.changed_files
        if f.endswith(".py") and (context.root / f).is_file()
    ]
    problems = _parse_problems(context.root, files)
    ruff = find_ruff() if problems else None
    judged = None if ruff is None else _ruff_problems(ruff, step, context, files)
    if judged is not None:
        problems = judged
    duration = time.monotonic() - started
    if not problems:
        return StepOutcome(passed=True, duration_s=duration)
    listing = "\n".join(f"{p}:{line}:{col}: {msg}" for p, line, col, msg in problems)
    first = problems[0]
    return StepOutcome(
        passed=False,
        duration_s=duration,
        error=f"SyntaxError: {first[3]} ({first[0]}:{first[1]}:{first[2]})"
        + (f" and {len(problems) - 1} more" if len(problems) > 1 else ""),
        component=f"{first[0]}:{first[1]}",
        output_tail=output_tail(listing),
    )


_Problem = tuple[str, int, int, str]


def _parse_problems(root: Path, files: list[str]) -> list[_Problem]:
    """The first syntax error of each file, by Python's parser."""
    problems: list[_Problem] = []
    for relative in files:
        try:
            ast.parse((root / relative).read_bytes(), filename=relative)
        except SyntaxError as exc:
            problems.append((relative, exc.lineno or 0, exc.offset or 0, exc.msg))
        except ValueError as exc:
            problems.append((relative, 0, 0, str(exc)))
    return problems


def _ruff_problems(
    ruff: list[str], step: Step, context: StepContext, files: list[str]
) -> list[_Problem] | None:
    """Every syntax error ruff finds in ``files`` (empty when it finds none);
    None when ruff gave no report it could be read from."""
    result = run_process(
        [
            *ruff,
            "check",
            "--select",
            "E9",
            "--output-format",
            "json",
            "--no-cache",
            "--isolated",
            "--",
            *files,
        ],
        cwd=context.root,
        timeout_s=step.timeout_s,
        supervised=False,  # ruff runs none of the workspace's code
    )
    try:
        findings = json.loads(result.output[result.output.find("[") :] or "[]")
    except json.JSONDecodeError:
        return None
    problems: list[_Problem] = []
    for finding in findings:
        path = Path(finding["filename"])
        relative = (
            path.resolve().relative_to(context.root).as_posix()
            if path.is_absolute()
            else path.as_posix()
        )
        location = finding.get("location") or {}
        problems.append(
            (
                relative,
                int(location.get("row", 0)),
                int(location.get("column", 0)),
                str(finding.get("message", "invalid syntax")),
            )
        )
    return problems


_IMPORT_PROBE = (
    "import importlib, sys\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
)


def smoke_step(step: Step, context: StepContext) -> StepOutcome:
    """Imports ``step.imports`` in a fresh interpreter with the workspace on the
    path, then runs ``step.run`` if given; a traceback fails the step."""
    env = _step_env(context)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(context.root), os.environ.get("PYTHONPATH", "")) if p
    )
    total = 0.0
    if step.imports:
        result = run_process(
            [sys.executable, "-c", _IMPORT_PROBE, *step.imports],
            cwd=context.root,
            timeout_s=step.timeout_s,
            env=env,
        )
        total += result.duration_s
        outcome = _from_process(result, context, f"import of {', '.join(step.imports)}")
        if not outcome.passed:
            return outcome
    if step.run:
        result = run_process(
            step.run, cwd=context.root, timeout_s=step.timeout_s, env=env
        )
        total += result.duration_s
        outcome = _from_process(result, context, f"`{' '.join(step.run)}`")
        if not outcome.passed:
            return outcome
    return StepOutcome(passed=True, duration_s=total, exit_code=0)


def default_step_runners() -> Mapping[str, StepRunner]:
    """The step runners this package provides, by kind."""
    from recovery_adapters.validation.lint import lint_step
    from recovery_adapters.validation.surface import surface_step

    return {
        "command": command_step,
        "lint": lint_step,
        "smoke": smoke_step,
        "surface": surface_step,
        "syntax": syntax_step,
    }
