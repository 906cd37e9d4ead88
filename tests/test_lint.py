"""The ``lint`` step on real code: standard-library modules and their own
unittest files in a real git repository with its own ruff configuration, and the
real ruff."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recovery_adapters import GitWorkspace
from recovery_adapters.validation import lint
from recovery_adapters.validation.lint import find_ruff, lint_step
from recovery_core import RecoveryApp
from recovery_core.plan import (
    Batch,
    Identifier,
    LintFailOn,
    Step,
    StepKind,
    parse_plan,
)
from recovery_core.ports import StepContext, StepOutcome
from recovery_core.runner import Halted
from support import copy_stdlib, git

COPIED = ("shlex", "textwrap", "colorsys", "fnmatch")
#: The workspace's ruff configuration: pyflakes and one pyupgrade rule, which the
#: copied shlex.py and textwrap.py break already (printf-style formatting).
RUFF_CONFIG = """\
[tool.ruff]
extend-exclude = ["generated"]

[tool.ruff.lint]
select = ["F", "UP031"]
"""

pytestmark = pytest.mark.skipif(find_ruff() is None, reason="ruff is not installed")


@pytest.fixture
def lintrepo(tmp_path: Path) -> Path:
    """A git repository with the package ``stdcopy`` (standard-library modules),
    their unittest files under ``tests/``, and a pyproject.toml configuring ruff."""
    root = tmp_path / "work"
    copy_stdlib(root, COPIED)
    (root / "generated").mkdir()
    (root / "pyproject.toml").write_text(RUFF_CONFIG)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "standard library copies")
    return root


def lint_changes(root: Path, fail_on: LintFailOn = "new") -> StepOutcome:
    """Runs the lint step on what changed in ``root`` since its last commit, with
    the changed files as the git workspace lists them against a snapshot."""
    workspace = GitWorkspace(root)
    workspace.prepare()
    baseline = git(root, "rev-parse", "HEAD").strip()
    context = StepContext(
        root=workspace.root,
        run_id="run-1",
        batch=Batch(batch_id=Identifier("b1")),
        attempt=1,
        baseline=baseline,
        changed_files=workspace.changed_files(baseline),
        phase="post_build_validation",
        workspace=workspace,
    )
    step = Step(name=Identifier("lint"), kind=StepKind("lint"), fail_on=fail_on)
    return lint_step(step, context)


def append(path: Path, text: str) -> None:
    """Adds ``text`` at the end of the file."""
    with path.open("a") as handle:
        handle.write(text)


def test_findings_are_kept_in_the_failure(lintrepo: Path) -> None:
    """Each finding in the changed files is kept: the error is the first finding
    (path:line:col: CODE message) with the count, the output tail lists them all
    one per line, and the component is the first finding's path:line."""
    fnmatch_py = lintrepo / "stdcopy" / "fnmatch.py"
    lines = len(fnmatch_py.read_text().splitlines())
    append(
        fnmatch_py,
        "\n\ndef describe(pattern):\n"
        "    import json\n"
        "    return 'pattern %s' % pattern\n",
    )
    outcome = lint_changes(lintrepo)
    assert not outcome.passed
    assert outcome.exit_code == 1
    assert outcome.error == (
        f"stdcopy/fnmatch.py:{lines + 4}:12: F401 `json` imported but unused "
        "(2 ruff findings in the changed files)"
    )
    assert outcome.component == f"stdcopy/fnmatch.py:{lines + 4}"
    assert outcome.output_tail.splitlines() == [
        f"stdcopy/fnmatch.py:{lines + 4}:12: F401 `json` imported but unused",
        f"stdcopy/fnmatch.py:{lines + 5}:12: UP031 Use format specifiers instead of "
        "percent format",
    ]


