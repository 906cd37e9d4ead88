"""Bad plans through the real command line in a real git repository.

Every malformed plan must be refused by ``recovery run`` with exit code 2 and one
message naming each problem with its path, before anything is written: no
``.recovery`` folder, no change to ``.git/info/exclude``, no new ref, nothing new
in the working tree, and the plan file left byte for byte as it was.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import git, run_cli, write_plan

PLAN_NAME = "plan.json"

# A step that always passes, so that the control plan runs to completion.
PASSING = [sys.executable, "-c", "pass"]


def base_plan() -> dict[str, Any]:
    """A valid three-batch plan; each case below breaks one thing in it."""
    return {
        "plan_id": "plan-errors",
        "batches": [
            {
                "batch_id": "1",
                "validation": [{"name": "ok", "kind": "command", "run": PASSING}],
            },
            {
                "batch_id": "2",
                "component": "app/calc.py",
                "validation": [
                    {"name": "syntax_check", "kind": "syntax"},
                    {"name": "ok", "kind": "command", "run": PASSING},
                ],
            },
            {
                "batch_id": "3",
                "validation": [
                    {"name": "syntax_check", "kind": "syntax"},
                    {"name": "smoke", "kind": "smoke", "imports": ["app.calc"]},
                ],
            },
        ],
    }


Mutation = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Case:
    """One malformed plan and the problem line the CLI must print for it.

    ``body`` is what goes into the plan file: a mutation of :func:`base_plan`
    (whose return value, when not None, replaces the plan), raw text, or None
    for no file at all. ``path`` and ``message`` must appear on one problem line
    as ``<path>: ...<message>...``.
    """

    id: str
    body: Mutation | str | None
    path: str
    message: str
    extra: tuple[str, ...] = field(default=())


def third(plan: dict[str, Any]) -> dict[str, Any]:
    """The third batch of ``plan``, where most cases put their fault."""
    batch: dict[str, Any] = plan["batches"][2]
    return batch


def add_step(step: dict[str, Any]) -> Mutation:
    """A mutation that appends ``step`` to the third batch's validation."""

    def mutate(plan: dict[str, Any]) -> None:
        third(plan)["validation"].append(step)

    return mutate


def set_batch(**values: Any) -> Mutation:
    """A mutation that sets keys of the third batch."""

    def mutate(plan: dict[str, Any]) -> None:
        third(plan).update(values)

    return mutate


def drop(*keys: str) -> Mutation:
    """A mutation that removes keys from the plan (top level)."""

    def mutate(plan: dict[str, Any]) -> None:
        for key in keys:
            del plan[key]

    return mutate


def set_plan(**values: Any) -> Mutation:
    """A mutation that sets keys at the top level of the plan."""

    def mutate(plan: dict[str, Any]) -> None:
        plan.update(values)

    return mutate


def edit_step(index: int, **values: Any) -> Mutation:
    """A mutation that sets keys (None: removes them) of a third-batch step."""

    def mutate(plan: dict[str, Any]) -> None:
        step = third(plan)["validation"][index]
        for key, value in values.items():
            if value is None:
                del step[key]
            else:
                step[key] = value

    return mutate


def remove_batch_id(plan: dict[str, Any]) -> None:
    """Deletes the third batch's id."""
    del third(plan)["batch_id"]


def duplicate_batch_id(plan: dict[str, Any]) -> None:
    """Gives the third batch the first batch's id."""
    third(plan)["batch_id"] = "1"


def top_level_array(plan: dict[str, Any]) -> list[Any]:
    """The plan wrapped in an array."""
    return [plan]


def batch_not_object(plan: dict[str, Any]) -> None:
    """Replaces the third batch with a string."""
    plan["batches"][2] = "batch 3"


def step_not_object(plan: dict[str, Any]) -> None:
    """Appends a number where a step belongs."""
    third(plan)["validation"].append(42)


COMMAND = "command"

