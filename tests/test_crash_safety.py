"""Crash safety through the real ``recovery`` command: a store whose events do
not verify is not acted on, and a runner killed after recording an outcome
leaves its effects to the next one (issue 10)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recovery_adapters.projections import write_log_lines
from support import git, python_step, run_cli, write_file_action, write_plan

# Put first on the child's PYTHONPATH: SIGKILLs the ``recovery`` process right
# after the save that records the event KILL_AFTER_EVENT names, right after our
# own git write of a ref whose name holds KILL_AFTER_REF, or right before the
# rename that replaces the file KILL_BEFORE_RENAME_TO names, from outside the
# library, as a test tool would.
KILLER = """
import os, signal

def _kill():
    os.kill(os.getpid(), signal.SIGKILL)

_topic = os.environ.get("KILL_AFTER_EVENT")
if _topic:
    from recovery_core.application import RecoveryApp
    _save = RecoveryApp.save

    def save(self, *objs, **kwargs):
        topics = [type(e).TOPIC for o in objs for e in getattr(o, "pending_events", ())]
        done = _save(self, *objs, **kwargs)
        if _topic in topics:
            _kill()
        return done

    RecoveryApp.save = save

_ref = os.environ.get("KILL_AFTER_REF")
if _ref:
    from recovery_adapters.git.refs import Refs
    _update = Refs.update

    def update(self, updates):
        _update(self, updates)
        if any(_ref in u.ref for u in updates):
            _kill()

    Refs.update = update

_renamed = os.environ.get("KILL_BEFORE_RENAME_TO")
if _renamed:
    import pathlib
    _replace = pathlib.Path.replace

    def replace(self, target):
        if pathlib.Path(target).name == _renamed:
            _kill()
        return _replace(self, target)

    pathlib.Path.replace = replace
"""

MARKER = "tampered-marker"


def _plan(repo: Path, *, fails: bool = True) -> Path:
    """One batch whose action writes a file; its check fails while ``fail.flag``
    exists beside the workspace."""
    flag = repo.parent / "fail.flag"
    if fails:
        flag.write_text("1")
    check = f"import pathlib, sys; sys.exit(1 if pathlib.Path({str(flag)!r}).exists() else 0)"
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": "crash",
            "batches": [
                {
                    "batch_id": "one",
                    "actions": [write_file_action("write", "app/one.py", "ONE = 1\n")],
                    "validation": [python_step("check", check)],
                    "commit_strategy": "commit",
                }
            ],
        },
    )


def _edit_started_event(repo: Path, old: str, new: str) -> None:
    """Edits the stored RunStarted event by hand, as an attacker with the file
    would: the event's content no longer matches its digest."""
    with sqlite3.connect(repo / ".recovery" / "events.sqlite3") as db:
        (state,) = db.execute(
            "SELECT state FROM stored_events WHERE originator_version = 1"
        ).fetchone()
        assert old.encode() in state
        db.execute(
            "UPDATE stored_events SET state = ? WHERE originator_version = 1",
            (state.replace(old.encode(), new.encode()),),
        )


def test_a_hand_edited_event_is_refused_by_resume_and_decide(repo: Path) -> None:
    """The plan's command edited in the stored RunStarted: ``resume`` and
    ``decide`` exit 6 naming the event, and the edited command never runs."""
    plan = _plan(repo)
    assert run_cli("run", plan, cwd=repo).returncode == 3
    evil = repo.parent / "evil-ran"
    _edit_started_event(
        repo,
        "ONE = 1",
        f"ONE = 1\\nimport pathlib; pathlib.Path({str(evil)!r}).touch()",
    )
    (repo.parent / "fail.flag").unlink()
    decided = run_cli("decide", "latest", "one", "retry", cwd=repo)
    assert decided.returncode == 6, decided.stderr
    assert "event 1 (RunStarted)" in decided.stderr
    resumed = run_cli("resume", "latest", cwd=repo)
    assert resumed.returncode == 6, resumed.stderr
    assert "event 1 (RunStarted): content does not match its digest" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert not evil.exists()
    assert git(repo, "log", "--format=%s") == "initial\n"


