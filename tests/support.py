"""Helpers for tests: git, plans and the real command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}

APP_CALC = """\
def add(a: int, b: int) -> int:
    return a + b
"""

TEST_CALC = """\
import unittest

from app import calc


class CalcTest(unittest.TestCase):
    def test_add(self) -> None:
        self.assertEqual(calc.add(2, 3), 5)
"""


GOOD_EXTRA = "def double(x: int) -> int:\n    return 2 * x\n"
BUGGY_CALC = "def add(a: int, b: int) -> int:\n    return a - b\n"
FIXED_CALC = "def add(a: int, b: int) -> int:\n    return b + a\n"

# Code for an action: the buggy add() on attempt 1, the fixed one on later
# attempts, as an agent told of its failure would.
ATTEMPT_AWARE = (
    "import os, pathlib; "
    "attempt = int(os.environ['RECOVERY_ATTEMPT']); "
    f"pathlib.Path('app/calc.py').write_text({BUGGY_CALC!r} if attempt == 1 "
    f"else {FIXED_CALC!r})"
)


def git(cwd: Path, *args: str) -> str:
    """Runs git in ``cwd`` and returns its stdout; fails the test on error."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def make_repo(root: Path) -> Path:
    """A git repository at ``root`` with a tiny app and its unittest tests."""
    (root / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "calc.py").write_text(APP_CALC)
    (root / "tests" / "__init__.py").write_text("")
    (root / "tests" / "test_calc.py").write_text(TEST_CALC)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


STDLIB = Path(sysconfig.get_path("stdlib"))


def copy_stdlib(
    root: Path,
    names: Sequence[str],
    *,
    package: str = "stdcopy",
    package_init: str = "",
    rewrite_imports: bool = False,
) -> None:
    """Copies standard-library modules into ``root/<package>/`` and their own
    unittest files (where this Python has them) into ``root/tests/``; with
    ``rewrite_imports``, the tests import the copies instead of the originals."""
    (root / package).mkdir(parents=True, exist_ok=True)
    (root / package / "__init__.py").write_text(package_init)
    (root / "tests").mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(STDLIB / f"{name}.py", root / package / f"{name}.py")
        test_file = STDLIB / "test" / f"test_{name}.py"
        if not test_file.exists():
            continue
        text = test_file.read_text()
        if rewrite_imports:
            (root / "tests" / "__init__.py").write_text("")
            text = text.replace(f"from {name} import", f"from {package}.{name} import")
            text = text.replace(f"import {name}\n", f"from {package} import {name}\n")
        (root / "tests" / f"test_{name}.py").write_text(text)


def python_step(name: str, code: str, **extra: Any) -> dict[str, Any]:
    """A command step that runs ``code`` with this interpreter."""
    return {
        "name": name,
        "kind": "command",
        "run": [sys.executable, "-c", code],
        **extra,
    }


def unit_tests_step() -> dict[str, Any]:
    """A command step running the workspace's unittest tests."""
    return {
        "name": "unit_tests",
        "kind": "command",
        "run": [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."],
        "timeout_s": 120,
    }


def write_file_action(name: str, path: str, content: str) -> dict[str, Any]:
    """An action that writes ``content`` to ``path`` in the workspace."""
    code = (
        "import pathlib,sys; p=pathlib.Path(sys.argv[1]); "
        "p.parent.mkdir(parents=True, exist_ok=True); p.write_text(sys.argv[2])"
    )
    return {"name": name, "run": [sys.executable, "-c", code, path, content]}


def write_plan(path: Path, plan: Mapping[str, Any]) -> Path:
    """Writes ``plan`` as JSON to ``path``."""
    path.write_text(json.dumps(plan, indent=2) + "\n")
    return path


def run_cli(
    *args: str | os.PathLike[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Runs the real ``recovery`` command (``python -m recovery_adapters.cli``)."""
    return subprocess.run(
        [sys.executable, "-m", "recovery_adapters.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def cli_json(*args: str | os.PathLike[str], cwd: Path) -> Any:
    """Runs a command with ``--json`` and decodes what it printed."""
    done = run_cli(*args, "--json", cwd=cwd)
    assert done.stdout, f"no output; exit {done.returncode}; stderr: {done.stderr}"
    return json.loads(done.stdout)


def waiting_runner(
    repo: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """``recovery run plan.json --wait`` (with ``args``, such as ``--store
    URL``) in the background, in a session of its own, once it halted and
    waits for a decision."""
    command = [sys.executable, "-m", "recovery_adapters.cli", "run", "plan.json"]
    runner = subprocess.Popen(
        [*command, "--wait", "--poll", "0.1", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        assert runner.poll() is None, runner.communicate()
        assert time.monotonic() < deadline, "the runner never halted"
        done = run_cli("status", "--json", *args, cwd=repo)
        if done.returncode == 0 and json.loads(done.stdout)["state"] == "halted":
            return runner
        time.sleep(0.1)
