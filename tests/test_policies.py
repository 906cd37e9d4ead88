"""Policies per batch (issue 13, item 3): automatic retries and recoveries
through the real ``recovery`` command, escalation of a deterministic failure,
the failure fingerprint, plans with a bad policy, and a run stored before
policies existed."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from policykit.policykit_fixer import FIXED
from recovery_core import (
    DecisionView,
    Failure,
    PlanError,
    Policy,
    batch_strategies,
    failure_fingerprint,
    normalise_error,
    parse_plan,
    prevalidation_passed,
)
from recovery_core.records import failure_of, view_data, view_of
from recovery_core.run import event_digest
from support import (
    ATTEMPT_AWARE,
    BUGGY_CALC,
    cli_json,
    git,
    python_step,
    run_cli,
    unit_tests_step,
    write_file_action,
    write_plan,
)
from test_crash_safety import KILLER

KIT = Path(__file__).resolve().parent / "policykit"


def _env(**extra: str) -> dict[str, str]:
    """The environment of a ``recovery`` process that finds ``policykit-fixer``."""
    return {"PYTHONPATH": str(KIT), **extra}


def _plan(repo: Path, policy: dict[str, Any] | None, **batch: Any) -> Path:
    """One batch, by default writing the buggy ``add`` and running the unit
    tests, committed when verified; with ``policy``."""
    spec: dict[str, Any] = {
        "batch_id": "b1",
        "component": "app/calc.py",
        "actions": [write_file_action("write", "app/calc.py", BUGGY_CALC)],
        "validation": [unit_tests_step()],
        "commit_strategy": "commit",
        **batch,
    }
    if policy is not None:
        spec["policy"] = policy
    return write_plan(repo / "plan.json", {"plan_id": "pol", "batches": [spec]})


#: The stored state's keys that an event's digest does not cover.
_NOT_PAYLOAD = frozenset({"timestamp", "prev_digest", "digest", "originator_topic"})


def _events(repo: Path) -> list[dict[str, Any]]:
    """Every stored event, in order, as ``{"topic": ..., **state}``."""
    with sqlite3.connect(repo / ".recovery" / "events.sqlite3") as db:
        rows = db.execute(
            "SELECT topic, state FROM stored_events ORDER BY rowid"
        ).fetchall()
    return [
        {"topic": topic.removeprefix("recovery:"), **json.loads(state)}
        for topic, state in rows
    ]


def _log(repo: Path) -> list[dict[str, Any]]:
    """The workspace's failure log file, line by line."""
    text = (repo / ".recovery" / "logs" / "bootstrap_errors.log").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _topics(repo: Path) -> list[str]:
    return [e["topic"] for e in _events(repo)]


# -- through the real command ----------------------------------------------------


def test_two_automatic_recoveries_recover_a_batch_without_the_operator(
    repo: Path,
) -> None:
    """The batch's policy names the strategy and allows two recoveries: the
    strategy's pre-validated fix is applied by the policy's decision, the run
    completes with the fix committed, nobody is notified, and the events and
    ``status --json`` say the policy decided, by which rule."""
    plan = _plan(repo, {"strategy": "policykit-fixer", "auto_recover": 2})
    done = run_cli("run", plan, cwd=repo, env=_env())
    assert done.returncode == 0, done.stderr
    assert "decided recover for attempt 1 (auto_recover 1 of 2)" in done.stderr
    events = _events(repo)
    topics = [e["topic"] for e in events]
    assert "OperatorNotified" not in topics
    assert "OperatorDecided" not in topics
    (answered,) = [e for e in events if e["topic"] == "RecoveryAttempted"]
    assert answered["strategy"] == "policykit-fixer"
    (decided,) = [e for e in events if e["topic"] == "PolicyDecided"]
    assert (decided["batch_id"], decided["attempt"], decided["decision"]) == (
        "b1",
        1,
        "recover",
    )
    assert decided["rule"] == "auto_recover 1 of 2"
    assert "passed pre-validation" in decided["reason"]
    assert topics[-1] == "RunCompleted"
    assert git(repo, "show", "HEAD:app/calc.py") == FIXED
    status = cli_json("status", "latest", cwd=repo)
    assert status["state"] == "completed"
    assert status["decision"]["decided_by"] == "policy"
    assert status["decision"]["rule"] == "auto_recover 1 of 2"
    assert status["decision"]["operator"] == "policy"
    batch = status["batches"][0]
    assert batch["attempts"] == 2
    assert batch["policy_recovers"] == 1
    (line,) = _log(repo)
    assert line["attempt"] == 1
    assert line["decision"]["decided_by"] == "policy"
    assert line["decision"]["rule"] == "auto_recover 1 of 2"
    assert line["decision"]["decision"] == "recover"


