"""``recovery history``: a run's timeline, and time travel (``--at``) checked
against the state the run really had, recorded live after each of its events."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters.git import GitWorkspace
from recovery_adapters.words import recovery_command, run_json
from recovery_core import Completed, Halted, RecoveryApp, UnknownPoint, load_plan
from recovery_core.run import Run
from recovery_core.store import default_store_url, parse_store_url
from support import (
    ATTEMPT_AWARE,
    GOOD_EXTRA,
    git,
    python_step,
    run_cli,
    unit_tests_step,
    write_file_action,
    write_plan,
)


class LiveStates(RecoveryApp):
    """The application, saving a run's events one at a time (each in its own
    transaction) and recording, after each, the run's state as ``recovery
    status --json`` prints it then, read back from the store: the live state
    at every position of the run."""

    live: dict[int, dict[str, Any]]

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = []
        for obj in objs:
            if not isinstance(obj, Run):
                recordings += super().save(obj, **kwargs)
                continue
            for event in obj.collect_events():
                recordings += super().save(event, **kwargs)
                view = self.view(event.originator_id)
                assert view.version == event.originator_version
                self.live[view.version] = run_json(view, command=recovery_command())
        return recordings


def plan_file(path: Path) -> Path:
    """Two batches: 1.1 passes; 1.2 fails its tests on attempt 1 and passes
    on attempt 2."""
    return write_plan(
        path,
        {
            "plan_id": "history-plan",
            "batches": [
                {
                    "batch_id": "1.1",
                    "commit_strategy": "commit",
                    "actions": [
                        write_file_action("generate", "app/extra.py", GOOD_EXTRA)
                    ],
                    "validation": [{"name": "syntax_check", "kind": "syntax"}],
                },
                {
                    "batch_id": "1.2",
                    "commit_strategy": "commit",
                    "component": "app/calc.py",
                    "actions": [python_step("generate", ATTEMPT_AWARE)],
                    "validation": [unit_tests_step()],
                },
            ],
        },
    )


@pytest.fixture
def recorded(repo: Path, tmp_path: Path) -> tuple[str, dict[int, dict[str, Any]]]:
    """A run through a failure, an operator's retry and completion, in the
    workspace's default store, with its live state at every event."""
    plan = load_plan(plan_file(tmp_path / "plan.json"))
    (repo / ".recovery").mkdir()
    app = LiveStates(parse_store_url(default_store_url(repo)))
    app.live = {}
    halted = app.runner(plan, workspace=GitWorkspace(repo)).run()
    assert isinstance(halted, Halted)
    app.decide(halted.run_id, "1.2", "retry", operator="ada", reason="told the agent")
    runner = app.runner(plan, workspace=GitWorkspace(repo), run_id=halted.run_id)
    assert isinstance(runner.run(), Completed)
    return halted.run_id, app.live


def at(repo: Path, run_id: str, point: str) -> dict[str, Any]:
    """``recovery history RUN --at POINT --json``, run for real."""
    done = run_cli("history", run_id, "--at", point, "--json", cwd=repo)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_state_at_every_position_is_the_live_state_then(
    repo: Path, recorded: tuple[str, dict[int, dict[str, Any]]]
) -> None:
    """For every event of a run through a failure, a decision and completion,
    ``history --at POSITION --json`` prints exactly what ``status --json``
    printed right after that event was saved."""
    run_id, live = recorded
    events = json.loads(run_cli("history", run_id, "--json", cwd=repo).stdout)
    assert sorted(live) == list(range(1, len(events) + 1))
    names = {e["event"] for e in events}
    assert {"StepFailed", "OperatorDecided", "BatchCommitted", "RunCompleted"} <= names
    states = {s["state"] for s in live.values()}
    assert states == {"running", "halted", "completed"}
    for position, state in live.items():
        assert at(repo, run_id, str(position)) == state, f"position {position}"
    now = json.loads(run_cli("status", run_id, "--json", cwd=repo).stdout)
    assert now == live[len(events)]


def test_state_at_a_time_is_the_live_state_after_every_event_until_then(
    repo: Path, recorded: tuple[str, dict[int, dict[str, Any]]]
) -> None:
    """``--at TIME`` gives the state after every event recorded at or before
    it: at an event's own time, its state; a microsecond before, the state
    before it; a time without a zone is UTC, and another zone's spelling of
    the same moment gives the same state."""
    run_id, live = recorded
    events = json.loads(run_cli("history", run_id, "--json", cwd=repo).stdout)
    times = [datetime.fromisoformat(e["time"]) for e in events]
    failed = next(e["position"] for e in events if e["event"] == "BatchMarkedFailed")
    decided = next(e["position"] for e in events if e["event"] == "OperatorDecided")
    for position in (2, failed, decided, len(events)):
        moment = times[position - 1]
        assert position == len(events) or times[position] > moment
        assert times[position - 2] < moment
        naive = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
        two_hours = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
        before = (moment - timedelta(microseconds=1)).isoformat()
        assert at(repo, run_id, naive) == live[position]
        assert at(repo, run_id, two_hours) == live[position]
        assert at(repo, run_id, before) == live[position - 1]
    assert live[failed]["state"] == "halted"
    assert live[decided]["decision"]["operator"] == "ada"
    later = (times[-1] + timedelta(days=1)).isoformat()
    assert at(repo, run_id, later) == live[len(events)]


