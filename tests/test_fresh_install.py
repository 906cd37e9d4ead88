"""A fresh ``pip install .`` (no extras) in a new virtual environment runs the
demo and a plan with syntax and lint steps, with no other tool than git on
``PATH``: ruff comes with recovery-core, and is found without a PATH lookup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from support import GIT_IDENTITY, make_repo, write_plan

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the project installed as a user would:
    ``pip install .`` of a copy of the source tree."""
    root = tmp_path_factory.mktemp("fresh")
    source = root / "source"
    shutil.copytree(
        PROJECT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache"
        ),
    )
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    done = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(
            f"the package registry cannot serve the dependencies: {done.stderr}"
        )
    assert done.returncode == 0, done.stderr
    return env_dir


def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds git alone."""
    bare = tmp_path / "bin-git-only"
    bare.mkdir()
    real_git = shutil.which("git")
    assert real_git is not None
    (bare / "git").symlink_to(real_git)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RECOVERY_", "PYTHON", "VIRTUAL_ENV"))
    }
    return {**env, **GIT_IDENTITY, "PATH": str(bare)}


def recovery(
    fresh: Path, *args: str | os.PathLike[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(fresh / "bin" / "recovery"), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_demo_runs_from_a_fresh_install(fresh: Path, tmp_path: Path) -> None:
    done = recovery(
        fresh, "demo", "--dir", tmp_path / "demo", cwd=tmp_path, env=bare_env(tmp_path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout + done.stderr


def test_a_plan_with_syntax_and_lint_steps_runs(fresh: Path, tmp_path: Path) -> None:
    """The lint step finds the batch's own finding with the ruff installed with
    recovery-core, and a clean batch passes both steps."""
    repo = make_repo(tmp_path / "work")
    python = str(fresh / "bin" / "python")
    write = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
    checks = [{"name": "syntax", "kind": "syntax"}, {"name": "lint", "kind": "lint"}]
    plan = {
        "plan_id": "fresh",
        "batches": [
            {
                "batch_id": "clean",
                "actions": [
                    {
                        "name": "gen",
                        "run": [python, "-c", write, "app/extra.py", "X = 1\n"],
                    }
                ],
                "validation": checks,
            },
            {
                "batch_id": "finding",
                "actions": [
                    {
                        "name": "gen",
                        "run": [python, "-c", write, "app/more.py", "import os\n"],
                    }
                ],
                "validation": checks,
            },
        ],
    }
    path = write_plan(tmp_path / "plan.json", plan)
    env = bare_env(tmp_path)
    done = recovery(fresh, "run", path, cwd=repo, env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    status = recovery(fresh, "status", "--json", cwd=repo, env=env)
    assert status.returncode == 0, status.stderr
    view = json.loads(status.stdout)
    batches = {b["batch_id"]: b for b in view["batches"]}
    assert batches["clean"]["status"] == "verified"
    failure = batches["finding"]["failure"]
    assert failure["step"] == "post_build_validation.lint"
    assert "F401" in failure["error"], failure["error"]