def test_a_deterministic_failure_escalates_after_one_repeat(repo: Path) -> None:
    """auto_retry 3 and the same failure twice: one automatic retry, then the
    operator is asked (exactly two attempts, run halted), and the events, the
    console and the notification say why the policy did not decide."""
    plan = _plan(repo, {"auto_retry": 3})
    done = run_cli("run", plan, cwd=repo)
    assert done.returncode == 3, done.stderr
    events = _events(repo)
    started = [e for e in events if e["topic"] == "BatchStarted"]
    assert [e["attempt"] for e in started] == [1, 2]
    failed = [e["failure"] for e in events if e["topic"] == "StepFailed"]
    assert failed[0]["fingerprint"] == failed[1]["fingerprint"]
    (decided,) = [e for e in events if e["topic"] == "PolicyDecided"]
    assert (decided["decision"], decided["rule"]) == ("retry", "auto_retry 1 of 3")
    (escalated,) = [e for e in events if e["topic"] == "PolicyEscalated"]
    assert escalated["attempt"] == 2
    assert "failed the same way as attempt 1" in escalated["reason"]
    assert "deterministic" in escalated["reason"]
    assert "policy: not decided automatically: attempt 2 failed the same way" in (
        done.stderr
    )
    notified = [e for e in events if e["topic"] == "OperatorNotified"]
    assert [e["attempt"] for e in notified] == [2]
    status = cli_json("status", "latest", cwd=repo)
    assert status["state"] == "halted"
    assert status["awaiting_decision"]["attempt"] == 2
    assert status["batches"][0]["policy_note"] == escalated["reason"]


def test_a_flaky_failure_is_retried_automatically(repo: Path) -> None:
    """A check that fails differently on attempts 1 and 2 and passes on 3:
    with auto_retry 3 the policy retries twice and the run completes."""
    check = (
        "import os, sys; a = os.environ['RECOVERY_ATTEMPT']; "
        "sys.exit({'1': 'network unreachable', '2': 'lock held elsewhere'}.get(a))"
    )
    plan = _plan(
        repo,
        {"auto_retry": 3},
        actions=[write_file_action("write", "app/extra.py", "X = 1\n")],
        validation=[python_step("check", check)],
    )
    done = run_cli("run", plan, cwd=repo)
    assert done.returncode == 0, done.stderr
    decided = [e for e in _events(repo) if e["topic"] == "PolicyDecided"]
    assert [(e["attempt"], e["decision"], e["rule"]) for e in decided] == [
        (1, "retry", "auto_retry 1 of 3"),
        (2, "retry", "auto_retry 2 of 3"),
    ]
    assert "OperatorNotified" not in _topics(repo)


