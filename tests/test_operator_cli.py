"""The operator's command line (issue 12, item 5), through the real ``recovery``
command: ``recovery runs``, the JSON error object of a failing ``--json``
command, the message where no run was recorded yet, the run column and the
ellipsis of ``recovery log``, and hints that work as printed when ``recovery``
is not on ``PATH``."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from recovery_adapters.cli.output import clip
from recovery_adapters.stores import open_store
from recovery_adapters.words import no_runs_text, recovery_command
from support import (
    GIT_IDENTITY,
    cli_json,
    python_step,
    run_cli,
    write_file_action,
    write_plan,
)

#: The real command, as support.run_cli runs it.
CLI = [sys.executable, "-m", "recovery_adapters.cli"]
FAILS = "import sys; sys.exit('the check failed')"
#: An error whose first line is longer than the log's error column.
LONG_ERROR = "import sys; sys.exit('the check failed: ' + 'word ' * 30 + 'END')"


def _plan(repo: Path, name: str, plan_id: str, check: str, *, batches: int = 1) -> Path:
    """A plan of ``batches`` batches, each writing a file and running ``check``."""
    return write_plan(
        repo / name,
        {
            "plan_id": plan_id,
            "batches": [
                {
                    "batch_id": f"b{i}",
                    "actions": [
                        write_file_action("write", f"app/m{i}.py", f"X = {i}\n")
                    ],
                    "validation": [python_step("check", check)],
                }
                for i in range(1, batches + 1)
            ],
        },
    )


def _wait_for_claim(repo: Path, runner: subprocess.Popen[str]) -> dict[str, Any]:
    """The run's status once ``runner`` (``run --wait``) halted and holds it."""
    deadline = time.monotonic() + 120
    while True:
        assert runner.poll() is None, runner.communicate()
        assert time.monotonic() < deadline, "the runner never halted"
        done = run_cli("status", "--json", cwd=repo)
        if done.returncode == 0:
            status: dict[str, Any] = json.loads(done.stdout)
            if status["state"] == "halted" and status["runner"] is not None:
                return status
        time.sleep(0.1)