def test_timeline_names_every_event_with_its_summary(
    repo: Path, recorded: tuple[str, dict[int, dict[str, Any]]]
) -> None:
    """The timeline lists every event in order, linked by digest, with its
    fields (JSON) and a summary saying what happened (text): the failed step
    and its error, who decided what and why, the commit made."""
    run_id, live = recorded
    events = json.loads(run_cli("history", run_id, "--json", cwd=repo).stdout)
    assert [e["position"] for e in events] == list(range(1, len(live) + 1))
    assert [e["digest"] for e in events] == [
        live[p]["head_digest"] for p in sorted(live)
    ]
    assert events[0]["event"] == "RunStarted"
    assert events[0]["plan_id"] == "history-plan"
    for before, after in itertools.pairwise(events):
        assert after["prev_digest"] == before["digest"]
    failed = next(e for e in events if e["event"] == "StepFailed")
    assert (failed["batch_id"], failed["attempt"]) == ("1.2", 1)
    assert failed["failure"]["step"] == "unit_tests"
    commits = [e["commit"] for e in events if e["event"] == "BatchCommitted"]
    assert commits == git(repo, "log", "-2", "--format=%H").split()[::-1]

    done = run_cli("history", run_id, cwd=repo)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"run {run_id}"
    assert lines[1].split() == [
        "POS",
        "TIME",
        "(UTC)",
        "EVENT",
        "BATCH",
        "ATTEMPT",
        "WHAT",
    ]
    rows = {int(line.split()[0]): line for line in lines[2:]}
    assert sorted(rows) == [e["position"] for e in events]
    step_failed = rows[failed["position"]]
    assert "StepFailed" in step_failed
    assert "post_build_validation.unit_tests failed in" in step_failed
    decided = next(e for e in events if e["event"] == "OperatorDecided")
    assert rows[decided["position"]].endswith("retry by ada: told the agent")
    committed = next(e for e in events if e["event"] == "BatchCommitted")
    assert rows[committed["position"]].endswith(f"commit {committed['commit'][:10]}")
    assert rows[len(events)].split()[2:] == [
        "RunCompleted",
        "2",
        "verified,",
        "0",
        "skipped,",
        "3",
        "attempt(s)",
    ]


def test_text_state_as_of_a_point_is_status_headed_by_the_point(
    repo: Path, recorded: tuple[str, dict[int, dict[str, Any]]]
) -> None:
    """``--at`` without ``--json`` prints ``status`` as of that point, headed
    by the event it is after."""
    run_id, live = recorded
    failed = next(p for p, s in sorted(live.items()) if s["state"] == "halted")
    done = run_cli("history", run_id, "--at", str(failed), cwd=repo)
    assert done.returncode == 0, done.stderr
    head, _, status = done.stdout.partition("\n\n")
    assert head == (
        f"as of {failed}: after event {failed} of {len(live)} (BatchMarkedFailed at "
        f"{head.split(' at ')[1].removesuffix(' UTC)')} UTC)"
    )
    assert status.startswith(f"run {run_id}\n  plan history-plan   state halted")
    assert "awaiting a decision:" in status
    assert any(line.split()[:2] == ["1.2", "failed"] for line in status.splitlines())


@pytest.mark.parametrize(
    ("point", "said"),
    [
        ("999", "--at 999: position 999 is past the end of the run"),
        ("0", "--at 0: position 0: positions start at 1"),
        ("2001-01-01T00:00:00", "--at 2001-01-01T00:00:00: time 2001-01-01T00:00:00"),
        ("last tuesday", "--at 'last tuesday': give a position"),
    ],
)
def test_a_point_the_history_does_not_reach_is_bad_input(
    repo: Path, recorded: tuple[str, dict[int, dict[str, Any]]], point: str, said: str
) -> None:
    """A position past the end or below 1, a time before the run started, or
    a value that is neither: exit 2, naming the value, in text and JSON."""
    run_id, _ = recorded
    done = run_cli("history", run_id, "--at", point, cwd=repo)
    assert done.returncode == 2
    assert said in done.stderr
    assert not done.stdout
    as_json = run_cli("history", run_id, "--at", point, "--json", cwd=repo)
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)
    assert error["exit_code"] == 2
    assert said in error["error"]


def test_view_at_is_the_library_side_of_time_travel(
    repo: Path, recorded: tuple[str, dict[int, dict[str, Any]]]
) -> None:
    """``RecoveryApp.view_at`` gives the same states in process, and refuses
    with ``UnknownPoint`` (exit code 2) a point the history does not reach;
    ``RecoveryApp.timeline`` has an entry per event."""
    run_id, live = recorded
    app = RecoveryApp.open(default_store_url(repo))
    entries = app.timeline(run_id)
    assert [e.position for e in entries] == sorted(live)
    for entry in entries:
        view = app.view_at(run_id, position=entry.position)
        assert run_json(view, command=recovery_command()) == live[entry.position]
        by_time = app.view_at(run_id, time=entry.time.replace(tzinfo=None))
        assert by_time.version >= entry.position
    with pytest.raises(UnknownPoint, match="past the end") as past:
        app.view_at(run_id, position=len(entries) + 1)
    assert past.value.exit_code == 2
    with pytest.raises(UnknownPoint, match="before the run started"):
        app.view_at(run_id, time=entries[0].time - timedelta(seconds=1))
    with pytest.raises(TypeError):
        app.view_at(run_id)


def test_every_event_of_a_run_has_a_summary_in_the_timeline() -> None:
    """A new event type without a line of its own would show an empty
    summary in ``recovery history``."""
    from recovery_core.audit import run_topics
    from recovery_core.timeline import _SUMMARIES

    names = {topic.removeprefix("recovery:") for topic in run_topics()}
    assert names - _SUMMARIES.keys() == set()
