"""Failure detection on real code: standard-library modules and their own
unittest files, copied into a real git repository, broken by a batch in each of
the ways a batch fails, and run through the real command line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from support import STDLIB, cli_json, copy_stdlib, git, run_cli, write_plan

MODULES = ("colorsys", "textwrap")


@pytest.fixture
def stdlib_repo(tmp_path: Path) -> Path:
    """A repository holding copies of colorsys and textwrap in the package
    ``stdcopy``, with their own test modules importing the copies."""
    if not (STDLIB / "test" / "test_textwrap.py").exists():
        pytest.skip("this Python has no test package")
    root = tmp_path / "repo"
    copy_stdlib(root, MODULES, rewrite_imports=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "stdlib copies")
    return root


def edit_action(path: str, old: str, new: str) -> dict[str, Any]:
    """An action that replaces the first ``old`` with ``new`` in ``path``."""
    code = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]); t = p.read_text(); "
        "assert sys.argv[2] in t, 'edit target missing'; "
        "p.write_text(t.replace(sys.argv[2], sys.argv[3], 1))"
    )
    return {"name": "generate", "run": [sys.executable, "-c", code, path, old, new]}


def unit_tests(name: str) -> dict[str, Any]:
    """The copied module's own unittest file as a validation step."""
    return {
        "name": "unit_tests",
        "kind": "command",
        "run": [sys.executable, "-m", "unittest", "-q", f"tests.test_{name}"],
        "timeout_s": 300,
    }


def run_batch(repo: Path, batch: dict[str, Any]) -> dict[str, Any]:
    """Runs a one-batch plan; expects the halt; returns the batch's failure."""
    write_plan(repo.parent / "plan.json", {"plan_id": "detect", "batches": [batch]})
    done = run_cli("run", repo.parent / "plan.json", cwd=repo)
    assert done.returncode == 3, done.stdout + done.stderr
    failure: dict[str, Any] = cli_json("status", cwd=repo)["batches"][0]["failure"]
    return failure


def line_of(path: Path, text: str) -> int:
    """The 1-based line number of the first line containing ``text``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def test_syntax_error_names_file_and_line(stdlib_repo: Path) -> None:
    """A batch that breaks textwrap's syntax fails the syntax step at that line."""
    target = "class TextWrapper:"
    line = line_of(stdlib_repo / "stdcopy" / "textwrap.py", target)
    failure = run_batch(
        stdlib_repo,
        {
            "batch_id": "broken-syntax",
            "actions": [
                edit_action("stdcopy/textwrap.py", target, "class TextWrapper(:")
            ],
            "validation": [
                {"name": "syntax_check", "kind": "syntax"},
                unit_tests("textwrap"),
            ],
        },
    )
    assert failure["step"] == "post_build_validation.syntax_check"
    assert failure["component"] == f"stdcopy/textwrap.py:{line}"
    assert failure["error"].startswith("SyntaxError: ")
    assert failure["changed_files"] == ["stdcopy/textwrap.py"]


#: An edit that breaks colorsys's behaviour (and its own unit tests).
WRONG_BEHAVIOUR = edit_action(
    "stdcopy/colorsys.py", "maxc = max(r, g, b)", "maxc = min(r, g, b)"
)


def test_failing_unit_tests_keep_the_assertion_and_the_test_location(
    stdlib_repo: Path,
) -> None:
    """A behaviour change in colorsys fails its own unit tests; the failure keeps
    the assertion, the traceback and where it was raised."""
    failure = run_batch(
        stdlib_repo,
        {
            "batch_id": "wrong-behaviour",
            "actions": [WRONG_BEHAVIOUR],
            "validation": [unit_tests("colorsys")],
        },
    )
    assert failure["step"] == "post_build_validation.unit_tests"
    assert "AssertionError" in failure["error"] or "Error" in failure["error"]
    assert failure["exit_code"] == 1
    assert failure["component"].startswith(
        ("tests/test_colorsys.py:", "stdcopy/colorsys.py:")
    )
    log = (stdlib_repo / ".recovery" / "logs" / "bootstrap_errors.log").read_text()
    entry = json.loads(log.splitlines()[-1])
    assert "Traceback (most recent call last)" in entry["traceback"]


def test_module_that_crashes_on_import_fails_the_smoke_step(stdlib_repo: Path) -> None:
    """A module that raises when imported fails the smoke step with the
    exception, the full traceback and the module's own line as component."""
    target = "def dedent(text):"
    failure = run_batch(
        stdlib_repo,
        {
            "batch_id": "crash-on-import",
            "actions": [
                edit_action(
                    "stdcopy/textwrap.py",
                    target,
                    "raise RuntimeError('generated code crashed')\n" + target,
                )
            ],
            "validation": [
                {"name": "syntax_check", "kind": "syntax"},
                {"name": "smoke", "kind": "smoke", "imports": ["stdcopy.textwrap"]},
            ],
        },
    )
    assert failure["step"] == "post_build_validation.smoke"
    assert failure["error"].startswith("RuntimeError: generated code crashed")
    assert failure["component"].startswith("stdcopy/textwrap.py:")
    entry = json.loads(
        (stdlib_repo / ".recovery" / "logs" / "bootstrap_errors.log")
        .read_text()
        .splitlines()[-1]
    )
    # The frames that matter: the module's own, not the import machinery's.
    frames = [
        line for line in entry["traceback"].splitlines() if line.startswith("  File ")
    ]
    assert frames and all("stdcopy/textwrap.py" in line for line in frames), frames
    assert "<frozen importlib" not in entry["traceback"]
    assert (
        "frame(s) of the import machinery or -c code left out" in (entry["traceback"])
    )
    assert entry["traceback"].rstrip().endswith("RuntimeError: generated code crashed")


