"""The plan model: loading into frozen values, writing status back without losing
the user's keys, atomic writes, the plan digest, and the plan error type."""

from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery_adapters.projections import plan_text, write_plan_status
from recovery_core import RecoveryError
from recovery_core.errors import PlanError
from recovery_core.plan import (
    STATUS_KEYS,
    Action,
    Batch,
    BatchStatusFields,
    ExecutionPlan,
    Step,
    load_plan,
    parse_plan,
    plan_digest,
)


def rich_plan() -> dict[str, Any]:
    """A valid plan with unknown keys at every level (plan, batch, step, action),
    including nested values of every JSON type."""
    return {
        "plan_id": "batch_15",
        "generator": {"tool": "bootstrap", "version": [1, 2, 3], "dry": False},
        "notes": None,
        "batches": [
            {
                "batch_id": "15.14",
                "description": "Refactor the architect agent",
                "component": "app/agents/architect_agent.py",
                "owner": "team-a",
                "weights": [0.5, 1, -2, 1e20],
                "actions": [
                    {
                        "name": "generate",
                        "run": ["python", "tools/generate.py", "15.14"],
                        "timeout_s": 30,
                        "agent": {"model": "x", "temperature": 0.2},
                    }
                ],
                "validation": [
                    {"name": "syntax_check", "kind": "syntax", "hint": "fast"},
                    {
                        "name": "lint",
                        "kind": "command",
                        "run": "ruff check 'app dir' --select E",
                        "owner": {"team": "qa", "tags": ["lint", "ruff"]},
                    },
                    {"name": "surface", "kind": "surface", "modules": ["app"]},
                    {
                        "name": "unit_tests",
                        "kind": "command",
                        "run": ["python", "-m", "pytest", "-q"],
                        "timeout_s": 900,
                    },
                    {
                        "name": "smoke",
                        "kind": "smoke",
                        "imports": ["app.agents.architect_agent"],
                    },
                ],
                "expected_surface_changes": ["app.x.removed_fn"],
                "commit_strategy": "commit",
                "verified": False,
                "status": "pending",
            },
            {
                "batch_id": "15.15",
                "validation": [{"name": "syntax_check", "kind": "syntax"}],
                "unicode": "é ✓ 日本",
                "status": "pending",
                "verified": False,
                "failure_reason": None,
            },
            {
                "batch_id": "15.16",
                "actions": [{"name": "gen", "run": "python gen.py", "x": 1}],
                "status": "pending",
            },
        ],
    }


def write_json(path: Path, value: Any) -> Path:
    """Writes ``value`` as indented JSON to ``path``."""
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    return path


def without_status(raw: Any) -> Any:
    """``raw`` with the status keys of every batch removed."""
    stripped = copy.deepcopy(raw)
    for batch in stripped["batches"]:
        for key in STATUS_KEYS:
            batch.pop(key, None)
    return stripped


FAILED = BatchStatusFields(status="failed", verified=False, failure_reason="boom")
VERIFIED = BatchStatusFields(status="verified", verified=True, failure_reason=None)


# -- loading -------------------------------------------------------------------