CASES = [
    Case("not-json", '{"plan_id": "x", "batches": [', "(file)", "not valid JSON"),
    Case("empty-file", "", "(file)", "not valid JSON"),
    Case("missing-file", None, "(file)", "no such file"),
    Case("top-level-array", top_level_array, "(plan)", "expected an object"),
    Case("missing-plan_id", drop("plan_id"), "plan_id", "required field missing"),
    Case("plan_id-number", set_plan(plan_id=15), "plan_id", "expected a string"),
    Case(
        "plan_id-bad-characters",
        set_plan(plan_id="a/b"),
        "plan_id",
        "'a/b' is not a valid id",
    ),
    Case("missing-batches", drop("batches"), "batches", "required field missing"),
    Case(
        "batches-object",
        set_plan(batches={"1": {}}),
        "batches",
        "expected an array, got an object",
    ),
    Case("batches-empty", set_plan(batches=[]), "batches", "at least one batch"),
    Case(
        "batch-not-object",
        batch_not_object,
        "batches[2]",
        "expected an object, got a string",
    ),
    Case(
        "missing-batch_id",
        remove_batch_id,
        "batches[2].batch_id",
        "required field missing",
    ),
    Case(
        "duplicate-batch_id",
        duplicate_batch_id,
        "batches[2].batch_id",
        "duplicate batch id '1'",
        ("first at batches[0]",),
    ),
    Case(
        "batch_id-space",
        set_batch(batch_id="a b"),
        "batches[2].batch_id",
        "'a b' is not a valid id",
    ),
    Case(
        "batch_id-dotdot",
        set_batch(batch_id="../x"),
        "batches[2].batch_id",
        "'../x' is not a valid id",
    ),
    Case(
        "batch_id-number",
        set_batch(batch_id=3),
        "batches[2].batch_id",
        "expected a string, got a number",
    ),
    Case(
        "unknown-step-kind",
        edit_step(0, kind="sintax"),
        "batches[2].validation[0].kind",
        "unknown step kind 'sintax'",
    ),
    Case(
        "step-kind-array",
        edit_step(0, kind=["syntax"]),
        "batches[2].validation[0].kind",
        "expected a string, got an array",
    ),
    Case(
        "step-missing-kind",
        edit_step(0, kind=None),
        "batches[2].validation[0].kind",
        "required field missing",
    ),
    Case(
        "step-missing-name",
        edit_step(0, name=None),
        "batches[2].validation[0].name",
        "required field missing",
    ),
    Case(
        "step-not-object",
        step_not_object,
        "batches[2].validation[2]",
        "expected an object, got a number",
    ),
    Case(
        "duplicate-step-name",
        add_step({"name": "smoke", "kind": "syntax"}),
        "batches[2].validation[2].name",
        "duplicate step name 'smoke'",
        ("first at batches[2].validation[1]",),
    ),
    Case(
        "command-without-run",
        add_step({"name": "lint", "kind": COMMAND}),
        "batches[2].validation[2]",
        "a 'command' step needs 'run'",
    ),
    Case(
        "run-empty-list",
        add_step({"name": "lint", "kind": COMMAND, "run": []}),
        "batches[2].validation[2].run",
        "the command is empty",
    ),
    Case(
        "run-empty-string",
        add_step({"name": "lint", "kind": COMMAND, "run": "   "}),
        "batches[2].validation[2].run",
        "the command is empty",
    ),
    Case(
        "run-non-string-item",
        add_step({"name": "lint", "kind": COMMAND, "run": ["ruff", 3]}),
        "batches[2].validation[2].run",
        "item 1 is a number",
    ),
    Case(
        "run-object",
        add_step({"name": "lint", "kind": COMMAND, "run": {"argv": "ruff"}}),
        "batches[2].validation[2].run",
        "expected an array of strings, got an object",
    ),
    Case(
        "run-unbalanced-quote",
        add_step({"name": "lint", "kind": COMMAND, "run": "ruff 'check"}),
        "batches[2].validation[2].run",
        "cannot split command",
    ),
    Case(
        "timeout-negative",
        add_step({"name": "t", "kind": COMMAND, "run": PASSING, "timeout_s": -5}),
        "batches[2].validation[2].timeout_s",
        "expected a positive number of seconds, got -5",
    ),
    Case(
        "timeout-zero",
        add_step({"name": "t", "kind": COMMAND, "run": PASSING, "timeout_s": 0}),
        "batches[2].validation[2].timeout_s",
        "expected a positive number of seconds, got 0",
    ),
    Case(
        "timeout-string",
        add_step({"name": "t", "kind": COMMAND, "run": PASSING, "timeout_s": "60"}),
        "batches[2].validation[2].timeout_s",
        "expected a number, got a string",
    ),
    Case(
        "timeout-boolean",
        add_step({"name": "t", "kind": COMMAND, "run": PASSING, "timeout_s": True}),
        "batches[2].validation[2].timeout_s",
        "expected a number, got a boolean",
    ),
    Case(
        "typo-knd",
        add_step({"name": "t", "knd": COMMAND, "run": PASSING}),
        "batches[2].validation[2].knd",
        "unknown key; did you mean 'kind'?",
    ),
    Case(
        "typo-timeout",
        add_step({"name": "t", "kind": COMMAND, "run": PASSING, "timeout": 30}),
        "batches[2].validation[2].timeout",
        "unknown key; did you mean 'timeout_s'?",
    ),
    Case(
        "typo-batch-comitstrategy",
        set_batch(commit_stratgy="commit"),
        "batches[2].commit_stratgy",
        "unknown key; did you mean 'commit_strategy'?",
    ),
    Case(
        "lint-fail_on-unknown",
        add_step({"name": "lint", "kind": "lint", "fail_on": "some"}),
        "batches[2].validation[2].fail_on",
        "must be one of 'new', 'any', not 'some'",
    ),
    Case(
        "action-timeout-negative",
        set_batch(actions=[{"name": "gen", "run": PASSING, "timeout_s": -1}]),
        "batches[2].actions[0].timeout_s",
        "expected a positive number of seconds",
    ),
    Case(
        "action-missing-run",
        set_batch(actions=[{"name": "gen"}]),
        "batches[2].actions[0].run",
        "required field missing",
    ),
    Case(
        "commit_strategy-unknown",
        set_batch(commit_strategy="push"),
        "batches[2].commit_strategy",
        "must be one of 'commit', 'none', not 'push'",
    ),
    Case(
        "status-unknown",
        set_batch(status="done"),
        "batches[2].status",
        "not 'done'",
    ),
    Case(
        "verified-string",
        set_batch(verified="yes"),
        "batches[2].verified",
        "expected true or false, got a string",
    ),
    Case(
        "verified-number",
        set_batch(verified=1),
        "batches[2].verified",
        "expected true or false, got a number",
    ),
    Case(
        "component-absolute",
        set_batch(component="/etc/passwd"),
        "batches[2].component",
        "'/etc/passwd' is outside the workspace",
    ),
    Case(
        "component-dotdot",
        set_batch(component="app/../../secret.py"),
        "batches[2].component",
        "is outside the workspace",
    ),
    Case(
        "surface-module-dotdot",
        add_step({"name": "surface", "kind": "surface", "modules": ["../app"]}),
        "batches[2].validation[2].modules[0]",
        "'../app' is not a module name inside the workspace",
    ),
    Case(
        "surface-module-absolute",
        add_step({"name": "surface", "kind": "surface", "modules": ["/abs"]}),
        "batches[2].validation[2].modules[0]",
        "'/abs' is not a module name inside the workspace",
    ),
    Case(
        "surface-without-modules",
        add_step({"name": "surface", "kind": "surface"}),
        "batches[2].validation[2]",
        "a 'surface' step needs 'modules'",
    ),
    Case(
        "smoke-import-dotdot",
        edit_step(1, imports=["../app"]),
        "batches[2].validation[1].imports[0]",
        "'../app' is not a module name inside the workspace",
    ),
    Case(
        "smoke-without-imports-or-run",
        edit_step(1, imports=None),
        "batches[2].validation[1]",
        "a 'smoke' step needs 'imports' or 'run'",
    ),
]


