"""The built-in step runners on real files and real subprocesses: command,
syntax (ruff and the ast fallback) and smoke."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from recovery_adapters.validation import lint, steps
from recovery_adapters.validation.process import run_process
from recovery_core.plan import Batch, Identifier, ModuleName, Step, StepKind, parse_plan
from recovery_core.ports import StepContext
from recovery_core.runner import component_from_traceback


def context(root: Path, changed: tuple[str, ...] = ()) -> StepContext:
    """A step context for a batch in ``root`` with these changed files."""
    return StepContext(
        root=root,
        run_id="run-1",
        batch=Batch(batch_id=Identifier("b1")),
        attempt=1,
        baseline=None,
        changed_files=changed,
        phase="post_build_validation",
    )


def step(kind: str, **options: object) -> Step:
    """A step of ``kind`` as the plan loader would make it."""
    plan = parse_plan(
        {
            "plan_id": "p",
            "batches": [
                {
                    "batch_id": "b",
                    "validation": [{"name": "s", "kind": kind, **options}],
                }
            ],
        }
    )
    return plan.batches[0].validation[0]


def test_command_passes_on_exit_0_and_keeps_the_output_tail(tmp_path: Path) -> None:
    """Exit code 0 passes; the end of the output is kept."""
    outcome = steps.command_step(
        step(
            "command",
            run=[sys.executable, "-c", "print('\\n'.join(map(str, range(100))))"],
        ),
        context(tmp_path),
    )
    assert outcome.passed and outcome.exit_code == 0
    assert outcome.output_tail.splitlines()[-1] == "99"
    assert "0\n" not in outcome.output_tail.splitlines()[0:1]


def test_command_failure_has_exit_code_error_and_tail(tmp_path: Path) -> None:
    """A non-zero exit fails with the code, the last line of output and the tail."""
    code = "import sys; print('working'); print('broken thing', file=sys.stderr); sys.exit(7)"
    outcome = steps.command_step(
        step("command", run=[sys.executable, "-c", code]), context(tmp_path)
    )
    assert not outcome.passed
    assert outcome.exit_code == 7
    assert "exited with code 7" in outcome.error
    assert "broken thing" in outcome.error
    assert "working" in outcome.output_tail


def test_command_that_is_not_found_fails_cleanly(tmp_path: Path) -> None:
    """A missing program is a failed step (exit 127), not a crash of the runner."""
    outcome = steps.command_step(
        step("command", run=["no-such-program-xyz"]), context(tmp_path)
    )
    assert not outcome.passed
    assert outcome.exit_code == 127
    assert "no-such-program-xyz" in outcome.error


def test_command_runs_in_the_workspace_with_the_attempt_in_its_environment(
    tmp_path: Path,
) -> None:
    """Commands run in the workspace and see the run, batch and attempt."""
    code = (
        "import os, pathlib; pathlib.Path('seen.txt').write_text("
        "os.environ['RECOVERY_BATCH_ID'] + ':' + os.environ['RECOVERY_ATTEMPT'])"
    )
    outcome = steps.command_step(
        step("command", run=[sys.executable, "-c", code]), context(tmp_path)
    )
    assert outcome.passed
    assert (tmp_path / "seen.txt").read_text() == "b1:1"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A hanging step is killed at its timeout with its children, and the failure
    says it timed out."""
    code = (
        "import subprocess, sys, time, pathlib; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "pathlib.Path('child.pid').write_text(str(child.pid)); time.sleep(60)"
    )
    started = time.monotonic()
    outcome = steps.command_step(
        step("command", run=[sys.executable, "-c", code], timeout_s=1.5),
        context(tmp_path),
    )
    assert time.monotonic() - started < 30
    assert not outcome.passed
    assert outcome.timed_out
    assert outcome.exit_code is None
    assert outcome.error.endswith(
        "timed out after 1.5 s (timeout_s); its process group was ended with SIGTERM"
    ), outcome.error
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_run_process_string_argv_is_never_a_shell(tmp_path: Path) -> None:
    """Arguments reach the program as they are: no shell expands them."""
    result = run_process(
        [sys.executable, "-c", "import sys; print(sys.argv[1])", "$HOME && echo hi"],
        cwd=tmp_path,
    )
    assert result.output.strip() == "$HOME && echo hi"


@pytest.fixture(params=["ruff", "ast"])
def syntax_checker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Runs a syntax test with ruff and again with the ast fallback."""
    if request.param == "ast":
        monkeypatch.setattr(steps, "find_ruff", lambda: None)
    else:
        assert lint.find_ruff() is not None, (
            "ruff is a dependency and must be installed"
        )
    return str(request.param)


def test_syntax_step_reports_file_line_and_message(
    tmp_path: Path, syntax_checker: str
) -> None:
    """A changed file that does not parse fails the step, naming file and line."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "good.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "bad.py").write_text("x = 1\n\ndef f(:\n    pass\n")
    outcome = steps.syntax_step(
        step("syntax"), context(tmp_path, ("pkg/good.py", "pkg/bad.py"))
    )
    assert not outcome.passed, syntax_checker
    assert outcome.component == "pkg/bad.py:3"
    assert outcome.error.startswith("SyntaxError: ")
    assert "pkg/bad.py:3" in outcome.error


def test_syntax_step_reads_only_changed_python_files(
    tmp_path: Path, syntax_checker: str
) -> None:
    """A broken file the batch did not change, deleted files and non-Python files
    are not the batch's syntax problem."""
    (tmp_path / "old_broken.py").write_text("def (\n")
    (tmp_path / "notes.txt").write_text("def (\n")
    (tmp_path / "new.py").write_text("def ok() -> int:\n    return 1\n")
    outcome = steps.syntax_step(
        step("syntax"), context(tmp_path, ("new.py", "notes.txt", "deleted.py"))
    )
    assert outcome.passed, (syntax_checker, outcome.error)