def test_good_plan_loads_into_typed_values(tmp_path: Path) -> None:
    """A good plan becomes an ExecutionPlan of Batch, Action and Step values with
    tuples for the lists, the defaults filled in, the raw JSON and its digest."""
    raw = rich_plan()
    path = write_json(tmp_path / "plan.json", raw)
    plan = load_plan(path)
    assert isinstance(plan, ExecutionPlan)
    assert plan.plan_id == "batch_15"
    assert plan.batch_ids == ("15.14", "15.15", "15.16")
    assert plan.source == os.fspath(path)
    assert plan.raw == raw
    assert plan.digest == plan_digest(raw)
    first = plan.batch("15.14")
    assert isinstance(first, Batch)
    assert first.component == "app/agents/architect_agent.py"
    assert first.commit_strategy == "commit"
    assert first.expected_surface_changes == ("app.x.removed_fn",)
    (action,) = first.actions
    assert isinstance(action, Action)
    assert attrs.asdict(action) == {
        "name": "generate",
        "run": ("python", "tools/generate.py", "15.14"),
        "timeout_s": 30.0,
    }
    assert isinstance(action.run, tuple)
    assert isinstance(action.timeout_s, float)
    assert all(isinstance(step, Step) for step in first.validation)
    assert [s.kind for s in first.validation] == [
        "syntax",
        "command",
        "surface",
        "command",
        "smoke",
    ]
    assert first.validation[2].modules == ("app",)
    assert first.validation[3].timeout_s == 900.0
    assert first.validation[4].imports == ("app.agents.architect_agent",)
    third = plan.batch("15.16")
    assert third.commit_strategy == "none"
    assert third.status == "pending"
    assert third.verified is False
    assert third.failure_reason is None
    assert third.validation == ()
    with pytest.raises(KeyError):
        plan.batch("nope")


@pytest.mark.parametrize(
    ("target", "attribute"),
    [
        pytest.param("plan", "plan_id", id="plan"),
        pytest.param("batch", "status", id="batch"),
        pytest.param("action", "run", id="action"),
        pytest.param("step", "kind", id="step"),
    ],
)
def test_loaded_values_are_frozen(target: str, attribute: str) -> None:
    """Setting an attribute of the plan, a batch, an action or a step raises, and
    the value stays what it was."""
    plan = parse_plan(rich_plan())
    batch = plan.batches[0]
    value: object = {
        "plan": plan,
        "batch": batch,
        "action": batch.actions[0],
        "step": batch.validation[0],
    }[target]
    old = getattr(value, attribute)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, attribute, "changed")
    assert getattr(value, attribute) == old
    assert isinstance(plan.batches, tuple)
    assert isinstance(batch.validation, tuple)


def test_string_run_is_split_with_shlex() -> None:
    """A string ``run`` becomes an argv tuple split as a POSIX shell would split
    words (quotes kept together), with no shell involved; lists are kept as is."""
    plan = parse_plan(rich_plan())
    lint = plan.batches[0].validation[1]
    assert lint.run == ("ruff", "check", "app dir", "--select", "E")
    assert plan.batches[0].validation[3].run == ("python", "-m", "pytest", "-q")
    assert plan.batches[2].actions[0].run == ("python", "gen.py")
    raw = rich_plan()
    raw["batches"][2]["actions"][0]["run"] = 'echo "a;b" $HOME | cat > out'
    plan = parse_plan(raw)
    assert plan.batches[2].actions[0].run == (
        "echo",
        "a;b",
        "$HOME",
        "|",
        "cat",
        ">",
        "out",
    )


def test_unknown_keys_are_accepted_and_kept_in_raw() -> None:
    """Keys the model does not know do not make a plan invalid, and the loaded
    plan keeps them in ``raw`` exactly."""
    raw = rich_plan()
    plan = parse_plan(raw)
    assert plan.raw["generator"] == {
        "tool": "bootstrap",
        "version": [1, 2, 3],
        "dry": False,
    }
    assert plan.raw["batches"][0]["actions"][0]["agent"] == {
        "model": "x",
        "temperature": 0.2,
    }


def test_plugin_step_kind_is_accepted_when_declared() -> None:
    """A kind that is not built in is refused by default and accepted when the
    caller passes it among the known kinds (kinds from plugins)."""
    raw = rich_plan()
    raw["batches"][1]["validation"][0]["kind"] = "typecheck"
    with pytest.raises(PlanError) as caught:
        parse_plan(raw)
    assert caught.value.problems == (
        "batches[1].validation[0].kind: unknown step kind 'typecheck' "
        "(known: command, lint, smoke, surface, syntax)",
    )
    plan = parse_plan(
        raw, step_kinds={"syntax", "typecheck", "command", "surface", "smoke"}
    )
    assert plan.batches[1].validation[0].kind == "typecheck"