def test_an_intact_store_is_not_refused(repo: Path) -> None:
    """The check passes an honest history: decide and resume go on."""
    plan = _plan(repo)
    assert run_cli("run", plan, cwd=repo).returncode == 3
    (repo.parent / "fail.flag").unlink()
    assert run_cli("decide", "latest", "one", "retry", cwd=repo).returncode == 0
    done = run_cli("resume", "latest", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert git(repo, "log", "--format=%s").splitlines()[1:] == ["initial"]


def _killed(repo: Path, *args: str | Path, **env: str) -> None:
    """Runs ``recovery *args`` with the killer armed; it must die by SIGKILL."""
    kit = repo.parent / "killer"
    kit.mkdir(exist_ok=True)
    (kit / "sitecustomize.py").write_text(KILLER)
    done = run_cli(*args, cwd=repo, env={"PYTHONPATH": str(kit), **env})
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr)


def _events(repo: Path) -> list[str]:
    with sqlite3.connect(repo / ".recovery" / "events.sqlite3") as db:
        rows = db.execute("SELECT topic FROM stored_events ORDER BY rowid").fetchall()
    return [topic.removeprefix("recovery:") for (topic,) in rows]


def _retry_plan(repo: Path) -> Path:
    """One batch: its first attempt also writes ``app/bad.py`` (the faulty
    change) and fails its check; the second attempt writes only ``app/one.py``
    and passes."""
    code = (
        "import os, pathlib; pathlib.Path('app/one.py').write_text('ONE = 1\\n'); "
        "os.environ['RECOVERY_ATTEMPT'] == '1' and "
        "pathlib.Path('app/bad.py').write_text('BAD = 1\\n')"
    )
    check = (
        "import pathlib, sys; sys.exit(1 if pathlib.Path('app/bad.py').exists() else 0)"
    )
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": "crash",
            "batches": [
                {
                    "batch_id": "one",
                    "actions": [{"name": "write", "run": [sys.executable, "-c", code]}],
                    "validation": [python_step("check", check)],
                    "commit_strategy": "commit",
                }
            ],
        },
    )


@pytest.mark.parametrize(
    "kill",
    [
        {"KILL_AFTER_EVENT": "recovery:BatchMarkedFailed"},
        {"KILL_AFTER_REF": "/1/quarantine"},
    ],
    ids=["after-failure-saved", "after-quarantine-ref"],
)
def test_a_runner_killed_before_its_failure_is_answered_leaves_no_faulty_change(
    repo: Path, kill: dict[str, str]
) -> None:
    """Killed right after the failure is saved (before the strategy ran), or
    after the quarantine ref was written (before the tree was restored and the
    answer recorded): the next command answers it first, so the faulty change
    is quarantined once and never committed by the retry."""
    plan = _retry_plan(repo)
    _killed(repo, "run", plan, **kill)
    # The operator decides while the halt is only half made: the next runner
    # still quarantines the faulty change before it carries the retry out.
    assert run_cli("decide", "latest", "one", "retry", cwd=repo).returncode == 0
    done = run_cli("resume", "latest", cwd=repo)
    assert done.returncode == 0, done.stderr
    committed = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert committed == ["app/one.py"]
    assert not (repo / "app" / "bad.py").exists()
    events = _events(repo)
    assert events.count("ChangesQuarantined") == 1
    assert events.count("RecoveryAttempted") == 1
    assert events.count("BatchCommitted") == 1
    quarantine = git(repo, "for-each-ref", "--format=%(refname)", "refs/recovery/")
    kept = [r for r in quarantine.split() if r.endswith("/1/quarantine")]
    assert len(kept) == 1
    assert "app/bad.py" in git(repo, "show", "--name-only", "--format=", kept[0])


def _passing_plan(repo: Path) -> Path:
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": "crash",
            "batches": [
                {
                    "batch_id": batch,
                    "actions": [
                        write_file_action("write", f"app/{batch}.py", f"{batch} = 1\n")
                    ],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                    "commit_strategy": "commit",
                }
                for batch in ("one", "two")
            ],
        },
    )