def test_a_failure_that_passes_on_the_second_attempt_is_retried(repo: Path) -> None:
    """The batch's action writes the buggy code on attempt 1 only: one
    automatic retry and the run completes with the good code committed."""
    action = {"name": "write", "run": [sys.executable, "-c", ATTEMPT_AWARE]}
    plan = _plan(repo, {"auto_retry": 1}, actions=[action])
    done = run_cli("run", plan, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert _topics(repo).count("PolicyDecided") == 1
    assert "return b + a" in git(repo, "show", "HEAD:app/calc.py")


def test_a_used_up_budget_asks_the_operator(repo: Path) -> None:
    """auto_retry 1 and a different failure each time: one automatic retry,
    then the operator is asked and told the budget is used up; the operator's
    decision then reads as a person's, not the policy's."""
    check = "import os, sys; sys.exit('failure number ' + 'x' * int(os.environ['RECOVERY_ATTEMPT']))"
    plan = _plan(
        repo,
        {"auto_retry": 1},
        actions=[write_file_action("write", "app/extra.py", "X = 1\n")],
        validation=[python_step("check", check)],
    )
    done = run_cli("run", plan, cwd=repo)
    assert done.returncode == 3, done.stderr
    events = _events(repo)
    assert [e["attempt"] for e in events if e["topic"] == "BatchStarted"] == [1, 2]
    (escalated,) = [e for e in events if e["topic"] == "PolicyEscalated"]
    assert "automatic retries allowed (auto_retry) are used up" in escalated["reason"]
    assert "used up" in done.stderr
    decided = run_cli("decide", "latest", "b1", "skip", cwd=repo)
    assert decided.returncode == 0, decided.stderr
    status = cli_json("status", "latest", cwd=repo)
    assert status["decision"]["decided_by"] == "operator"
    assert status["decision"]["operator"] == "test-operator"
    assert status["decision"]["rule"] is None
    # The failure log tells the policy's decision from the operator's.
    first, second = _log(repo)
    assert (first["decision"]["decided_by"], first["decision"]["rule"]) == (
        "policy",
        "auto_retry 1 of 1",
    )
    assert second["decision"] == {
        "decision": "skip",
        "decided_by": "operator",
        "operator": "test-operator",
        "rule": None,
        "reason": "",
    }
    log_file = repo / ".recovery" / "logs" / "bootstrap_errors.log"
    original = log_file.read_bytes()
    log_file.unlink()
    assert run_cli("log", "--rebuild", cwd=repo).returncode == 0
    assert log_file.read_bytes() == original


def test_a_proposal_that_failed_prevalidation_is_never_recovered_automatically(
    repo: Path,
) -> None:
    """auto_recover 2, but the proposal failed pre-validation: the operator is
    asked and told why. An operator's recover is still carried out, by the
    strategy that proposed (the batch's, not the run's), on ``resume``."""
    plan = _plan(repo, {"strategy": "policykit-fixer", "auto_recover": 2})
    env = _env(POLICYKIT_PREVALIDATION="failed: unit_tests failed in the sandbox")
    done = run_cli("run", plan, cwd=repo, env=env)
    assert done.returncode == 3, done.stderr
    topics = _topics(repo)
    assert "PolicyDecided" not in topics
    (escalated,) = [e for e in _events(repo) if e["topic"] == "PolicyEscalated"]
    assert "did not pass pre-validation" in escalated["reason"]
    assert "failed: unit_tests failed in the sandbox" in escalated["reason"]
    decided = run_cli("decide", "latest", "b1", "recover", cwd=repo, env=env)
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", "latest", cwd=repo, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert git(repo, "show", "HEAD:app/calc.py") == FIXED


def test_a_bad_policy_is_refused_with_its_path(repo: Path) -> None:
    """A negative budget, an unknown key and an unknown strategy: ``check`` and
    ``run`` exit 2 naming each path, and ``run`` writes nothing."""
    plan = write_plan(
        repo / "plan.json",
        {
            "plan_id": "pol",
            "batches": [
                {"batch_id": "a", "policy": {"auto_retry": -1, "auto_retyr": 2}},
                {"batch_id": "b", "policy": {"auto_recover": 11}},
            ],
        },
    )
    for command in ("check", "run"):
        done = run_cli(command, plan, cwd=repo)
        assert done.returncode == 2, done.stderr
        assert "batches[0].policy.auto_retry: expected 0 to 10, got -1" in done.stderr
        assert "batches[0].policy.auto_retyr: unknown key in a policy" in done.stderr
        assert "batches[1].policy.auto_recover: expected 0 to 10, got 11" in (
            done.stderr
        )
    _plan(repo, {"strategy": "no-such-strategy", "auto_retry": 1})
    for command in ("check", "run"):
        done = run_cli(command, plan, cwd=repo)
        assert done.returncode == 2, done.stderr
        assert "batches[0].policy.strategy: unknown strategy 'no-such-strategy'" in (
            done.stderr
        )
    assert not (repo / ".recovery").exists()


def test_a_plan_with_a_known_policy_strategy_checks(repo: Path) -> None:
    """A policy naming a strategy an entry point provides passes ``check``."""
    plan = _plan(repo, {"strategy": "policykit-fixer", "auto_recover": 1})
    done = run_cli("check", plan, cwd=repo, env=_env())
    assert done.returncode == 0, done.stderr


# -- the plan model ------------------------------------------------------------


def test_policy_defaults_and_no_policy() -> None:
    """No policy is None (the operator is always asked); a policy's budgets
    default to 0, and only one with a budget decides by itself."""
    plan = parse_plan(
        {
            "plan_id": "p",
            "batches": [
                {"batch_id": "a"},
                {"batch_id": "b", "policy": {"strategy": "noop"}},
                {"batch_id": "c", "policy": {"auto_retry": 2}},
            ],
        }
    )
    a, b, c = plan.batches
    assert a.policy is None
    assert b.policy == Policy(strategy="noop")  # type: ignore[arg-type]
    assert b.policy is not None and not b.policy.automatic
    assert c.policy is not None and c.policy.automatic and c.policy.auto_recover == 0


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            {"auto_retry": "2"},
            "policy.auto_retry: expected a whole number, got a string",
        ),
        ({"auto_recover": True}, "policy.auto_recover: expected a whole number"),
        ({"strategy": ""}, "policy.strategy: expected a strategy name"),
        ({"strategy": 3}, "policy.strategy: expected a string, got a number"),
        ({"retry": 1}, "policy.retry: unknown key in a policy; known: strategy"),
        ([], "policy: expected an object, got an array"),
    ],
)
def test_bad_policy_values_are_named(policy: object, message: str) -> None:
    """Each bad value of a policy is one problem with its path."""
    with pytest.raises(PlanError) as info:
        parse_plan({"plan_id": "p", "batches": [{"batch_id": "a", "policy": policy}]})
    assert any(
        p == f"batches[0].{message}" or message in p for p in info.value.problems
    )


