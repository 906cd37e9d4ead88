"""The crash sweep (tests/crashkit) as part of the suite: the real ``recovery``
command SIGKILLed at every crossing of every point where it writes (each event
save, each git write, each file write), for every N, on plans that commit, are
retried, skipped and recovered, with a runner that waits for the decision, and
with a runner that takes over a dead runner's claim; each run is then finished
as an operator would and checked for damage. The checks themselves are proved first: each kind of
damage planted by hand in a finished case is found.

The same sweep, with its report: ``.venv/bin/python tests/crashkit``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from crashkit.driver import (
    FAULTY,
    SCENARIOS,
    USER_WORK,
    Expected,
    check_case,
    check_decisions,
    child_env,
    drive,
    expected_of,
    format_report,
    git,
    make_template,
    open_store,
    sweep,
)

#: The least each plan's sweep kills at (what it kills at today, less a
#: margin for a crossing that a change of the code adds or removes). The
#: issue asks for at least 300 in all.
FLOORS = {
    "commit": 130,
    "retry": 170,
    "skip": 170,
    "recover": 150,
    "wait": 150,
    "takeover": 105,
}


def test_the_floors_ask_for_at_least_300_points() -> None:
    assert sum(FLOORS.values()) >= 300
    assert set(FLOORS) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_kill_at_any_point_leaves_no_damage(name: str, tmp_path: Path) -> None:
    result = sweep(SCENARIOS[name], tmp_path, workers=os.cpu_count() or 2)
    report = format_report([result])
    assert not result.baseline, report
    damaged = [c for c in result.cases if c.violations]
    assert not damaged, report
    # Every crossing that was counted was reached and killed at.
    assert result.killed == result.crossings == len(result.cases), report
    assert result.killed >= FLOORS[name], report
    # The kit wrapped every kind of point it knows: event saves, git's
    # commands and its long-lived processes, file writes.
    for seam in ("insert_events", "subprocess.run", "Server.talk", "files"):
        assert seam in result.seams, result.seams


# -- the checks find planted damage --------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The commit plan, run to its end without a kill (the template of every
    planted-damage case below)."""
    root = tmp_path_factory.mktemp("planted")
    case = root / "case"
    make_template(case, SCENARIOS["commit"])
    calls, problems = drive(case, SCENARIOS["commit"], child_env(root))
    assert not problems, (calls, problems)
    yield case


@pytest.fixture
def case(finished: Path, tmp_path: Path) -> tuple[Path, Expected]:
    """A copy of the finished case (at a new path: nothing in it names its
    folder) and what it should look like."""
    copy = tmp_path / "case"
    subprocess.run(["cp", "-a", str(finished), str(copy)], check=True)
    with open_store(copy) as app:
        assert app is not None
        expected = expected_of(copy, app)
    assert check_case(copy, SCENARIOS["commit"], expected) == []
    return copy, expected


def _found(case: Path, expected: Expected) -> set[str]:
    return {
        check for check, _message in check_case(case, SCENARIOS["commit"], expected)
    }


def test_a_faulty_change_on_the_branch_is_found(case: tuple[Path, Expected]) -> None:
    folder, expected = case
    work = folder / "work"
    (work / "app" / "extra.py").write_text(f"x = 1  # {FAULTY}\n")
    git(work, "commit", "-q", "-m", "sneak", "--", "app/extra.py")
    assert "faulty change on a branch" in _found(folder, expected)


def test_a_temporary_file_left_behind_is_found(case: tuple[Path, Expected]) -> None:
    folder, expected = case
    (folder / "work" / ".recovery" / "logs" / ".failures.json.4242.tmp").write_text("{")
    (folder / "work" / ".git" / "index.lock").write_text("")
    found = _found(folder, expected)
    assert "temp file in .recovery/logs" in found
    assert "temp file in .git" in found


def test_the_users_work_changed_is_found(case: tuple[Path, Expected]) -> None:
    folder, expected = case
    (folder / "work" / "README.md").write_bytes(USER_WORK["README.md"] + b"lost\n")
    assert "user's work" in _found(folder, expected)


def test_the_users_index_out_of_step_is_found(case: tuple[Path, Expected]) -> None:
    folder, expected = case
    git(folder / "work", "rm", "-q", "--cached", "app/extra.py")
    assert "user's index" in _found(folder, expected)


def test_a_projection_out_of_step_is_found(case: tuple[Path, Expected]) -> None:
    folder, expected = case
    plan = folder / "work" / "plan.json"
    plan.write_text(plan.read_text().replace('"verified"', '"failed"', 1))
    assert "plan file" in _found(folder, expected)


def test_a_verified_batch_never_committed_is_found(
    case: tuple[Path, Expected],
) -> None:
    folder, expected = case
    work = folder / "work"
    git(work, "reset", "-q", "--soft", "HEAD~1")
    assert "commits" in _found(folder, expected)


def test_a_runner_left_holding_the_workspace_is_found(
    case: tuple[Path, Expected],
) -> None:
    """A process left running in the workspace and holding its runner lock is
    found; once it is gone, nothing is."""
    folder, expected = case
    work = folder / "work"
    hold = (
        "import fcntl, os, sys, time; "
        "fd = os.open('.git/recovery-runner', os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold], cwd=work, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        problems = check_case(folder, SCENARIOS["commit"], expected)
    finally:
        holder.kill()
        holder.wait()
    messages = [m for check, m in problems if check == "claim"]
    assert any("still running" in m for m in messages), problems
    assert any("still locked" in m for m in messages), problems
    assert check_case(folder, SCENARIOS["commit"], expected) == []


def _event(
    topic: str, batch: str, attempt: int, decision: str = ""
) -> tuple[str, object]:
    return topic, SimpleNamespace(batch_id=batch, attempt=attempt, decision=decision)


def test_a_decision_carried_out_twice_is_found() -> None:
    """A retry that started two attempts, and a skip carried out twice, are
    found; a retry carried out once after it was recorded is not."""
    once = [
        _event("BatchStarted", "b", 1),
        _event("OperatorDecided", "b", 1, "retry"),
        _event("BatchStarted", "b", 2),
    ]
    assert check_decisions(once) == []
    twice = [*once, _event("BatchStarted", "b", 3)]
    assert [m for _, m in check_decisions(twice)] == [
        "batch b attempt 3 started without a retry or recover decision"
    ]
    early = [once[0], once[2], once[1]]
    assert [m for _, m in check_decisions(early)] == [
        "retry of batch b attempt 1 carried out 1 times (0 after it was recorded)"
    ]
    skipped = [
        _event("BatchStarted", "c", 1),
        _event("OperatorDecided", "c", 1, "skip"),
        _event("BatchSkipped", "c", 1),
        _event("BatchSkipped", "c", 1),
    ]
    assert [m for _, m in check_decisions(skipped)] == [
        "skip of batch c attempt 1 carried out 2 times (2 after it was recorded)"
    ]