def test_batch_without_actions_or_validation_is_accepted() -> None:
    """A batch with neither actions nor validation is valid (a host application
    makes it in code), with empty tuples for both."""
    raw = rich_plan()
    raw["batches"].append({"batch_id": "host-made"})
    raw["batches"].append({"batch_id": "host-made-2", "actions": [], "validation": []})
    plan = parse_plan(raw)
    for batch_id in ("host-made", "host-made-2"):
        assert plan.batch(batch_id).actions == ()
        assert plan.batch(batch_id).validation == ()


def test_parse_plan_reports_every_problem_with_its_path() -> None:
    """parse_plan collects the problems of the whole plan into one PlanError, each
    prefixed with its path, instead of stopping at the first."""
    raw = rich_plan()
    raw["batches"][0]["validation"][0]["kind"] = "sintax"
    raw["batches"][1]["verified"] = "yes"
    raw["batches"][2]["batch_id"] = "15.14"
    with pytest.raises(PlanError) as caught:
        parse_plan(raw, source="p.json")
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("batches[0].validation[0].kind: unknown step kind")
    assert problems[1].startswith("batches[1].verified: expected true or false")
    assert problems[2].startswith("batches[2].batch_id: duplicate batch id '15.14'")


def test_load_plan_missing_and_not_json(tmp_path: Path) -> None:
    """load_plan turns a missing file and text that is not JSON into PlanError
    (with the line and column of the JSON fault), never into OSError or
    JSONDecodeError."""
    missing = tmp_path / "missing.json"
    with pytest.raises(PlanError) as caught:
        load_plan(missing)
    assert caught.value.problems == ("(file): no such file",)
    assert caught.value.source == os.fspath(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "plan_id": "x",\n  oops\n}\n')
    with pytest.raises(PlanError) as caught:
        load_plan(broken)
    (problem,) = caught.value.problems
    assert problem.startswith("(file): not valid JSON")
    assert "line 3" in problem


# -- the error type --------------------------------------------------------------


def test_plan_error_is_a_recovery_error_and_a_value_error() -> None:
    """PlanError is caught by ``except RecoveryError`` and ``except ValueError``,
    exits 2, and carries its source and a tuple of problems that its message
    lists one per line."""
    error = PlanError("plan.json", ["plan_id: required field missing", "batches: x"])
    assert isinstance(error, RecoveryError)
    assert isinstance(error, ValueError)
    assert error.exit_code == 2
    assert error.source == "plan.json"
    assert error.problems == ("plan_id: required field missing", "batches: x")
    assert str(error) == (
        "invalid plan plan.json:\n  plan_id: required field missing\n  batches: x"
    )
    with pytest.raises(ValueError, match="plan_id: required field missing"):
        parse_plan({"batches": rich_plan()["batches"]})
    with pytest.raises(RecoveryError):
        parse_plan([])


# -- writing status back ---------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8")),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
PLANS = st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3).flatmap(
    lambda top: st.lists(JSON_VALUES, max_size=5).map(
        lambda batches: {**top, "batches": batches}
    )
)


@settings(max_examples=300, deadline=None)
@given(PLANS)
def test_the_plan_text_is_json_dumps_indented_exactly(raw: dict[str, Any]) -> None:
    """The plan file's text (made from cached batch texts) is byte for byte
    what ``json.dumps(raw, indent=2, ensure_ascii=False)`` gives, written once
    and again (from the cache), whatever the batches and other keys hold:
    newlines, quotes and non-ASCII text in strings, nested and empty
    containers, floats, a batch that is not an object."""
    expected = json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
    assert plan_text(raw) == expected
    assert plan_text(raw) == expected
    assert plan_text(copy.deepcopy(rich_plan())) == (
        json.dumps(rich_plan(), indent=2, ensure_ascii=False) + "\n"
    )