def _recording_ruff(folder: Path, marker: Path, answer: str) -> list[str]:
    """A stand-in ``ruff`` (a real executable) that notes each start in
    ``marker`` and prints ``answer`` as its JSON report."""
    script = folder / "ruff"
    script.write_text(
        f"#!/bin/sh\necho started >> '{marker}'\ncat <<'EOF'\n{answer}\nEOF\n"
    )
    script.chmod(0o755)
    return [str(script)]


def test_syntax_step_starts_no_process_when_the_files_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's parser reads the changed files first: files that parse pass
    without starting ruff (a process per batch saved)."""
    marker, tools = tmp_path / "ruff-started", tmp_path / "tools"
    tools.mkdir()
    monkeypatch.setattr(
        steps, "find_ruff", lambda: _recording_ruff(tools, marker, "[]")
    )
    (tmp_path / "ok.py").write_text("def ok() -> int:\n    return 1\n")
    outcome = steps.syntax_step(step("syntax"), context(tmp_path, ("ok.py",)))
    assert outcome.passed, outcome.error
    assert not marker.exists()


def test_syntax_step_lets_ruff_judge_and_list_when_a_file_does_not_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file Python's parser refuses goes to ruff, whose report is kept: its
    listing when it finds problems, its pass when it knows the syntax (newer
    than the interpreter running us)."""
    marker, tools = tmp_path / "ruff-started", tmp_path / "tools"
    tools.mkdir()
    (tmp_path / "bad.py").write_text("def f(:\n    pass\n")
    report = json.dumps(
        [
            {
                "filename": "bad.py",
                "location": {"row": 1, "column": 7},
                "message": "Expected a parameter",
            }
        ]
    )
    monkeypatch.setattr(
        steps, "find_ruff", lambda: _recording_ruff(tools, marker, report)
    )
    outcome = steps.syntax_step(step("syntax"), context(tmp_path, ("bad.py",)))
    assert marker.read_text() == "started\n"
    assert not outcome.passed
    assert outcome.error == "SyntaxError: Expected a parameter (bad.py:1:7)"
    monkeypatch.setattr(
        steps, "find_ruff", lambda: _recording_ruff(tools, marker, "[]")
    )
    outcome = steps.syntax_step(step("syntax"), context(tmp_path, ("bad.py",)))
    assert outcome.passed, outcome.error


def test_smoke_import_failure_gives_traceback_and_innermost_workspace_frame(
    tmp_path: Path,
) -> None:
    """An import that raises fails the step with the exception, the traceback and
    the innermost frame inside the workspace as the component."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "helpers.py").write_text(
        "def boom():\n    raise KeyError('missing')\n"
    )
    (tmp_path / "app" / "main.py").write_text(
        "from app.helpers import boom\n\nboom()\n"
    )
    outcome = steps.smoke_step(
        Step(
            name=Identifier("smoke"),
            kind=StepKind("smoke"),
            imports=(ModuleName("app.main"),),
        ),
        context(tmp_path),
    )
    assert not outcome.passed
    assert outcome.error.startswith("KeyError: 'missing'")
    assert outcome.traceback.startswith("Traceback (most recent call last):")
    assert outcome.component == "app/helpers.py:2"


def test_smoke_passes_when_modules_import_and_command_runs(tmp_path: Path) -> None:
    """Modules that import and a command that exits 0 pass the smoke step."""
    (tmp_path / "svc.py").write_text("VALUE = 3\n")
    outcome = steps.smoke_step(
        step(
            "smoke",
            imports=["svc"],
            run=[sys.executable, "-c", "import svc; assert svc.VALUE == 3"],
        ),
        context(tmp_path),
    )
    assert outcome.passed, outcome.error


def test_smoke_command_crash_is_a_failure_with_its_traceback(tmp_path: Path) -> None:
    """A smoke command that raises fails with the exception and its location."""
    (tmp_path / "run_me.py").write_text("def main():\n    return 1 / 0\n\nmain()\n")
    outcome = steps.smoke_step(
        step("smoke", run=[sys.executable, "run_me.py"]), context(tmp_path)
    )
    assert not outcome.passed
    assert outcome.error.startswith("ZeroDivisionError")
    assert outcome.component == "run_me.py:2"


def test_component_from_traceback_ignores_frames_outside_the_workspace(
    tmp_path: Path,
) -> None:
    """Only frames inside the workspace name the component; the innermost wins."""
    text = (
        "Traceback (most recent call last):\n"
        f'  File "{tmp_path}/app/a.py", line 10, in f\n'
        "    g()\n"
        f'  File "{tmp_path}/app/b.py", line 4, in g\n'
        "    json.loads(x)\n"
        '  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads\n'
        "    return _default_decoder.decode(s)\n"
        "ValueError: bad\n"
    )
    assert component_from_traceback(text, tmp_path) == "app/b.py:4"
    assert component_from_traceback("no traceback here", tmp_path) == ""


def test_a_timeout_that_sigterm_does_not_end_says_sigkill_ended_it(
    tmp_path: Path,
) -> None:
    """A step that ignores SIGTERM is killed with SIGKILL after the grace, and
    the error says the configured timeout and the grace separately."""
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    outcome = steps.command_step(
        step("command", run=[sys.executable, "-c", code], timeout_s=1),
        context(tmp_path),
    )
    assert outcome.timed_out
    assert outcome.error.endswith(
        "timed out after 1 s (timeout_s); its process group was ended with "
        "SIGKILL, 2 s after SIGTERM did not end it"
    ), outcome.error
