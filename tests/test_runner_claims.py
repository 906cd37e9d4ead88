"""One runner per run, including while it waits for a decision.

A runner waiting with ``--wait`` keeps its claim on the run: a second ``run``
or ``resume`` exits 5 naming it, before it touches the workspace; a decision
recorded meanwhile says the waiting runner will carry it out, and it is carried
out once. A runner on another host (sharing a PostgreSQL store) is taken over
only once its heartbeat is stale."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters.git import GitWorkspace
from recovery_core import ConflictError, RecoveryApp
from recovery_core.lease import lease_id
from support import (
    cli_json,
    git,
    python_step,
    run_cli,
    waiting_runner,
    write_file_action,
    write_plan,
)

FAILS = "import sys; sys.exit('the check failed')"


def _plan(repo: Path) -> Path:
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": "claims",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [write_file_action("write", "app/one.py", "X = 1\n")],
                    "validation": [python_step("check", FAILS)],
                },
                {
                    "batch_id": "b2",
                    "actions": [write_file_action("write", "app/two.py", "Y = 2\n")],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                },
            ],
        },
    )


def _skips(app: RecoveryApp, run_id: str) -> int:
    return sum(type(e).__name__ == "BatchSkipped" for e in app.history(run_id))


def test_a_second_runner_of_a_waiting_run_exits_5_and_the_decision_is_its_own(
    repo: Path,
) -> None:
    """While ``run --wait`` waits: ``resume`` exits 5 naming the waiting runner,
    and changes nothing; ``decide`` says the waiting runner will carry the
    decision out (not "carry it out with: recovery resume"), and it does, once."""
    _plan(repo)
    runner = waiting_runner(repo)
    try:
        head = git(repo, "rev-parse", "HEAD")
        second = run_cli("resume", "latest", cwd=repo)
        assert second.returncode == 5, second.stderr
        assert f"process {runner.pid}" in second.stderr, second.stderr
        assert git(repo, "rev-parse", "HEAD") == head
        status = cli_json("status", cwd=repo)
        assert status["state"] == "halted"
        assert status["runner"]["pid"] == runner.pid  # still claimed, waiting

        decided = run_cli("decide", "latest", "b1", "skip", cwd=repo)
        assert decided.returncode == 0, decided.stderr
        assert f"(process {runner.pid} on " in decided.stdout, decided.stdout
        assert "will carry it out" in decided.stdout
        assert "recovery resume" not in decided.stdout
        _, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 0, err
    status = cli_json("status", cwd=repo)
    assert status["state"] == "completed"
    app = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    assert _skips(app, status["run_id"]) == 1


def test_a_killed_runner_its_parent_never_reaped_is_taken_over(repo: Path) -> None:
    """A waiting runner SIGKILLed whose parent (here, the test) has not reaped
    it yet is a zombie: it still has a process id, but it has ended. Its claim
    is a dead runner's, taken over by the next ``resume`` (before, it was
    taken for alive, and ``resume`` exited 5 until the parent reaped it)."""
    _plan(repo)
    runner = waiting_runner(repo)
    try:
        os.killpg(runner.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        stat = Path(f"/proc/{runner.pid}/stat")
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the runner never ended"
            time.sleep(0.05)
        assert run_cli("decide", "latest", "b1", "skip", cwd=repo).returncode == 0
        resumed = run_cli("resume", "latest", cwd=repo)
        assert resumed.returncode == 0, resumed.stderr
        assert cli_json("status", cwd=repo)["state"] == "completed"
    finally:
        runner.wait()


def test_ctrl_c_while_waiting_leaves_the_run_halted_and_free(repo: Path) -> None:
    """SIGINT to a waiting runner: it stops, the run stays halted with its
    decision open, and the claim is released, so ``resume`` (after a decision)
    goes on at once."""
    _plan(repo)
    runner = waiting_runner(repo)
    os.killpg(runner.pid, signal.SIGINT)
    runner.communicate(timeout=60)
    assert runner.returncode != 0
    status = cli_json("status", cwd=repo)
    assert status["state"] == "halted"
    assert status["runner"] is None
    assert run_cli("decide", "latest", "b1", "skip", cwd=repo).returncode == 0
    done = run_cli("resume", "latest", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert cli_json("status", cwd=repo)["state"] == "completed"


class _OtherHost:
    """A runner host elsewhere: its processes cannot be seen from here."""

    host = "other-host.example"
    pid = 4242

    def alive(self, host: str, pid: int) -> bool:
        return True  # another host's runner is never known to be gone from here

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _other_runner(url: str, run_id: str, clone: Path, stale_after_s: float) -> Any:
    app = RecoveryApp.open(url)
    return app.runner(
        app.recorded_plan(run_id),
        workspace=GitWorkspace(clone),
        run_id=run_id,
        host=_OtherHost(),
        stale_after_s=stale_after_s,
        projections=(),
    )


def test_another_hosts_runner_takes_over_only_once_the_heartbeat_is_stale(
    repo: Path, tmp_path: Path, postgres_url: str
) -> None:
    """Two hosts share a PostgreSQL store. While the runner on the first waits
    (its heartbeat every 0.2 s), the second is refused with ConflictError
    naming it, however long it waits; once the first is killed, the second
    takes the run over after the stale timeout and carries out the decision."""
    _plan(repo)
    env = {"RECOVERY_HEARTBEAT_S": "0.2"}
    runner = waiting_runner(repo, "--store", postgres_url, env=env)
    clone = tmp_path / "elsewhere"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    try:
        run_id = cli_json("status", "--store", postgres_url, cwd=repo)["run_id"]
        time.sleep(2.5)  # longer than the stale timeout below: beats keep it
        other = _other_runner(postgres_url, run_id, clone, stale_after_s=2.0)
        with pytest.raises(ConflictError, match=f"process {runner.pid} on "):
            other.run()
        app = RecoveryApp.open(postgres_url)
        holder = app.view(run_id).claim
        assert holder is not None and holder.pid == runner.pid
        seen = app.last_seen(run_id, holder.runner_id)
        assert seen is not None and time.time() - seen < 2.0
        assert app.get_run(run_id) is not None
        assert lease_id(run_id, holder.runner_id) != app.view(run_id).run_id
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    app.decide(run_id, "b1", "skip", operator="test-operator")
    time.sleep(2.5)  # no heartbeat for longer than the stale timeout
    outcome = _other_runner(postgres_url, run_id, clone, stale_after_s=2.0).run()
    assert type(outcome).__name__ == "Completed", outcome
    view = app.view(run_id)
    assert view.state == "completed"
    assert _skips(app, run_id) == 1
    claims = [e for e in app.history(run_id) if type(e).__name__ == "RunnerClaimed"]
    assert claims[-1].host == "other-host.example"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["RECOVERY_HEARTBEAT_S", "RECOVERY_STALE_AFTER_S"])
def test_a_bad_timing_setting_is_refused_before_anything_is_written(
    repo: Path, name: str
) -> None:
    _plan(repo)
    done = run_cli("run", "plan.json", cwd=repo, env={name: "soon"})
    assert done.returncode == 2, done.stderr
    assert f"{name}='soon': a number above 0 is needed" in done.stderr
    assert not (repo / ".recovery").exists()