def test_unknown_keys_survive_write_plan_status(tmp_path: Path) -> None:
    """After writing status back, every key but the status keys is exactly as
    before at every level (plan, batch, step, action), values and types alike,
    and the new status keys hold what was written."""
    raw = rich_plan()
    path = write_json(tmp_path / "plan.json", raw)
    plan = load_plan(path)
    assert write_plan_status(path, {"15.14": FAILED, "15.16": VERIFIED}) is True
    after = json.loads(path.read_text(encoding="utf-8"))
    assert without_status(after) == without_status(raw)
    assert json.dumps(without_status(after), sort_keys=True) == json.dumps(
        without_status(raw), sort_keys=True
    )
    assert list(after) == list(raw), "the order of top-level keys changed"
    assert after["batches"][0]["weights"] == [0.5, 1, -2, 1e20]
    assert isinstance(after["batches"][0]["weights"][1], int)
    assert after["batches"][1]["unicode"] == "é ✓ 日本"
    assert after["batches"][0]["actions"][0]["agent"] == {
        "model": "x",
        "temperature": 0.2,
    }
    assert after["batches"][0]["validation"][1]["owner"] == {
        "team": "qa",
        "tags": ["lint", "ruff"],
    }
    assert plan_digest(after) == plan.digest
    reloaded = load_plan(path)
    assert reloaded.batch("15.14").status == "failed"
    assert reloaded.batch("15.14").failure_reason == "boom"
    assert reloaded.batch("15.16").verified is True


def test_write_plan_status_changes_only_the_named_batches(tmp_path: Path) -> None:
    """Only status, verified and failure_reason of the named batches change; the
    other batches are untouched, status keys included."""
    raw = rich_plan()
    raw["batches"][1]["status"] = "skipped"
    raw["batches"][1]["failure_reason"] = "left alone"
    path = write_json(tmp_path / "plan.json", raw)
    write_plan_status(path, {"15.14": FAILED, "no-such-batch": VERIFIED})
    after = json.loads(path.read_text(encoding="utf-8"))
    assert after["batches"][1] == raw["batches"][1]
    assert after["batches"][2] == raw["batches"][2]
    changed = {
        key
        for key in set(after["batches"][0]) | set(raw["batches"][0])
        if after["batches"][0].get(key, "<absent>")
        != raw["batches"][0].get(key, "<absent>")
    }
    assert changed == {"status", "failure_reason"}
    assert after["batches"][0]["status"] == "failed"
    assert after["batches"][0]["verified"] is False
    assert after["batches"][0]["failure_reason"] == "boom"
    assert len(after["batches"]) == 3


def test_write_plan_status_writes_all_three_keys(tmp_path: Path) -> None:
    """A batch that had no status keys gets all three, with JSON null for no
    failure reason."""
    path = write_json(tmp_path / "plan.json", rich_plan())
    write_plan_status(path, {"15.16": VERIFIED})
    batch = json.loads(path.read_text(encoding="utf-8"))["batches"][2]
    assert batch["status"] == "verified"
    assert batch["verified"] is True
    assert "failure_reason" in batch
    assert batch["failure_reason"] is None


def test_write_plan_status_rereads_the_file(tmp_path: Path) -> None:
    """Keys the user added to the file after it was loaded survive a status write:
    the file is read again, not rewritten from the plan in memory."""
    path = write_json(tmp_path / "plan.json", rich_plan())
    plan = load_plan(path)
    edited = json.loads(path.read_text(encoding="utf-8"))
    edited["added_later"] = {"by": "user"}
    edited["batches"][0]["description"] = "edited while running"
    edited["batches"][1]["new_batch_key"] = [1, 2]
    write_json(path, edited)
    write_plan_status(path, {"15.14": FAILED, "15.15": VERIFIED})
    after = json.loads(path.read_text(encoding="utf-8"))
    assert after["added_later"] == {"by": "user"}
    assert after["batches"][0]["description"] == "edited while running"
    assert after["batches"][1]["new_batch_key"] == [1, 2]
    assert without_status(after) == without_status(edited)
    assert plan.raw["batches"][0]["description"] == "Refactor the architect agent"