@pytest.mark.parametrize(
    "kill",
    [{"KILL_AFTER_EVENT": "recovery:BatchVerified"}, {"KILL_AFTER_REF": "refs/heads/"}],
    ids=["after-verified", "after-branch-move"],
)
def test_a_verified_batch_is_committed_once_after_a_kill(
    repo: Path, kill: dict[str, str]
) -> None:
    """Killed after the batch was verified (before its commit), or after the
    branch moved (before the index and the record): the next run commits it
    exactly once, records it, and leaves the index in step with the branch."""
    plan = _passing_plan(repo)
    (repo / "notes.txt").write_text("the user's own untracked file\n")
    _killed(repo, "run", plan, **kill)
    done = run_cli("run", plan, cwd=repo)
    assert done.returncode == 0, done.stderr
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert [s.split(":")[0] for s in subjects] == ["two", "one", "initial"]
    assert git(repo, "show", "--name-only", "--format=", "HEAD~1").split() == [
        "app/one.py"
    ]
    assert git(repo, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        "?? notes.txt",
        "?? plan.json",
    ]
    events = _events(repo)
    assert events.count("BatchCommitted") == 2
    status = json.loads(run_cli("status", "latest", "--json", cwd=repo).stdout)
    assert [b["commit"] is not None for b in status["batches"]] == [True, True]


