"""``recovery check PLAN``: everything ``run`` would refuse, plus what would
stop the plan before a single step could judge anything, through the real
command line; nothing is written. ``run`` refuses the same, before its first
event."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters.preflight import Preflight, preflight
from recovery_core import PlanCannotRun, PlanError
from recovery_core.plan import parse_plan
from support import git, make_repo, run_cli, write_plan


def tree_state(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (``.git/`` included, less the index's own
    timestamps) by path, with its bytes: what "nothing written" compares."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "index":
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "work")


def good_plan() -> dict[str, Any]:
    return {
        "plan_id": "good",
        "batches": [
            {
                "batch_id": "b1",
                "actions": [{"name": "gen", "run": [sys.executable, "-c", "pass"]}],
                "validation": [
                    {"name": "syntax", "kind": "syntax"},
                    {"name": "lint", "kind": "lint"},
                    {"name": "surface", "kind": "surface", "modules": ["app.calc"]},
                    {"name": "smoke", "kind": "smoke", "imports": ["json", "app"]},
                    {"name": "tests", "kind": "command", "run": "git --version"},
                ],
            },
            {
                # A module that a batch makes, named as its component.
                "batch_id": "b2",
                "component": "app/extra.py",
                "validation": [
                    {"name": "smoke", "kind": "smoke", "imports": ["app.extra"]}
                ],
            },
        ],
    }


def check(repo: Path, plan: dict[str, Any], *extra: str) -> tuple[int, str, str]:
    path = write_plan(repo.parent / "plan.json", plan)
    before = tree_state(repo)
    done = run_cli("check", path, "--workspace", repo, *extra, cwd=repo.parent)
    assert tree_state(repo) == before, "check wrote into the workspace"
    assert not (repo / ".recovery").exists()
    assert not (repo.parent / ".recovery").exists()
    return done.returncode, done.stdout, done.stderr


def test_a_good_plan_can_run(repo: Path) -> None:
    code, out, err = check(repo, good_plan())
    assert code == 0, err
    assert out == "plan " + str(repo.parent / "plan.json") + (
        " can run: 2 batch(es), 7 action(s) and step(s) checked\n"
    )
    code, out, _ = check(repo, good_plan(), "--json")
    assert code == 0
    assert json.loads(out) == {
        "plan": str(repo.parent / "plan.json"),
        "can_run": True,
        "problems": [],
        "notes": [],
    }


def test_a_missing_program_is_named_with_its_path(repo: Path) -> None:
    plan = good_plan()
    plan["batches"][0]["actions"][0]["run"] = ["pytst", "-q"]
    plan["batches"][0]["validation"][4]["run"] = ["/nonexistent/bin/tool"]
    code, out, err = check(repo, plan)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"recovery: error: plan {repo.parent / 'plan.json'} cannot run here:",
        "  batches[0].actions[0].run[0]: program 'pytst' not found on PATH",
        "  batches[0].validation[4].run[0]: program '/nonexistent/bin/tool' not found",
    ]


def test_a_missing_module_is_named_with_its_path(repo: Path) -> None:
    plan = good_plan()
    plan["batches"][0]["validation"][2]["modules"] = ["ap.calc"]
    plan["batches"][0]["validation"][3]["imports"] = ["json", "nosuchmodule.x"]
    code, _out, err = check(repo, plan)
    assert code == 2
    lines = err.splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == [
        "batches[0].validation[2].modules[0]",
        "batches[0].validation[3].imports[1]",
    ]
    assert (
        "no module 'ap.calc' in the workspace (no ap/calc.py or ap/calc/" in (lines[0])
    )
    assert "nor its package 'ap'" in lines[0]
    assert "no module 'nosuchmodule.x' importable" in lines[1]


def test_what_a_batch_may_make_is_a_note(repo: Path) -> None:
    """A module that does not exist yet in a package that does, and a program
    by a path in the workspace, may be made by a batch: the plan can run, and
    check names them as notes."""
    plan = good_plan()
    plan["batches"][0]["validation"][2]["modules"] = ["app.clac"]
    plan["batches"][0]["validation"][4]["run"] = ["./scripts/test.sh"]
    code, out, err = check(repo, plan)
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "note: batches[0].validation[2].modules[0]: module 'app.clac' does not "
        "exist yet; a batch up to this step must make it",
        "note: batches[0].validation[4].run[0]: program './scripts/test.sh' does "
        "not exist yet; a batch before this step must make it",
    ]
    code, out, _ = check(repo, plan, "--json")
    assert code == 0
    assert len(json.loads(out)["notes"]) == 2


def test_a_lint_configuration_ruff_cannot_read(repo: Path) -> None:
    (repo / "ruff.toml").write_text('[lint]\nselect = ["NOPE123"]\n')
    code, _out, err = check(repo, good_plan())
    assert code == 2
    lines = err.splitlines()[1:]
    assert len(lines) == 1
    assert lines[0].startswith(
        "  batches[0].validation[1]: ruff cannot read the workspace's configuration:"
    )
    assert "NOPE123" in lines[0]


def test_a_bad_plan_is_refused_with_every_problem(repo: Path) -> None:
    plan = good_plan()
    plan["batches"][0]["validation"][0]["kind"] = "sintax"
    plan["batches"][1]["batch_id"] = "b1"
    code, _out, err = check(repo, plan)
    assert code == 2
    assert "invalid plan" in err
    assert "batches[0].validation[0].kind: unknown step kind 'sintax'" in err
    assert "batches[1].batch_id: duplicate batch id 'b1' (first at batches[0])" in err


def test_what_run_would_refuse_in_the_workspace(repo: Path) -> None:
    plan = good_plan()
    plan["batches"][0]["commit_strategy"] = "commit"
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "--detach", head)
    code, _out, err = check(repo, plan)
    assert code == 2
    assert "workspace: " in err and "detached HEAD" in err


def test_run_refuses_the_same_before_its_first_event(repo: Path) -> None:
    """``run`` makes the same checks before it writes anything: no store, no
    info/exclude line, the plan file untouched."""
    plan = good_plan()
    plan["batches"][0]["actions"][0]["run"] = ["pytst", "-q"]
    path = write_plan(repo.parent / "plan.json", plan)
    text = path.read_text()
    before = tree_state(repo)
    done = run_cli("run", path, "--workspace", repo, cwd=repo.parent)
    assert done.returncode == 2, done.stderr
    assert "batches[0].actions[0].run[0]: program 'pytst' not found on PATH" in (
        done.stderr
    )
    assert tree_state(repo) == before
    assert not (repo / ".recovery").exists()
    assert path.read_text() == text


def test_a_host_makes_the_same_checks(repo: Path) -> None:
    """A host application makes the checks with ``preflight`` and refuses
    with :class:`PlanCannotRun`, a :class:`PlanError` with exit code 2."""
    plan = good_plan()
    plan["batches"][0]["actions"][0]["run"] = ["pytst"]
    found = preflight(parse_plan(plan, source="plan.json"), repo)
    problem = "batches[0].actions[0].run[0]: program 'pytst' not found on PATH"
    assert found == Preflight(problems=(problem,))
    error = PlanCannotRun("plan.json", found.problems)
    assert isinstance(error, PlanError)
    assert error.exit_code == 2
    assert error.problems == (problem,)
    assert str(error) == f"plan plan.json cannot run here:\n  {problem}"
    assert preflight(parse_plan(good_plan()), repo) == Preflight()