# -- the fingerprint -------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("AssertionError: 3 != 5", "AssertionError: 4 != 5"),
        (
            "cannot open /tmp/pytest-of-a/pytest-3/x/data.json",
            "cannot open /tmp/pytest-of-a/pytest-9/y/data.json",
        ),
        ("object at 0x7f3a2b10 failed", "object at 0x55d1e2c0 failed"),
        ("commit 1a2b3c4d5e6f not found", "commit 9f8e7d6c5b4a not found"),
        (
            "run 123e4567-e89b-12d3-a456-426614174000 lost",
            "run 00000000-1111-2222-3333-444444444444 lost",
        ),
        ("timed out after 30s", "timed out after 12.5 seconds"),
        ("took 120 ms", "took 7ms"),
        ("app/calc.py:12:4: E999 SyntaxError", "app/calc.py:30:1: E999 SyntaxError"),
        ('File "x.py", line 3, in f', 'File "x.py", line 41, in f'),
        ("\n\n  boom\ndetails 1", "boom\nother details"),
    ],
)
def test_what_varies_between_attempts_is_normalised_away(
    first: str, second: str
) -> None:
    """Two errors that differ only in numbers, temporary paths, ids, hex,
    durations, positions or their later lines normalise the same."""
    assert normalise_error(first) == normalise_error(second)
    step = "post_build_validation.unit_tests"
    assert failure_fingerprint(step, "app/calc.py", first) == failure_fingerprint(
        step, "app/calc.py", second
    )


def test_normalised_placeholders() -> None:
    """The placeholders say what was replaced."""
    assert normalise_error("timed out after 12.5s at /tmp/x/y:3:4") == (
        "timed out after <duration> at <tmp>"
    )
    assert normalise_error("app/x.py:12:4: bad") == "app/x.py:<line>: bad"
    assert normalise_error("0xdeadbeef and 3 more") == "<hex> and <n> more"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("network unreachable", "lock held elsewhere"),
        ("NameError: name 'x' is not defined", "NameError: name 'y' is not defined"),
    ],
)
def test_different_failures_have_different_fingerprints(
    first: str, second: str
) -> None:
    """Other words are another failure."""
    step = "post_build_validation.check"
    assert failure_fingerprint(step, "", first) != failure_fingerprint(step, "", second)


