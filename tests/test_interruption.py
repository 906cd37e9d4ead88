"""A runner stopped in the middle of a batch: by a signal it can handle (the
attempt is recorded as interrupted at once) or by SIGKILL (the next runner
records it). No event is lost and the run picks up where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support import cli_json, run_cli, write_plan

# Sleeps on the first attempt (leaving its pid behind), finishes at once later.
SLOW_FIRST = (
    "import os, pathlib, time; "
    "pathlib.Path('action.pid').write_text(str(os.getpid())); "
    "time.sleep(60) if os.environ['RECOVERY_ATTEMPT'] == '1' else None; "
    "pathlib.Path('app/done.py').write_text('DONE = True\\n')"
)


def slow_plan(repo: Path) -> None:
    """One batch whose action hangs on its first attempt."""
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "slow",
            "batches": [
                {
                    "batch_id": "only",
                    "actions": [
                        {"name": "generate", "run": [sys.executable, "-c", SLOW_FIRST]}
                    ],
                    "validation": [{"name": "syntax_check", "kind": "syntax"}],
                }
            ],
        },
    )


def start_runner(repo: Path) -> subprocess.Popen[str]:
    """Starts `recovery run plan.json` and waits until its action is running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "recovery_adapters.cli", "run", "plan.json"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (repo / "action.pid").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the action never started"
        time.sleep(0.05)
    return proc


def alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, seconds: float = 10) -> bool:
    """Waits for ``pid`` to end; returns whether it did."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def failure_of(repo: Path) -> Any:
    """The failure of the plan's only batch, from `status --json`."""
    status = cli_json("status", cwd=repo)
    return status["batches"][0]["failure"]


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_signal_records_the_attempt_as_interrupted_and_kills_the_action(
    repo: Path, sig: signal.Signals
) -> None:
    """SIGINT or SIGTERM to the runner: the action's process group is killed, the
    attempt becomes a runtime_execution.interrupted failure, exit 3."""
    slow_plan(repo)
    proc = start_runner(repo)
    action = int((repo / "action.pid").read_text())
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert wait_gone(action)
    failure = failure_of(repo)
    assert failure["step"] == "runtime_execution.interrupted"
    assert "interrupted" in failure["error"]


def test_killed_runner_is_taken_over_and_its_attempt_recorded(repo: Path) -> None:
    """After SIGKILL, the next `run` takes the run over (the holder's pid is gone),
    records the lost attempt as interrupted and halts; a retry then completes."""
    slow_plan(repo)
    proc = start_runner(repo)
    action = int((repo / "action.pid").read_text())
    proc.kill()
    proc.communicate(timeout=30)
    os.kill(action, signal.SIGKILL)
    assert wait_gone(action)
    status = cli_json("status", cwd=repo)
    assert status["state"] == "running"
    assert status["batches"][0]["status"] == "running"
    again = run_cli("run", "plan.json", cwd=repo)
    assert again.returncode == 3, again.stderr
    failure = failure_of(repo)
    assert failure["step"] == "runtime_execution.interrupted"
    assert "killed or crashed" in failure["error"]
    run_id = cli_json("status", cwd=repo)["run_id"]
    assert run_cli("decide", run_id, "only", "retry", cwd=repo).returncode == 0
    assert run_cli("resume", run_id, cwd=repo).returncode == 0
    final = cli_json("status", cwd=repo)
    assert final["state"] == "completed"
    assert final["batches"][0]["attempts"] == 2


def test_a_live_runner_is_not_taken_over(repo: Path) -> None:
    """While a runner holds the run and is alive, a second runner gets exit 5 and
    changes nothing."""
    slow_plan(repo)
    proc = start_runner(repo)
    try:
        before = cli_json("status", cwd=repo)
        second = run_cli("run", "plan.json", cwd=repo)
        assert second.returncode == 5, second.stderr
        assert "is in use by another runner" in second.stderr
        assert f"process {proc.pid}" in second.stderr
        assert cli_json("status", cwd=repo) == before
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