def test_write_plan_status_is_atomic_and_keeps_the_mode(tmp_path: Path) -> None:
    """The write goes through a temporary file renamed over the plan: the plan
    gets a new inode, keeps its permission bits, and no temporary file is left in
    the folder."""
    folder = tmp_path / "plans"
    folder.mkdir()
    path = write_json(folder / "plan.json", rich_plan())
    path.chmod(0o640)
    before_inode = path.stat().st_ino
    before_names = sorted(p.name for p in folder.iterdir())
    assert write_plan_status(path, {"15.14": FAILED}) is True
    assert sorted(p.name for p in folder.iterdir()) == before_names
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != before_inode, "the file was rewritten in place"
    assert (
        json.loads(path.read_text(encoding="utf-8"))["batches"][0]["status"] == "failed"
    )


def test_failed_write_leaves_the_plan_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the write fails half way (fsync raises), the plan file keeps its old
    bytes and the temporary file is removed."""
    folder = tmp_path / "plans"
    folder.mkdir()
    path = write_json(folder / "plan.json", rich_plan())
    before = path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_plan_status(path, {"15.14": FAILED})
    assert path.read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["plan.json"]


def test_write_plan_status_without_change_leaves_the_file(tmp_path: Path) -> None:
    """Writing the values the file already holds returns False and does not touch
    the file (same bytes, same inode)."""
    path = tmp_path / "plan.json"
    write_json(path, rich_plan())
    assert write_plan_status(path, {"15.14": FAILED}) is True
    content = path.read_bytes()
    inode = path.stat().st_ino
    assert write_plan_status(path, {"15.14": FAILED}) is False
    assert path.read_bytes() == content
    assert path.stat().st_ino == inode


# -- the digest ----------------------------------------------------------------


def test_plan_digest_ignores_status_keys() -> None:
    """The digest is the same however far the plan has run: changing or removing
    status, verified and failure_reason does not change it."""
    raw = rich_plan()
    digest = plan_digest(raw)
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    ran = copy.deepcopy(raw)
    for batch in ran["batches"]:
        batch.update(status="failed", verified=True, failure_reason="why")
    assert plan_digest(ran) == digest
    assert plan_digest(without_status(raw)) == digest
    assert plan_digest(raw) == digest, "plan_digest changed its argument"
    assert raw == rich_plan()


def test_plan_digest_is_canonical() -> None:
    """The order of keys in the file does not change the digest."""
    raw = rich_plan()
    reordered = dict(reversed(list(raw.items())))
    reordered["batches"] = [dict(reversed(list(b.items()))) for b in raw["batches"]]
    assert plan_digest(reordered) == plan_digest(raw)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("action-run", id="action-run"),
        pytest.param("action-added", id="action-added"),
        pytest.param("step-removed", id="step-removed"),
        pytest.param("unknown-key", id="unknown-key"),
        pytest.param("batch-order", id="batch-order"),
    ],
)
def test_plan_digest_changes_with_the_plan(change: str) -> None:
    """Any change to what the plan does (a batch's actions, its steps, the order
    of batches, even an unknown key) gives another digest."""
    raw = rich_plan()
    other = copy.deepcopy(raw)
    if change == "action-run":
        other["batches"][0]["actions"][0]["run"][-1] = "15.15"
    elif change == "action-added":
        other["batches"][1]["actions"] = [{"name": "gen", "run": "true"}]
    elif change == "step-removed":
        del other["batches"][0]["validation"][0]
    elif change == "unknown-key":
        other["batches"][0]["owner"] = "team-b"
    else:
        other["batches"].reverse()
    assert plan_digest(other) != plan_digest(raw)


def test_require_runners_names_each_step_without_a_runner() -> None:
    """A plan whose step kinds this installation cannot run is refused before a
    run records anything, naming each such step; one it can run passes."""
    plan = parse_plan(rich_plan())
    with pytest.raises(PlanError) as caught:
        plan.require_runners({"command"})
    assert any(
        p.startswith("batches[") and "has no runner in this installation" in p
        for p in caught.value.problems
    )
    plan.require_runners({"command", "lint", "smoke", "surface", "syntax"})