def test_the_component_is_a_workspace_file_or_empty(stdlib_repo: Path) -> None:
    """Code given with ``-c`` that raises has no file: the component is empty,
    never ``<string>:1``; a frame in a file outside the workspace (the standard
    library's own json) is not the component either."""
    failure = run_batch(
        stdlib_repo,
        {
            "batch_id": "dash-c",
            "actions": [edit_action("stdcopy/colorsys.py", "ONE_THIRD", "ONE_THIRD")],
            "validation": [
                {
                    "name": "check",
                    "kind": "command",
                    "run": [sys.executable, "-c", "import json\njson.loads('{')"],
                }
            ],
        },
    )
    assert failure["error"].startswith("json.decoder.JSONDecodeError"), failure
    assert failure["component"] == ""
    assert "<string>" not in failure["traceback"]


def test_action_that_raises_is_a_build_failure_in_the_workspace_frame(
    stdlib_repo: Path,
) -> None:
    """An action whose generated code raises is a build failure with the exception
    and the innermost frame inside the workspace as the component."""
    (stdlib_repo / "tools").mkdir()
    (stdlib_repo / "tools" / "generate.py").write_text(
        "from stdcopy import textwrap\n\n\ndef main():\n    return textwrap.dedent(None)\n\n\nmain()\n"
    )
    git(stdlib_repo, "add", "-A")
    git(stdlib_repo, "commit", "-q", "-m", "generator")
    failure = run_batch(
        stdlib_repo,
        {
            "batch_id": "generator-crash",
            "actions": [
                {"name": "generate", "run": [sys.executable, "-m", "tools.generate"]}
            ],
            "validation": [{"name": "syntax_check", "kind": "syntax"}],
        },
    )
    assert failure["step"] == "build.generate"
    assert failure["error"].startswith("TypeError")
    assert failure["component"].startswith("stdcopy/textwrap.py:")


def test_hanging_step_is_killed_at_its_timeout(stdlib_repo: Path) -> None:
    """A validation step that hangs is killed at its timeout, and the failure
    says so."""
    failure = run_batch(
        stdlib_repo,
        {
            "batch_id": "hangs",
            "actions": [edit_action("stdcopy/colorsys.py", "ONE_THIRD", "ONE_THIRD")],
            "validation": [
                {
                    "name": "smoke_run",
                    "kind": "smoke",
                    "run": [sys.executable, "-c", "import time; time.sleep(120)"],
                    "timeout_s": 1,
                }
            ],
        },
    )
    assert failure["step"] == "post_build_validation.smoke_run"
    assert failure["timed_out"] is True
    assert (
        "timed out after 1 s (timeout_s); its process group was ended"
        in (failure["error"])
    ), failure["error"]


#: A ruff configuration that the copied textwrap.py breaks already (printf-style
#: formatting, UP031) before any batch.
LINT_DEBT = '[lint]\nselect = ["F", "UP031"]\n'
CLEAN_FUNCTION = '\n\ndef shout(text):\n    return f"{text.upper()}!"\n'


def lint_batch(batch_id: str, addition: str) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "actions": [edit_action("stdcopy/textwrap.py", "\ndef dedent(", addition)],
        "validation": [{"name": "lint", "kind": "lint"}],
    }