def _error_object(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON error a failing ``--json`` command printed, checked against the
    process: its exit code, and the message also on stderr."""
    error: dict[str, Any] = json.loads(done.stdout)
    assert set(error) == {"error", "exit_code", "problems"}, error
    assert error["exit_code"] == done.returncode != 0
    assert isinstance(error["problems"], list)
    first = error["error"].splitlines()[0]
    assert first in done.stderr, done.stderr
    return error


def test_runs_lists_every_run_newest_first_with_its_halt_and_runner(
    repo: Path,
) -> None:
    """A completed run, then a halted one whose runner waits with ``--wait``:
    ``runs`` lists the halted one first with the batch awaiting a decision and
    the runner holding it, as a table and as JSON; once the run is aborted, its
    runner is gone from the list."""
    _plan(repo, "done.json", "plan-done", "pass", batches=2)
    assert run_cli("run", "done.json", cwd=repo).returncode == 0
    _plan(repo, "halt.json", "plan-halt", FAILS)
    runner = subprocess.Popen(
        [*CLI, "run", "halt.json", "--wait", "--poll", "0.1"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        status = _wait_for_claim(repo, runner)
        listed = cli_json("runs", cwd=repo)
        halted, completed = listed
        assert set(halted) == {
            "run_id",
            "state",
            "plan_id",
            "workspace",
            "store",
            "started_at",
            "version",
            "awaiting_decision",
            "decision",
            "runner",
        }
        assert halted["run_id"] == status["run_id"]
        assert (halted["state"], halted["plan_id"]) == ("halted", "plan-halt")
        assert halted["workspace"] == str(repo.resolve())
        assert halted["awaiting_decision"] == {"batch_id": "b1", "attempt": 1}
        assert halted["decision"] is None
        assert halted["runner"]["pid"] == runner.pid
        assert halted["started_at"] > completed["started_at"]
        assert (completed["state"], completed["plan_id"]) == (
            "completed",
            "plan-done",
        )
        assert completed["awaiting_decision"] is None
        assert completed["runner"] is None

        table = run_cli("runs", cwd=repo)
        assert table.returncode == 0, table.stderr
        header, first, second = table.stdout.splitlines()
        assert header.split() == [
            "RUN",
            "STATE",
            "PLAN",
            "WORKSPACE",
            "STARTED",
            "(UTC)",
            "HALTED",
            "AT",
            "RUNNER",
        ]
        assert first.startswith(halted["run_id"][:8] + "  ")
        assert "  halted  " in first and "  plan-halt  " in first
        assert "  b1 attempt 1  " in first
        held = halted["runner"]
        assert first.endswith(
            f"{held['runner_id']} (process {runner.pid} on {held['host']})"
        )
        assert str(repo.resolve()) in first
        assert halted["started_at"][:19] in first
        assert second.startswith(completed["run_id"][:8] + "  ")
        assert "  completed  " in second and "plan-done" in second
        # The short id is a name every command accepts.
        short = cli_json("status", halted["run_id"][:8], cwd=repo)
        assert short["run_id"] == halted["run_id"]

        # A second runner of the held run fails: with --json, the error object.
        second_runner = run_cli("run", "halt.json", "--json", cwd=repo)
        assert second_runner.returncode == 5
        conflict = _error_object(second_runner)
        assert f"process {runner.pid}" in conflict["error"]
        assert conflict["problems"] == []

        decided = run_cli("decide", "latest", "b1", "abort", cwd=repo)
        assert decided.returncode == 4, decided.stderr
        runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 4
    aborted, _ = cli_json("runs", cwd=repo)
    assert (aborted["state"], aborted["runner"]) == ("aborted", None)
    assert aborted["decision"]["decision"] == "abort"
    assert aborted["awaiting_decision"] is None


def test_a_failing_json_command_prints_the_error_object(
    repo: Path, tmp_path: Path
) -> None:
    """``--json`` and a failure: one JSON object on stdout with the message, the
    process's exit code and the plan's problems; the message on stderr too."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_cli("status", "--json", cwd=elsewhere)
    assert done.returncode == 2
    error = _error_object(done)
    assert error["error"].startswith(f"no runs yet in {elsewhere}")
    assert error["problems"] == []
    assert "recovery: error: no runs yet" in done.stderr

    bad = write_plan(
        repo / "bad.json",
        {
            "plan_id": "bad",
            "batches": [
                {"batch_id": "1", "validation": [{"name": "s", "kind": "sintax"}]},
                {"batch_id": "1", "validation": []},
            ],
        },
    )
    done = run_cli("run", bad, "--json", cwd=repo)
    assert done.returncode == 2
    error = _error_object(done)
    assert len(error["problems"]) == 2
    assert any("batches[0].validation[0].kind" in p for p in error["problems"])
    assert any("duplicate" in p for p in error["problems"])
    for problem in error["problems"]:
        assert problem in error["error"] and problem in done.stderr
    assert not (repo / ".recovery").exists()

    # A plan that cannot run here: `check --json` says so in its own object,
    # which carries the error object's keys too.
    _plan(repo, "missing.json", "missing", "pass")
    plan = json.loads((repo / "missing.json").read_text())
    plan["batches"][0]["validation"][0]["run"] = ["no-such-program-here"]
    write_plan(repo / "missing.json", plan)
    done = run_cli("check", "missing.json", "--json", cwd=repo)
    assert done.returncode == 2
    checked = json.loads(done.stdout)
    assert checked["can_run"] is False
    assert checked["exit_code"] == 2
    assert checked["problems"] and checked["problems"][0] in checked["error"]
    done = run_cli("run", "missing.json", "--json", cwd=repo)
    assert done.returncode == 2
    assert _error_object(done)["problems"] == checked["problems"]

    # A usage error with --json: argparse's message, as the error object.
    done = run_cli("decide", "latest", "--json", cwd=repo)
    assert done.returncode == 2
    error = _error_object(done)
    assert "required" in error["error"]
    assert "usage: recovery decide" in done.stderr
    # Without --json, stdout stays empty.
    done = run_cli("status", cwd=elsewhere)
    assert (done.returncode, done.stdout) == (2, "")


def test_where_no_run_was_recorded_the_message_says_how_to_start_one(
    repo: Path, tmp_path: Path
) -> None:
    """``status``, ``log`` and ``runs`` in a workspace where nothing ran exit 2
    naming the folder and the command that starts a run; that command, as
    printed (the plan named), starts one. An empty store and a missing
    SQLite file given with ``--store`` say the same, with that ``--store``."""
    for command in ("status", "log", "runs"):
        done = run_cli(command, cwd=repo)
        assert done.returncode == 2, done.stderr
        assert f"recovery: error: no runs yet in {repo}" in done.stderr
        assert "run PLAN`" in done.stderr
        assert not (repo / ".recovery").exists()
    printed = re.search(r"`([^`]+ run PLAN)`", done.stderr)
    assert printed is not None, done.stderr
    _plan(repo, "plan.json", "first", "pass")
    start = printed[1].replace("PLAN", "plan.json")
    started = subprocess.run(
        shlex.split(start), cwd=repo, capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr
    assert cli_json("status", cwd=repo)["state"] == "completed"

    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    assert not open_store(empty).has_runs()  # a store with its tables, no run
    ran = open_store(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    assert ran.has_runs()
    done = run_cli("runs", "--store", empty, "--json", cwd=repo)
    assert done.returncode == 2
    expected = no_runs_text(f"sqlite:///{tmp_path / 'empty.sqlite3'}", empty)
    assert _error_object(done)["error"] == expected
    assert expected.endswith(f"run PLAN --store {empty}`")
    missing = f"sqlite:///{tmp_path / 'missing.sqlite3'}"
    done = run_cli("status", "--store", missing, cwd=repo)
    assert done.returncode == 2
    assert f"no runs yet in {tmp_path / 'missing.sqlite3'} (no store there)" in (
        done.stderr
    )
    assert f"run PLAN --store {missing}`" in done.stderr
    assert not (tmp_path / "missing.sqlite3").exists()


def test_log_shows_the_run_of_each_row_and_cut_values_end_in_an_ellipsis(
    repo: Path,
) -> None:
    """Two runs that failed in one workspace: ``log --all`` has a row for each,
    with its short run id; an error longer than its column ends in "…"."""
    _plan(repo, "plan.json", "long", LONG_ERROR)
    assert run_cli("run", "plan.json", cwd=repo).returncode == 3
    assert run_cli("decide", "latest", "b1", "abort", cwd=repo).returncode == 4
    assert run_cli("run", "plan.json", cwd=repo).returncode == 3
    first, second = cli_json("runs", cwd=repo)[::-1]
    done = run_cli("log", "--all", cwd=repo)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split()[:4] == ["TIME", "(UTC)", "RUN", "BATCH"]
    assert len(rows) == 2
    entries = cli_json("log", "--all", cwd=repo)
    for row, run, entry in zip(rows, (first, second), entries, strict=True):
        assert row.split()[1] == run["run_id"][:8] == entry["run_id"][:8]
        error = row[header.index("ERROR") :]
        assert len(entry["error"].splitlines()[0]) > 60
        assert len(error) == 60 and error.endswith("…")
        assert entry["error"].startswith(error[:-1])
    only_latest = run_cli("log", cwd=repo).stdout.splitlines()
    assert len(only_latest) == 2 and second["run_id"][:8] in only_latest[1]
    # Cut by width or to the first line: either way it ends in an ellipsis.
    assert clip("x" * 80, 60) == "x" * 59 + "…"
    assert clip("first line\nsecond line", 60) == "first line…"
    assert clip("x" * 60 + "\nmore", 60) == "x" * 59 + "…"
    assert clip("fits", 60) == "fits"


def _narrow_env(tmp_path: Path) -> dict[str, str]:
    """The environment with ``PATH`` holding git's folder and /usr/bin only, so
    that ``recovery`` is not on it (the virtual environment not activated)."""
    real_git = shutil.which("git")
    assert real_git is not None
    path = os.pathsep.join([str(Path(real_git).parent), "/usr/bin"])
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RECOVERY_", "VIRTUAL_ENV"))
    }
    env = {**env, **GIT_IDENTITY, "PATH": path}
    env["RECOVERY_OPERATOR"] = "test-operator"
    if shutil.which("recovery", path=path) is not None:
        pytest.skip(f"a `recovery` is installed in {path}")
    return env


def _script() -> Path:
    return Path(sys.executable).parent / "recovery"


def _as_printed(
    command: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Runs a printed command line as a user pastes it into a shell."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _printed(text: str, start: str, cut: str | None = None) -> str:
    """The one command line of ``text`` that starts with ``start`` (after its
    indent), up to ``cut`` (a comment after it) when given."""
    (line,) = [
        line.strip().partition(cut)[0].strip() if cut else line.strip()
        for line in text.splitlines()
        if line.strip().startswith(start) and (cut is None or cut in line)
    ]
    return line


def test_the_demo_hint_names_the_environments_recovery_off_path(
    tmp_path: Path,
) -> None:
    """With ``recovery`` not on ``PATH``, the demo's closing hint names the
    script of the environment it runs in, which exists and runs as printed."""
    env = _narrow_env(tmp_path)
    folder = tmp_path / "demo"
    done = subprocess.run(
        [*CLI, "demo", "--dir", folder],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    hint = last.partition("Look around: ")[2]
    assert hint, last
    words = shlex.split(hint)
    named = Path(words[words.index("&&") + 1])
    assert named == _script()
    assert named.is_file() and os.access(named, os.X_OK)
    assert f"`{shlex.quote(str(named))} decide " in done.stdout
    looked = _as_printed(hint, tmp_path, env)
    assert looked.returncode == 0, looked.stderr
    assert "state completed" in looked.stdout
    assert "RUN" in looked.stdout and "ERROR" in looked.stdout


def test_halt_and_decide_hints_work_as_printed_off_path(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``recovery`` not on ``PATH``, the halt's decide command, the
    ``decide``'s resume command and the no-runs hint name the environment's
    script, and each runs as printed; with it on ``PATH``, they say
    ``recovery``."""
    env = _narrow_env(tmp_path)
    script = shlex.quote(str(_script()))
    nothing = subprocess.run(
        [*CLI, "status"], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert f"`{script} run PLAN`" in nothing.stderr
    _plan(repo, "plan.json", "off-path", FAILS, batches=2)
    halted = subprocess.run(
        [*CLI, "run", "plan.json"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert halted.returncode == 3, halted.stderr
    show, restore = (
        _printed(halted.stderr, f"{script} {name} ") for name in ("show", "restore")
    )
    assert show.endswith(" b1 --attempt 1") and restore.endswith(" b1 --attempt 1")
    shown = _as_printed(show, repo, env)
    assert shown.returncode == 0, shown.stderr
    assert "+X = 1" in shown.stdout
    restored = _as_printed(restore, repo, env)
    assert restored.returncode == 0, restored.stderr
    assert (repo / "app" / "m1.py").read_text() == "X = 1\n"
    skip = _printed(restored.stdout, f"{script} decide ", " # the run goes on")
    decided = _as_printed(skip, repo, env)
    assert decided.returncode == 0, decided.stderr
    resume = decided.stdout.splitlines()[-1].partition("carry it out with: ")[2]
    assert resume.startswith(f"{script} resume "), decided.stdout
    assert _as_printed(resume, repo, env).returncode == 3  # b2 fails as well
    status = _as_printed(f"{script} status --json", repo, env)
    assert json.loads(status.stdout)["next_commands"][0].startswith(f"{script} decide ")

    monkeypatch.setenv("PATH", str(_script().parent))
    assert recovery_command() == "recovery"
    monkeypatch.setenv("PATH", env["PATH"])
    assert recovery_command() == script


def test_halt_hints_work_as_printed_from_outside_the_workspace(
    repo: Path, tmp_path: Path
) -> None:
    """A run started with ``--workspace`` from another folder prints hints
    that work from that folder: the halt's ``show``, ``restore`` and
    ``decide`` commands and ``decide``'s resume command name the workspace's
    store, and each runs as printed there."""
    env = _narrow_env(tmp_path)
    script = shlex.quote(str(_script()))
    _plan(repo, "plan.json", "outside", FAILS)
    here = tmp_path
    halted = _as_printed(
        f"{script} run {shlex.quote(str(repo / 'plan.json'))} "
        f"--workspace {shlex.quote(str(repo))}",
        here,
        env,
    )
    assert halted.returncode == 3, halted.stderr
    store = f"--store {shlex.quote('sqlite:///' + str(repo.resolve() / '.recovery' / 'events.sqlite3'))}"
    show = _printed(halted.stderr, f"{script} show ")
    assert show.startswith(f"{script} show {store} "), show
    shown = _as_printed(show, here, env)
    assert shown.returncode == 0, shown.stderr
    assert "+X = 1" in shown.stdout
    restored = _as_printed(_printed(halted.stderr, f"{script} restore "), here, env)
    assert restored.returncode == 0, restored.stderr
    assert (repo / "app" / "m1.py").read_text() == "X = 1\n"
    skip = _printed(restored.stdout, f"{script} decide {store} ", " # the run goes on")
    decided = _as_printed(skip, here, env)
    assert decided.returncode == 0, decided.stderr
    resume = decided.stdout.splitlines()[-1].partition("carry it out with: ")[2]
    assert resume.startswith(f"{script} resume {store} "), decided.stdout
    resumed = _as_printed(resume, here, env)
    assert resumed.returncode == 0, resumed.stderr
    status = _as_printed(f"{script} status {store} --json", here, env)
    assert json.loads(status.stdout)["state"] == "completed"