def test_lint_errors_in_unchanged_files_do_not_fail(lintrepo: Path) -> None:
    """The repository already breaks its own lint rules in files the batch did not
    touch (the copied shlex.py and test_shlex.py): only the changed files are
    checked, so a clean change passes."""
    whole = subprocess.run(
        [*(find_ruff() or []), "check", "--no-cache", "."],
        cwd=lintrepo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert whole.returncode == 1, whole.stdout
    assert "stdcopy/shlex.py" in whole.stdout
    append(
        lintrepo / "stdcopy" / "colorsys.py",
        "\n\ndef grey(v):\n    return (v, v, v)\n",
    )
    outcome = lint_changes(lintrepo)
    assert outcome.passed, outcome.error
    assert outcome.output_tail == "ruff checked 1 changed file(s)"


def test_touching_a_file_with_old_findings_reports_them_as_old(
    lintrepo: Path,
) -> None:
    """A changed file is checked whole, but the findings it already had before
    the batch are not the batch's: they are reported as such and the step
    passes."""
    shlex_py = lintrepo / "stdcopy" / "shlex.py"
    before = subprocess.run(
        [*(find_ruff() or []), "check", "--no-cache", "stdcopy/shlex.py"],
        cwd=lintrepo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert before.returncode == 1 and "UP031" in before.stdout
    append(shlex_py, "\n# touched\n")
    outcome = lint_changes(lintrepo)
    assert outcome.passed, outcome.error
    lines = outcome.output_tail.splitlines()
    assert lines[0] == "ruff checked 1 changed file(s): no new finding"
    assert lines[1].endswith("already there before the batch (not its failure):")
    assert len(lines) > 2
    assert all(line.startswith("stdcopy/shlex.py:") for line in lines[2:])
    assert all(" UP031 " in line for line in lines[2:])


def test_fail_on_any_fails_on_old_findings_too(lintrepo: Path) -> None:
    """``fail_on: any`` turns back to "any finding fails": the findings the
    touched file already had fail the step."""
    append(lintrepo / "stdcopy" / "shlex.py", "\n# touched\n")
    outcome = lint_changes(lintrepo, fail_on="any")
    assert not outcome.passed
    assert outcome.error.startswith("stdcopy/shlex.py:")
    assert " UP031 " in outcome.error
    assert {line.split(":")[0] for line in outcome.output_tail.splitlines()} == {
        "stdcopy/shlex.py"
    }


def test_only_the_new_finding_fails_and_is_named(lintrepo: Path) -> None:
    """In a file with old findings, a batch that adds one new finding (and
    moves an old finding's line down) fails naming that finding alone; the old
    ones are listed after it as old."""
    textwrap_py = lintrepo / "stdcopy" / "textwrap.py"
    text = textwrap_py.read_text()
    old_count = text.count(" % ")
    assert old_count > 0
    # Lines added at the top move every old finding down.
    textwrap_py.write_text(
        text.replace('"""Text wrapping', '"""Text wrapping', 1).replace(
            "\nimport re\n", "\nimport re\nimport json\n", 1
        )
    )
    outcome = lint_changes(lintrepo)
    assert not outcome.passed
    line = text.splitlines().index("import re") + 2
    assert outcome.error.startswith(
        f"stdcopy/textwrap.py:{line}:8: F401 `json` imported but unused (1 ruff "
        "finding in the changed files; "
    ), outcome.error
    assert outcome.error.endswith("already there before the batch)")
    assert outcome.component == f"stdcopy/textwrap.py:{line}"
    lines = outcome.output_tail.splitlines()
    assert lines[0] == f"stdcopy/textwrap.py:{line}:8: F401 `json` imported but unused"
    assert "already there before the batch" in lines[1]
    assert lines[2:] and all(" UP031 " in entry for entry in lines[2:])


def test_the_workspace_ruff_configuration_is_respected(lintrepo: Path) -> None:
    """ruff runs with the workspace's configuration: rules it does not select
    (B006, E711) are not reported, and a file it excludes is not linted even
    when the batch changed it."""
    append(
        lintrepo / "stdcopy" / "colorsys.py",
        "\n\ndef pick(values=[]):\n    return values == None\n",
    )
    (lintrepo / "generated" / "table.py").write_text("import os\n")
    outcome = lint_changes(lintrepo)
    assert outcome.passed, outcome.error
    (lintrepo / "pyproject.toml").write_text(
        RUFF_CONFIG.replace('select = ["F", "UP031"]', 'select = ["F", "B006"]')
    )
    outcome = lint_changes(lintrepo)
    assert not outcome.passed
    assert outcome.output_tail.splitlines() == [
        line
        for line in outcome.output_tail.splitlines()
        if line.startswith("stdcopy/colorsys.py:") and " B006 " in line
    ]


def test_no_python_file_changed_passes_without_running_ruff(
    lintrepo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that changed no Python file (or only deleted some) passes; ruff is
    not even looked for."""
    (lintrepo / "README.md").write_text("# notes\n")
    (lintrepo / "tests" / "test_colorsys.py").unlink()
    monkeypatch.setattr(lint, "find_ruff", lambda: pytest.fail("ruff looked for"))
    outcome = lint_changes(lintrepo)
    assert outcome.passed
    assert outcome.output_tail == "no Python file changed"


def test_ruff_is_found_without_a_path_lookup(
    lintrepo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ruff is a dependency, found as its package says: with a PATH that holds
    git alone (and a planted ``ruff`` that always passes, first on it), the
    step still runs the installed ruff and finds the batch's finding."""
    append(lintrepo / "stdcopy" / "colorsys.py", "\nimport os\n")
    bare = tmp_path / "bin-without-ruff"
    bare.mkdir()
    real_git = shutil.which("git")
    assert real_git is not None
    (bare / "git").symlink_to(real_git)
    planted = bare / "ruff"
    planted.write_text("#!/bin/sh\nexit 0\n")
    planted.chmod(0o755)
    monkeypatch.setenv("PATH", str(bare))
    outcome = lint_changes(lintrepo)
    assert not outcome.passed
    assert " F401 `os` imported but unused" in outcome.error
    assert find_ruff() != [str(planted)]


def test_missing_ruff_fails_clearly(
    lintrepo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the ruff package and with no ruff beside the interpreter, the
    step fails and says that ruff is not installed."""
    append(lintrepo / "stdcopy" / "colorsys.py", "\n# touched\n")
    monkeypatch.setitem(sys.modules, "ruff", None)  # import ruff fails
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    outcome = lint_changes(lintrepo)
    assert not outcome.passed
    assert outcome.error.startswith("ruff is not installed")


def test_broken_ruff_configuration_fails_the_step(lintrepo: Path) -> None:
    """A configuration ruff refuses (here, an unknown rule) fails the step with
    ruff's own message: nothing was checked."""
    (lintrepo / "pyproject.toml").write_text(
        RUFF_CONFIG.replace('"UP031"', '"NOPE123"')
    )
    append(lintrepo / "stdcopy" / "colorsys.py", "\n# touched\n")
    outcome = lint_changes(lintrepo)
    assert not outcome.passed
    assert outcome.exit_code == 2
    assert outcome.error.startswith("ruff failed (exit code 2)")
    assert "NOPE123" in outcome.output_tail


def test_lint_step_in_a_run_records_the_findings(lintrepo: Path) -> None:
    """Registered as the ``lint`` kind, the step runs in a real run: a finding
    halts the batch and the recorded failure keeps ruff's findings."""
    plan = parse_plan(
        {
            "plan_id": "lint-plan",
            "batches": [
                {
                    "batch_id": "b1",
                    "validation": [{"name": "lint", "kind": "lint"}],
                }
            ],
        },
        step_kinds={"lint", "syntax"},
    )
    app = RecoveryApp.open("memory://")
    runner = app.runner(
        plan, workspace=GitWorkspace(lintrepo), step_runners={"lint": lint_step}
    )
    with runner.batch("b1") as session:
        (lintrepo / "stdcopy" / "extra.py").write_text("import os\n")
    outcome = session.outcome
    assert isinstance(outcome, Halted)
    failure = outcome.failure
    assert failure.component == "stdcopy/extra.py:1"
    assert failure.output_tail == "stdcopy/extra.py:1:8: F401 `os` imported but unused"
    assert failure.failure_reason == (
        "post_build_validation.lint failed: stdcopy/extra.py:1:8: F401 `os` "
        "imported but unused (1 ruff finding in the changed files)"
    )
    assert failure.changed_files == ("stdcopy/extra.py",)