@dataclass(frozen=True)
class RepoState:
    """Everything in a repository that a refused command must leave alone."""

    status: str
    exclude: bytes | None
    refs: str
    recovery_exists: bool


def repo_state(repo: Path) -> RepoState:
    """The state of ``repo`` as far as a refused command could change it."""
    exclude = repo / ".git" / "info" / "exclude"
    return RepoState(
        status=git(repo, "status", "--porcelain", "--ignored", "--untracked-files=all"),
        exclude=exclude.read_bytes() if exclude.exists() else None,
        refs=git(repo, "for-each-ref"),
        recovery_exists=(repo / ".recovery").exists(),
    )


def write_case(plan_path: Path, body: Mutation | str | None) -> None:
    """Puts the malformed plan of a case in ``plan_path`` (or nothing)."""
    if body is None:
        return
    if isinstance(body, str):
        plan_path.write_text(body, encoding="utf-8")
        return
    plan = base_plan()
    replaced = body(plan)
    write_plan(plan_path, plan if replaced is None else replaced)


def problem_lines(stderr: str) -> list[str]:
    """The problem lines of a ``PlanError`` message (indented under its title)."""
    return [line.strip() for line in stderr.splitlines() if line.startswith("  ")]


def assert_refused_without_writes(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> str:
    """Runs ``recovery run`` in ``repo``; checks exit 2 and that nothing was
    written (store, exclude file, refs, working tree, plan file). Returns stderr."""
    plan_path = repo / PLAN_NAME
    plan_bytes = plan_path.read_bytes() if plan_path.exists() else None
    before = repo_state(repo)
    done = run_cli("run", *args, cwd=repo, env=env)
    assert done.returncode == 2, (
        f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    )
    assert "internal error" not in done.stderr
    assert not (repo / ".recovery").exists(), "a store was created"
    assert repo_state(repo) == before, "the repository changed"
    after_bytes = plan_path.read_bytes() if plan_path.exists() else None
    assert after_bytes == plan_bytes, "the plan file changed"
    return done.stderr


def test_base_plan_runs_and_writes_a_store(repo: Path) -> None:
    """The control: the unbroken plan is accepted and does write a store, so each
    refusal below is due to its one fault and the no-write checks can fail."""
    write_plan(repo / PLAN_NAME, base_plan())
    before = repo_state(repo)
    done = run_cli("run", PLAN_NAME, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert (repo / ".recovery").is_dir()
    assert repo_state(repo) != before


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_plan_is_refused_with_its_path(repo: Path, case: Case) -> None:
    """Each kind of malformed plan exits 2 with the problem and its path on one
    line, and leaves the repository, its git metadata and the plan untouched."""
    write_case(repo / PLAN_NAME, case.body)
    stderr = assert_refused_without_writes(repo, PLAN_NAME)
    assert PLAN_NAME in stderr
    lines = problem_lines(stderr)
    matching = [
        line
        for line in lines
        if line.startswith(f"{case.path}: ")
        and case.message in line
        and all(extra in line for extra in case.extra)
    ]
    assert matching, f"no line '{case.path}: ...{case.message}...' in:\n{stderr}"
    assert len(lines) == 1, f"expected exactly this one problem, got:\n{stderr}"


def several_problems_plan() -> dict[str, Any]:
    """The base plan with faults at the top level and in four different batches."""
    plan = base_plan()
    plan["plan_id"] = ["not", "a", "string"]
    plan["batches"][0]["validation"][0]["kind"] = "sintax"
    plan["batches"][1]["validation"][1]["timeout_s"] = -1
    plan["batches"][1]["commit_strategy"] = "squash"
    plan["batches"][2]["component"] = "/abs/path.py"
    plan["batches"].append(
        {
            "batch_id": "1",
            "validation": [
                {"name": "lint", "kind": "command"},
                {"name": "lint", "kind": "syntax"},
            ],
        }
    )
    return plan


def test_several_problems_are_listed_in_one_message(repo: Path) -> None:
    """A plan with faults in several batches gets one error message that lists
    every fault with its own path, and nothing is written."""
    write_plan(repo / PLAN_NAME, several_problems_plan())
    stderr = assert_refused_without_writes(repo, PLAN_NAME)
    assert stderr.count("recovery: error:") == 1, stderr
    expected = {
        "plan_id": "expected a string, got an array",
        "batches[0].validation[0].kind": "unknown step kind 'sintax'",
        "batches[1].validation[1].timeout_s": "expected a positive number",
        "batches[1].commit_strategy": "not 'squash'",
        "batches[2].component": "'/abs/path.py' is outside the workspace",
        "batches[3].batch_id": "duplicate batch id '1'",
        "batches[3].validation[0]": "a 'command' step needs 'run'",
        "batches[3].validation[1].name": "duplicate step name 'lint'",
    }
    lines = problem_lines(stderr)
    for path, message in expected.items():
        assert any(
            line.startswith(f"{path}: ") and message in line for line in lines
        ), f"{path}: {message} missing from:\n{stderr}"
    assert len(lines) == len(expected), stderr


def test_problems_are_listed_in_plan_order_once_each(repo: Path) -> None:
    """The same fault repeated in two batches is reported once per place, so the
    operator can fix every spot from one message."""
    plan = base_plan()
    for batch in plan["batches"]:
        batch["verified"] = "no"
    write_plan(repo / PLAN_NAME, plan)
    stderr = assert_refused_without_writes(repo, PLAN_NAME)
    lines = problem_lines(stderr)
    assert [line.split(":", 1)[0] for line in lines] == [
        "batches[0].verified",
        "batches[1].verified",
        "batches[2].verified",
    ], stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(("--store", "bogus://x"), None, id="unknown-scheme"),
        pytest.param(("--store", "events.sqlite3"), None, id="no-scheme"),
        pytest.param(("--store", "sqlite://rel.db"), None, id="sqlite-no-path"),
        pytest.param(("--store", "postgresql://"), None, id="postgres-no-host"),
        pytest.param((), {"RECOVERY_STORE": "bogus://x"}, id="env-unknown-scheme"),
    ],
)
def test_bad_store_url_is_refused_without_writes(
    repo: Path, args: tuple[str, ...], env: dict[str, str] | None
) -> None:
    """A valid plan with a bad store URL (flag or environment) exits 2 with a
    message about the store URL, and writes nothing at all."""
    write_plan(repo / PLAN_NAME, base_plan())
    stderr = assert_refused_without_writes(repo, PLAN_NAME, *args, env=env)
    assert "store URL" in stderr


def test_plan_refusal_is_the_same_from_another_folder(repo: Path) -> None:
    """The plan given by a path from a subfolder with --workspace is refused the
    same way, with the path of the problem, and nothing written."""
    plan = base_plan()
    third(plan)["validation"][0]["kind"] = "sintax"
    write_plan(repo / PLAN_NAME, plan)
    sub = repo / "app"
    plan_bytes = (repo / PLAN_NAME).read_bytes()
    before = repo_state(repo)
    done = run_cli("run", f"../{PLAN_NAME}", "--workspace", str(repo), cwd=sub)
    assert done.returncode == 2, done.stderr
    assert "batches[2].validation[0].kind: unknown step kind 'sintax'" in done.stderr
    assert repo_state(repo) == before
    assert (repo / PLAN_NAME).read_bytes() == plan_bytes