def test_step_and_component_are_part_of_the_fingerprint() -> None:
    """The same error in another step or component is another failure; the
    component's line number is not."""
    error = "SyntaxError: invalid syntax"
    base = failure_fingerprint("build.write", "app/a.py:3", error)
    assert base == failure_fingerprint("build.write", "app/a.py:9", error)
    assert base != failure_fingerprint("post_build_validation.write", "app/a.py", error)
    assert base != failure_fingerprint("build.write", "app/b.py:3", error)


def test_the_failure_record_carries_its_fingerprint() -> None:
    """``Failure.fingerprint`` is derived like ``summary``, and a stored record
    without it (written before it existed) gets the same value."""
    failure = Failure(
        batch_id="b",
        attempt=1,
        step="unit_tests",
        phase="post_build_validation",
        kind="command",
        component="app/calc.py",
        error="AssertionError: -1 != 5\nmore",
    )
    assert failure.fingerprint == failure_fingerprint(
        failure.step_id, "app/calc.py", failure.error
    )
    data = failure.as_data()
    assert data["fingerprint"] == failure.fingerprint
    del data["fingerprint"], data["summary"]
    assert failure_of(data) == failure


def test_prevalidation_rule() -> None:
    """A proposal passed pre-validation when its recorded text starts with
    ``passed``; anything else did not."""
    assert prevalidation_passed("passed: 3 steps in a sandbox worktree")
    assert prevalidation_passed("  PASSED")
    for text in (None, "", "failed: unit_tests", "not passed", "skipped: no agent"):
        assert not prevalidation_passed(text)


# -- a run stored before policies ----------------------------------------------


def test_a_view_stored_before_policies_loads() -> None:
    """A snapshot of the run's state without the new fields (and a decision
    without who decided) loads with their defaults: an operator's decision."""
    from recovery_core.records import BatchView, RunView

    view = RunView(
        run_id="r",
        plan_id="p",
        plan_digest="d",
        plan_path=None,
        workspace="/w",
        store="memory://",
        state="halted",
        batches=(BatchView(batch_id="b"),),
        awaiting=("b", 1),
        decision=DecisionView("b", 1, "retry", "alice", ""),
        claim=None,
        version=3,
        head_digest="h",
        started_at="2026-01-01T00:00:00+00:00",
    )
    data = view_data(view)
    for new in ("previous_fingerprint", "policy_retries", "policy_recovers"):
        del data["batches"][0][new]
    del data["batches"][0]["policy_note"]
    del data["decision"]["decided_by"], data["decision"]["rule"]
    loaded = view_of(data)
    assert loaded == view
    assert loaded.decision is not None and loaded.decision.who == "alice"


def test_a_run_stored_before_fingerprints_still_loads_and_goes_on(
    repo: Path,
) -> None:
    """A halted run whose StepFailed was stored without ``fingerprint`` or
    ``summary`` (as before they existed; the chain resealed as it was then)
    shows the fingerprint made from the error, and is decided and resumed as
    before (both check the hash chain first)."""
    plan = _plan(
        repo,
        None,
        actions=[{"name": "write", "run": [sys.executable, "-c", ATTEMPT_AWARE]}],
    )
    assert run_cli("run", plan, cwd=repo).returncode == 3
    assert not {"PolicyDecided", "PolicyEscalated"} & set(_topics(repo))  # no policy
    db = repo / ".recovery" / "events.sqlite3"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT originator_id, originator_version, topic, state "
            "FROM stored_events WHERE topic LIKE 'recovery:%' "
            "AND topic != 'recovery:RunSnapshot' ORDER BY originator_version"
        ).fetchall()
        prev, expected = "", ""
        for run_hex, version, topic, raw in rows:
            state = json.loads(raw)
            if topic == "recovery:StepFailed":
                expected = state["failure"].pop("fingerprint")
                del state["failure"]["summary"]
            if not expected:  # before the StepFailed: as stored
                prev = state["digest"]
                continue
            when = datetime.fromisoformat(state["timestamp"]["_data_"])
            payload = {k: v for k, v in state.items() if k not in _NOT_PAYLOAD}
            state["prev_digest"] = prev
            state["digest"] = prev = event_digest(
                topic, UUID(hex=run_hex), version, when, payload, prev
            )
            conn.execute(
                "UPDATE stored_events SET state = ? "
                "WHERE originator_id = ? AND originator_version = ?",
                (json.dumps(state, separators=(",", ":")).encode(), run_hex, version),
            )
    assert expected
    status = cli_json("status", "latest", cwd=repo)
    assert status["batches"][0]["failure"]["fingerprint"] == expected
    assert status["decision"] is None
    decided = run_cli("decide", "latest", "b1", "retry", cwd=repo)  # chain checked
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", "latest", cwd=repo)
    assert resumed.returncode == 0, resumed.stderr