def test_a_write_of_the_plan_file_killed_halfway_leaves_nothing_for_a_batch(
    repo: Path,
) -> None:
    """Killed between writing the plan file's new content and the rename: the
    temporary copy is not in the workspace (it is made under ``.recovery/``),
    so no batch picks it up and no commit holds it."""
    plan = _passing_plan(repo)
    _killed(repo, "run", plan, KILL_BEFORE_RENAME_TO="plan.json")
    leftovers = [p.name for p in repo.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    ran = run_cli("run", plan, cwd=repo)
    if ran.returncode == 3:  # the killed attempt is recorded as interrupted
        assert run_cli("decide", "latest", "one", "retry", cwd=repo).returncode == 0
        ran = run_cli("resume", "latest", cwd=repo)
    assert ran.returncode == 0, ran.stderr
    in_commits = git(repo, "log", "--name-only", "--format=").split()
    assert not [name for name in in_commits if name.endswith(".tmp")], in_commits
    assert sorted(set(in_commits)) == [
        "app/__init__.py",
        "app/calc.py",
        "app/one.py",
        "app/two.py",
        "tests/__init__.py",
        "tests/test_calc.py",
    ]
    assert json.loads(plan.read_text())["batches"][0]["status"] == "verified"


def test_a_lock_left_by_a_killed_git_process_of_ours_does_not_wedge_the_run(
    repo: Path,
) -> None:
    """Killed while git wrote the first attempt's baseline ref (the git process
    too, as a lost machine would): the lock it left under ``refs/recovery/``
    is recognised and cleared by the next run, which goes on; a lock outside
    our refs (the user's) is left alone."""
    plan = _passing_plan(repo)
    _killed(repo, "run", plan, KILL_AFTER_REF="/one/1/baseline")
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/recovery/").split()
    (baseline,) = [r for r in refs if r.endswith("/one/1/baseline")]
    lock = repo / ".git" / f"{baseline}.lock"
    lock.write_text("0" * 40 + "\n")  # as a killed `git update-ref` leaves it
    os.utime(lock, (0, 0))
    users = repo / ".git" / "refs" / "heads" / "feature.lock"
    users.write_text("")
    os.utime(users, (0, 0))
    done = run_cli("run", plan, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert not lock.exists()
    assert users.exists()
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert [s.split(":")[0] for s in subjects] == ["two", "one", "initial"]


def _lives(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody has reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# The first attempt leaves its pid, waits, then writes a file the batch must
# not get; the second writes only app/one.py.
ORPHAN = (
    "import os, pathlib, time; "
    "pathlib.Path('app/one.py').write_text('ONE = 1\\n'); "
    "first = os.environ['RECOVERY_ATTEMPT'] == '1'; "
    "first and pathlib.Path('action.pid').write_text(str(os.getpid())); "
    "first and time.sleep(3); "
    "first and pathlib.Path('app/orphan.py').write_text('LATE = 1\\n')"
)


def test_an_action_left_running_by_a_killed_runner_is_ended_before_the_restore(
    repo: Path,
) -> None:
    """The runner is SIGKILLed while its action runs (in a session of its own,
    so it lives on): the next runner ends the action's process group before it
    restores the tree, so the file the orphan would have written later is never
    made, and never committed by the retry; the failure says so."""
    plan = write_plan(
        repo / "plan.json",
        {
            "plan_id": "orphan",
            "batches": [
                {
                    "batch_id": "one",
                    "actions": [
                        {"name": "write", "run": [sys.executable, "-c", ORPHAN]}
                    ],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                    "commit_strategy": "commit",
                }
            ],
        },
    )
    (repo / ".git" / "info" / "exclude").write_text("action.pid\n")
    runner = subprocess.Popen(
        [sys.executable, "-m", "recovery_adapters.cli", "run", str(plan)],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = repo / "action.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and runner.poll() is None
        time.sleep(0.02)
    action = int(pid_file.read_text())
    runner.kill()
    runner.wait(timeout=30)
    again = run_cli("run", plan, cwd=repo)
    assert again.returncode == 3, again.stderr
    assert not _lives(action), again.stderr
    time.sleep(3.5)  # when the orphan would have written its file
    assert not (repo / "app" / "orphan.py").exists()
    failure = json.loads(
        (repo / ".recovery" / "logs" / "bootstrap_errors.log")
        .read_text()
        .splitlines()[-1]
    )
    # The action, and the supervisor it ran under (see supervise.py).
    ended = failure["error"].partition("its processes left running were ended (pids ")
    assert str(action) in ended[2].rstrip(")").split(", "), failure["error"]
    assert run_cli("decide", "latest", "one", "retry", cwd=repo).returncode == 0
    done = run_cli("resume", "latest", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [
        "app/one.py"
    ]


def test_our_gitignore_cut_short_by_a_kill_is_written_again(repo: Path) -> None:
    """A kill while ``.recovery/.gitignore`` was written leaves it empty (or
    cut short): the next run writes it whole again, so the store never shows
    in ``git status``, and the user's ``.git/info/exclude`` is never written."""
    plan = _passing_plan(repo)
    exclude = repo / ".git" / "info" / "exclude"
    before = exclude.read_bytes() if exclude.exists() else None
    (repo / ".recovery").mkdir()
    (repo / ".recovery" / ".gitignore").write_text("")
    ran = run_cli("run", plan, cwd=repo)
    assert ran.returncode == 0, ran.stderr
    assert (repo / ".recovery" / ".gitignore").read_text() == "*\n"
    assert ".recovery" not in git(repo, "status", "--porcelain", "--untracked=all")
    assert (exclude.read_bytes() if exclude.exists() else None) == before


def test_a_write_of_the_failure_log_killed_halfway_leaves_no_copy(repo: Path) -> None:
    """Killed between writing the failure log's temporary copy and the rename:
    the next run, writing the log again, removes the copy whose process is
    gone; the log holds the failure."""
    plan = _plan(repo)
    _killed(repo, "run", plan, KILL_BEFORE_RENAME_TO="bootstrap_errors.log")
    logs = repo / ".recovery" / "logs"
    assert [p.name for p in logs.glob("*.tmp")]  # the kill's copy
    ran = run_cli("run", plan, cwd=repo)
    assert ran.returncode == 3, ran.stderr
    assert sorted(p.name for p in logs.iterdir()) == ["bootstrap_errors.log"]
    entries = (logs / "bootstrap_errors.log").read_text().splitlines()
    assert [json.loads(line)["batch_id"] for line in entries] == ["one"]


def test_a_log_write_of_the_same_bytes_still_removes_a_dead_writers_copy(
    tmp_path: Path,
) -> None:
    """Two writers of the failure log (a waiting runner and `recovery
    decide`): the one killed before its rename leaves its copy, and the other
    wrote the same bytes first. A later write with nothing new to write still
    removes the dead writer's copy (found by the crash sweep's wait plan); a
    live writer's copy stays."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "bootstrap_errors.log"
    assert write_log_lines(log, ['{"batch_id": "one"}'])
    stale = logs / f".{log.name}.{_gone_pid()}.abcd1234.tmp"
    live = logs / f".{log.name}.{os.getppid()}.efgh5678.tmp"
    stale.write_text("half")
    live.write_text("busy")
    assert not write_log_lines(log, ['{"batch_id": "one"}'])  # same bytes
    assert not stale.exists()
    assert live.exists()


def _gone_pid() -> int:
    """The id of a process that has ended and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