def test_lint_judges_what_the_batch_added_not_the_debt(stdlib_repo: Path) -> None:
    """textwrap.py has ruff findings before any batch. Through the real command:
    a batch that adds a clean function passes the lint step; a batch that adds
    one new finding fails it naming that finding only, the old ones reported as
    already there."""
    (stdlib_repo / "ruff.toml").write_text(LINT_DEBT)
    git(stdlib_repo, "add", "ruff.toml")
    git(stdlib_repo, "commit", "-q", "-m", "lint rules")
    write_plan(
        stdlib_repo.parent / "plan.json",
        {
            "plan_id": "lint-debt",
            "batches": [lint_batch("clean", CLEAN_FUNCTION + "\ndef dedent(")],
        },
    )
    done = run_cli("run", stdlib_repo.parent / "plan.json", cwd=stdlib_repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli_json("status", cwd=stdlib_repo)["state"] == "completed"

    addition = "\n\ndef loud(text):\n    import os\n    return text\n\ndef dedent("
    failure = run_batch(stdlib_repo, lint_batch("new-finding", addition))
    error = failure["error"]
    assert " F401 `os` imported but unused (1 ruff finding in the changed files; " in (
        error
    ), error
    assert error.endswith("already there before the batch)"), error
    assert "UP031" not in error
    assert failure["component"].startswith("stdcopy/textwrap.py:")
    tail = failure["output_tail"].splitlines()
    assert " F401 " in tail[0] and tail[0].startswith("stdcopy/textwrap.py:")
    assert "already there before the batch" in tail[1]
    assert tail[2:] and all(" UP031 " in entry for entry in tail[2:])


@pytest.mark.parametrize("runner", ["unittest", "pytest"])
def test_failed_tests_are_named_with_their_first_error_line(
    stdlib_repo: Path, runner: str
) -> None:
    """colorsys's own tests fail after a behaviour change: the error, the
    failure log and the status name the failed tests, each with its first
    error line, as unittest and pytest report them, not only the exit code."""
    run = (
        [sys.executable, "-m", "unittest", "-q", "tests.test_colorsys"]
        if runner == "unittest"
        else [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_colorsys.py",
        ]
    )
    failure = run_batch(
        stdlib_repo,
        {
            "batch_id": "wrong-behaviour",
            "actions": [WRONG_BEHAVIOUR],
            "validation": [{"name": "unit_tests", "kind": "command", "run": run}],
        },
    )
    test_id = (
        r"tests\.test_colorsys\.ColorsysTest\.test_\w+"
        if runner == "unittest"
        else r"tests/test_colorsys\.py::ColorsysTest::test_\w+"
    )
    pattern = rf"^\d+ tests? failed: {test_id} \(AssertionError: .+\)"
    assert re.match(pattern, failure["error"]), failure["error"]
    assert failure["error"].endswith("exited with code 1)")
    log = (stdlib_repo / ".recovery" / "logs" / "bootstrap_errors.log").read_text()
    entry = json.loads(log.splitlines()[-1])
    assert re.match(pattern, entry["error"]), entry["error"]


@pytest.fixture
def shlex_repo(tmp_path: Path) -> Path:
    """A repository holding copies of shlex and fnmatch and their own tests, with
    a ruff configuration both copies break already."""
    if not (STDLIB / "test" / "test_shlex.py").exists():
        pytest.skip("this Python has no test package")
    root = tmp_path / "repo"
    copy_stdlib(root, ("shlex", "fnmatch"), rewrite_imports=True)
    (root / "ruff.toml").write_text(LINT_DEBT)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "stdlib copies")
    return root


def test_a_good_batch_on_real_code_with_lint_debt_is_committed(
    shlex_repo: Path,
) -> None:
    """On shlex (with lint findings of its own), a batch that adds a function
    passes syntax, lint, surface, the module's own unit tests and a smoke
    import on the first attempt, and is committed; a second batch that removes
    fnmatch's public ``filter`` fails the surface step naming it."""
    addition = (
        '\n\ndef split_words(text):\n    """Words of text, as a shell splits them."""\n'
        "    return split(text)\n\n\ndef _print_tokens("
    )
    checks: list[dict[str, Any]] = [
        {"name": "syntax", "kind": "syntax"},
        {"name": "lint", "kind": "lint"},
        {"name": "surface", "kind": "surface", "modules": ["stdcopy"]},
        unit_tests("shlex"),
        {"name": "smoke", "kind": "smoke", "imports": ["stdcopy.shlex"]},
    ]
    write_plan(
        shlex_repo.parent / "plan.json",
        {
            "plan_id": "real-code",
            "batches": [
                {
                    "batch_id": "add-split-words",
                    "actions": [
                        edit_action(
                            "stdcopy/shlex.py", "\n\ndef _print_tokens(", addition
                        )
                    ],
                    "validation": checks,
                    "commit_strategy": "commit",
                }
            ],
        },
    )
    done = run_cli("run", shlex_repo.parent / "plan.json", cwd=shlex_repo)
    assert done.returncode == 0, done.stdout + done.stderr
    batch = cli_json("status", cwd=shlex_repo)["batches"][0]
    assert (batch["status"], batch["attempts"]) == ("verified", 1)
    log = git(shlex_repo, "log", "-1", "--format=%B")
    assert "Recovery-Batch: add-split-words" in log
    assert "def split_words" in git(shlex_repo, "show", "HEAD:stdcopy/shlex.py")

    failure = run_batch(
        shlex_repo,
        {
            "batch_id": "drop-filter",
            "actions": [
                edit_action("stdcopy/fnmatch.py", "def filter(", "def _filter(")
            ],
            "validation": [
                {"name": "surface", "kind": "surface", "modules": ["stdcopy"]}
            ],
        },
    )
    assert failure["step"] == "post_build_validation.surface"
    assert "stdcopy.fnmatch.filter" in failure["error"], failure["error"]
    assert failure["component"].startswith("stdcopy/fnmatch.py")