# -- crash safety ----------------------------------------------------------------


@pytest.mark.parametrize(
    "killed_after", ["recovery:RecoveryAttempted", "recovery:PolicyDecided"]
)
def test_a_policy_decision_survives_a_killed_runner_and_is_carried_out_once(
    repo: Path, killed_after: str
) -> None:
    """The runner is killed right after the strategy's answer is saved (the
    policy not consulted yet) or right after the policy's decision is saved
    (not carried out yet): ``resume`` consults the policy or carries its
    decision out, exactly once, and the run completes without the operator."""
    action = {"name": "write", "run": [sys.executable, "-c", ATTEMPT_AWARE]}
    plan = _plan(repo, {"auto_retry": 2}, actions=[action])
    kit = repo.parent / "killer"
    kit.mkdir()
    (kit / "sitecustomize.py").write_text(KILLER)
    killed = run_cli(
        "run",
        plan,
        cwd=repo,
        env={"PYTHONPATH": str(kit), "KILL_AFTER_EVENT": killed_after},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_cli("resume", "latest", cwd=repo)
    assert resumed.returncode == 0, resumed.stderr
    events = _events(repo)
    decided = [e for e in events if e["topic"] == "PolicyDecided"]
    assert [(e["attempt"], e["rule"]) for e in decided] == [(1, "auto_retry 1 of 2")]
    started = [e["attempt"] for e in events if e["topic"] == "BatchStarted"]
    assert started == [1, 2]
    topics = [e["topic"] for e in events]
    assert "OperatorNotified" not in topics
    assert "RunCompleted" in topics
    assert "return b + a" in git(repo, "show", "HEAD:app/calc.py")


def test_batch_strategies_are_looked_up_by_name() -> None:
    """Each strategy a policy names is made once, by name; an unknown one is
    a PlanError naming the batch's ``policy.strategy``."""
    plan = parse_plan(
        {
            "plan_id": "p",
            "batches": [
                {"batch_id": "a", "policy": {"strategy": "noop"}},
                {"batch_id": "b", "policy": {"strategy": "noop", "auto_retry": 1}},
                {"batch_id": "c"},
            ],
        }
    )
    found = batch_strategies(plan)
    assert list(found) == ["noop"]
    assert found["noop"].name == "noop"
    bad = parse_plan(
        {"plan_id": "p", "batches": [{"batch_id": "a", "policy": {"strategy": "nah"}}]}
    )
    with pytest.raises(PlanError) as info:
        batch_strategies(bad)
    (problem,) = info.value.problems
    assert problem.startswith("batches[0].policy.strategy: unknown strategy 'nah'")


def test_a_policy_with_only_a_strategy_changes_who_answers_not_who_decides(
    repo: Path,
) -> None:
    """A policy naming only a strategy: that strategy answers the batch's
    failure instead of the run's, and the operator is asked as without a
    policy (no policy event, no policy line in the notification)."""
    plan = _plan(repo, {"strategy": "policykit-fixer"})
    done = run_cli("run", plan, cwd=repo, env=_env())
    assert done.returncode == 3, done.stderr
    events = _events(repo)
    (answered,) = [e for e in events if e["topic"] == "RecoveryAttempted"]
    assert answered["strategy"] == "policykit-fixer"
    assert not {"PolicyDecided", "PolicyEscalated"} & {e["topic"] for e in events}
    assert "strategy policykit-fixer:" in done.stderr
    assert "policy:" not in done.stderr
    status = cli_json("status", "latest", cwd=repo)
    assert status["strategy"] == "policykit-fixer"
    assert "recovery decide" in " ".join(status["next_commands"])
    assert any(c.endswith("recover") for c in status["next_commands"])
