"""The first complete path through the real command line in a real git repository:
a plan whose second batch fails, the halt, what status, the plan file and the
failure log say, and each operator decision carried out."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters.words import recovery_command
from support import (
    ATTEMPT_AWARE,
    BUGGY_CALC,
    FIXED_CALC,
    GOOD_EXTRA,
    cli_json,
    git,
    run_cli,
    unit_tests_step,
    write_file_action,
    write_plan,
)


def three_batch_plan(*, fix_on_retry: bool = False) -> dict[str, Any]:
    """Batch 1 adds a module, batch 2 breaks `add` (its unit tests fail), batch 3
    adds a document."""
    breaking: dict[str, Any]
    if fix_on_retry:
        breaking = {"name": "generate", "run": [sys.executable, "-c", ATTEMPT_AWARE]}
    else:
        breaking = write_file_action("generate", "app/calc.py", BUGGY_CALC)
    return {
        "plan_id": "plan-15",
        "owner": "bootstrap-tool",
        "batches": [
            {
                "batch_id": "15.1",
                "description": "Add double()",
                "actions": [write_file_action("generate", "app/extra.py", GOOD_EXTRA)],
                "validation": [
                    {"name": "syntax_check", "kind": "syntax"},
                    unit_tests_step(),
                    {"name": "smoke", "kind": "smoke", "imports": ["app.extra"]},
                ],
                "custom_key": {"kept": True},
            },
            {
                "batch_id": "15.2",
                "description": "Rewrite add()",
                "component": "app/calc.py",
                "actions": [breaking],
                "validation": [
                    {"name": "syntax_check", "kind": "syntax"},
                    unit_tests_step(),
                ],
            },
            {
                "batch_id": "15.3",
                "description": "Document",
                "actions": [
                    write_file_action("write_docs", "docs/calc.md", "# calc\n")
                ],
                "validation": [{"name": "syntax_check", "kind": "syntax"}],
            },
        ],
    }


def halted_run(repo: Path, *, fix_on_retry: bool = False) -> tuple[str, Any]:
    """Runs the three-batch plan to its halt; returns the run id and the status."""
    write_plan(repo / "plan.json", three_batch_plan(fix_on_retry=fix_on_retry))
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 3, done.stderr
    status = cli_json("status", cwd=repo)
    return str(status["run_id"]), status


def log_entries(repo: Path) -> list[dict[str, Any]]:
    """The failure log file, decoded line by line."""
    text = (repo / ".recovery" / "logs" / "bootstrap_errors.log").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_failure_in_second_batch_halts_with_exit_3_and_is_recorded_everywhere(
    repo: Path,
) -> None:
    """Status, the plan file and the failure log all say which batch failed, at
    which step, why and in which component."""
    _run_id, status = halted_run(repo)
    assert status["state"] == "halted"
    first, second, third = status["batches"]
    assert (first["status"], first["verified"]) == ("verified", True)
    assert (second["status"], second["verified"], second["attempts"]) == (
        "failed",
        False,
        1,
    )
    assert third["status"] == "pending"
    failure = second["failure"]
    assert failure["step"] == "post_build_validation.unit_tests"
    assert "AssertionError" in failure["error"] and "-1 != 5" in failure["error"]
    assert failure["component"].startswith("tests/test_calc.py:")
    assert failure["changed_files"] == ["app/calc.py"]
    assert status["awaiting_decision"] == {"batch_id": "15.2", "attempt": 1}

    plan = json.loads((repo / "plan.json").read_text())
    assert plan["owner"] == "bootstrap-tool"
    assert plan["batches"][0]["custom_key"] == {"kept": True}
    assert [b["status"] for b in plan["batches"]] == ["verified", "failed", "pending"]
    assert plan["batches"][1]["verified"] is False
    assert (
        "post_build_validation.unit_tests failed"
        in plan["batches"][1]["failure_reason"]
    )

    (entry,) = log_entries(repo)
    assert entry["batch_id"] == "15.2" and entry["attempt"] == 1
    assert entry["plan_id"] == "plan-15" and entry["run_id"] == status["run_id"]
    assert entry["step"] == "post_build_validation.unit_tests"
    assert entry["component"] == failure["component"]
    assert "AssertionError" in entry["error"]
    assert "Traceback" in entry["traceback"]
    assert entry["state"]["changed_files"] == ["app/calc.py"]
    assert entry["state"]["exit_code"] == 1
    assert entry["state"]["baseline"]
    assert entry["timestamp"].endswith("+00:00")


def test_skip_then_resume_completes_with_exit_0(repo: Path) -> None:
    """`decide skip` then `resume` skips the failed batch and runs the rest."""
    run_id, _ = halted_run(repo)
    decided = run_cli(
        "decide", run_id, "15.2", "skip", "--reason", "not needed", cwd=repo
    )
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", run_id, cwd=repo)
    assert resumed.returncode == 0, resumed.stderr
    status = cli_json("status", run_id, cwd=repo)
    assert status["state"] == "completed"
    assert [b["status"] for b in status["batches"]] == [
        "verified",
        "skipped",
        "verified",
    ]
    assert status["decision"]["operator"] == "test-operator"
    assert status["decision"]["reason"] == "not needed"
    plan = json.loads((repo / "plan.json").read_text())
    assert [b["status"] for b in plan["batches"]] == ["verified", "skipped", "verified"]
    assert (repo / "docs" / "calc.md").exists()


def test_retry_reruns_the_batch_as_attempt_2(repo: Path) -> None:
    """`decide retry` then `resume` runs the failed batch again as attempt 2; when
    it passes the run completes."""
    run_id, _ = halted_run(repo, fix_on_retry=True)
    assert run_cli("decide", run_id[:8], "15.2", "retry", cwd=repo).returncode == 0
    resumed = run_cli("resume", "latest", "--json", cwd=repo)
    assert resumed.returncode == 0, resumed.stderr
    status = json.loads(resumed.stdout)
    assert status["state"] == "completed"
    second = status["batches"][1]
    assert (second["status"], second["attempts"]) == ("verified", 2)
    assert (repo / "app" / "calc.py").read_text() == FIXED_CALC


def test_retry_that_fails_again_halts_as_attempt_2(repo: Path) -> None:
    """A retried batch that fails again is a new failure, attempt 2, awaiting its
    own decision; the log has both failures."""
    run_id, _ = halted_run(repo)
    assert run_cli("decide", run_id, "15.2", "retry", cwd=repo).returncode == 0
    assert run_cli("resume", run_id, cwd=repo).returncode == 3
    status = cli_json("status", run_id, cwd=repo)
    assert status["awaiting_decision"] == {"batch_id": "15.2", "attempt": 2}
    assert [(e["batch_id"], e["attempt"]) for e in log_entries(repo)] == [
        ("15.2", 1),
        ("15.2", 2),
    ]


def test_abort_ends_the_run_with_exit_4(repo: Path) -> None:
    """`decide abort` ends the run at once (exit 4); resuming it says aborted (4);
    no later batch ran."""
    run_id, _ = halted_run(repo)
    aborted = run_cli(
        "decide", run_id, "15.2", "abort", "--reason", "bad plan", cwd=repo
    )
    assert aborted.returncode == 4, aborted.stderr
    assert run_cli("resume", run_id, cwd=repo).returncode == 4
    status = cli_json("status", run_id, cwd=repo)
    assert status["state"] == "aborted"
    assert status["abort_reason"] == "bad plan"
    assert status["batches"][2]["status"] == "pending"
    assert not (repo / "docs" / "calc.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("15.1", "skip"), "no failure"),
        (("15.3", "retry"), "no failure"),
        (("nope", "skip"), "has no batch 'nope'"),
        (("15.2", "recover"), "proposed no fix"),
    ],
    ids=[
        "verified-batch",
        "pending-batch",
        "unknown-batch",
        "recover-without-proposal",
    ],
)
def test_decision_that_does_not_fit_exits_2_and_changes_nothing(
    repo: Path, args: tuple[str, str], message: str
) -> None:
    """A decision for a batch that awaits none, or one no strategy made possible,
    exits 2 with a message and records nothing."""
    run_id, before = halted_run(repo)
    done = run_cli("decide", run_id, *args, cwd=repo)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    after = cli_json("status", run_id, cwd=repo)
    assert after == before


def test_decision_on_unknown_or_finished_run_exits_2(repo: Path) -> None:
    """An unknown run id, too short a prefix, or a completed run: exit 2, nothing
    recorded."""
    run_id, _ = halted_run(repo)
    assert run_cli("decide", "ffffffff", "15.2", "skip", cwd=repo).returncode == 2
    assert run_cli("decide", run_id[:4], "15.2", "skip", cwd=repo).returncode == 2
    assert run_cli("decide", run_id, "15.2", "skip", cwd=repo).returncode == 0
    assert run_cli("resume", run_id, cwd=repo).returncode == 0
    before = cli_json("status", run_id, cwd=repo)
    late = run_cli("decide", run_id, "15.2", "retry", cwd=repo)
    assert late.returncode == 2
    assert "completed" in late.stderr
    assert cli_json("status", run_id, cwd=repo) == before


def test_second_decision_on_same_failure_exits_5(repo: Path) -> None:
    """Another decision came first: the second one exits 5 and the first stands."""
    run_id, _ = halted_run(repo)
    assert (
        run_cli(
            "decide", run_id, "15.2", "skip", "--operator", "alice", cwd=repo
        ).returncode
        == 0
    )
    second = run_cli("decide", run_id, "15.2", "retry", "--operator", "bob", cwd=repo)
    assert second.returncode == 5
    assert "alice" in second.stderr
    status = cli_json("status", run_id, cwd=repo)
    assert status["decision"]["decision"] == "skip"
    assert status["decision"]["operator"] == "alice"


def test_halt_notification_prints_commands_that_work_as_printed(repo: Path) -> None:
    """The console notification shows the failure and the exact decide commands;
    running one as printed records the decision."""
    write_plan(repo / "plan.json", three_batch_plan())
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 3
    assert "halted: batch 15.2 attempt 1 failed" in done.stderr
    assert "post_build_validation.unit_tests" in done.stderr
    # `recovery`, or this environment's script when `recovery` is not on PATH.
    command = recovery_command()
    commands = [
        line.strip()
        for line in done.stderr.splitlines()
        if line.strip().startswith(f"{command} ")
    ]
    skip = next(c for c in commands if c.endswith(" skip"))
    resume = next(c for c in commands if " resume " in c)
    for printed in (skip, resume):
        ran = subprocess.run(
            shlex.split(printed), cwd=repo, capture_output=True, text=True, check=False
        )
        assert ran.returncode == 0, ran.stderr


def test_run_again_without_decision_stays_halted(repo: Path) -> None:
    """`run` on a halted plan resumes the same run: without a decision it exits 3
    again and starts no new attempt and no new run."""
    run_id, before = halted_run(repo)
    again = run_cli("run", "plan.json", cwd=repo)
    assert again.returncode == 3
    after = cli_json("status", "latest", cwd=repo)
    assert after["run_id"] == run_id
    assert after["batches"] == before["batches"]


def test_log_rebuild_reproduces_the_log_byte_for_byte(repo: Path) -> None:
    """Deleting the failure log and running `log --rebuild` gives the same bytes."""
    run_id, _ = halted_run(repo)
    assert run_cli("decide", run_id, "15.2", "retry", cwd=repo).returncode == 0
    assert run_cli("resume", run_id, cwd=repo).returncode == 3
    log = repo / ".recovery" / "logs" / "bootstrap_errors.log"
    original = log.read_bytes()
    assert original.count(b"\n") == 2
    log.unlink()
    rebuilt = run_cli("log", "--rebuild", cwd=repo)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert log.read_bytes() == original
    listed = cli_json("log", cwd=repo)
    assert [e["attempt"] for e in listed] == [1, 2]


def test_recovery_folder_is_kept_out_of_git(repo: Path) -> None:
    """The store and the log under .recovery/ never show in git status; the
    library's writes to an untracked plan file are not part of any batch."""
    halted_run(repo)
    assert (repo / ".recovery" / "events.sqlite3").is_file()
    assert (repo / ".recovery" / ".gitignore").read_text() == "*\n"
    assert "recovery" not in (repo / ".git" / "info" / "exclude").read_text()
    porcelain = git(repo, "status", "--porcelain", "--untracked=all")
    assert ".recovery" not in porcelain
    status = cli_json("status", cwd=repo)
    assert "plan.json" not in status["batches"][1]["failure"]["changed_files"]


def test_commit_strategy_commits_only_the_batch_with_trailers(repo: Path) -> None:
    """With commit_strategy commit, a verified batch becomes one commit of its own
    files with the recovery trailers; the user's unrelated edit and the tracked
    plan file stay out of it."""
    plan = three_batch_plan()
    plan["batches"] = [plan["batches"][0]]
    plan["batches"][0]["commit_strategy"] = "commit"
    write_plan(repo / "plan.json", plan)
    git(repo, "add", "plan.json")
    git(repo, "commit", "-q", "-m", "add plan")
    (repo / "notes.txt").write_text("my own work\n")
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    files = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert files == ["app/extra.py"]
    message = git(repo, "log", "-1", "--format=%B")
    status = cli_json("status", cwd=repo)
    assert f"Recovery-Run: {status['run_id']}" in message
    assert "Recovery-Batch: 15.1" in message
    assert "Recovery-Chain: " in message
    assert (repo / "notes.txt").read_text() == "my own work\n"
    porcelain = git(repo, "status", "--porcelain")
    assert "?? notes.txt" in porcelain
    assert " M plan.json" in porcelain
    assert "app/extra.py" not in porcelain
    assert status["batches"][0]["commit"] == git(repo, "rev-parse", "HEAD").strip()


def test_demo_runs_through_failure_decision_and_completion(tmp_path: Path) -> None:
    """`recovery demo` builds its workspace, halts, decides, resumes and exits 0."""
    target = tmp_path / "demo"
    done = run_cli("demo", "--dir", target, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "halted" in done.stdout and "completed" in done.stdout
    status = cli_json("status", cwd=target)
    assert status["state"] == "completed"
    assert [b["attempts"] for b in status["batches"]] == [1, 2, 1]


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    """The demo never builds over someone's files: a non-empty --dir exits 2."""
    (tmp_path / "keep.txt").write_text("mine")
    done = run_cli("demo", "--dir", tmp_path, cwd=tmp_path)
    assert done.returncode == 2
    assert (tmp_path / "keep.txt").read_text() == "mine"
