"""Holes in the git layer, each shown through the real `recovery` command in a
real repository: a signal sent to the whole process group (as a terminal does),
two runners in one workspace, the user's uncommitted edit in a file the batch
commits, and a batch that plants git settings (fsmonitor, hooks, filter drivers,
core.worktree) or moves HEAD before it fails. Each test states the safe
behaviour the git layer must have."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from support import APP_CALC, FIXED_CALC, cli_json, git, make_repo, run_cli, write_plan

CLI = (sys.executable, "-m", "recovery_adapters.cli")
MUL = "def mul(a, b):\n    return a * b\n"
USER_NOTE = "# user's note\n"


# -- helpers --------------------------------------------------------------------


def action(name: str, code: str, *args: str, timeout_s: float = 60) -> dict[str, Any]:
    """An action that runs Python ``code`` (with ``args`` as sys.argv[1:])."""
    return {
        "name": name,
        "run": [sys.executable, "-c", code, *args],
        "timeout_s": timeout_s,
    }


def one_batch_plan(
    plan_id: str,
    *actions: dict[str, Any],
    batch_id: str = "b1",
    commit_strategy: str = "none",
    validation: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A plan of one batch doing ``actions``."""
    return {
        "plan_id": plan_id,
        "batches": [
            {
                "batch_id": batch_id,
                "description": f"batch of {plan_id}",
                "actions": list(actions),
                "validation": list(validation),
                "commit_strategy": commit_strategy,
            }
        ],
    }


def touch_command(path: Path) -> str:
    """A shell command (as git runs its settings) that creates ``path``."""
    code = f"import pathlib; pathlib.Path({str(path)!r}).touch()"
    return shlex.join([sys.executable, "-c", code])


def git_rc(repo: Path, *args: str) -> int:
    """The exit code of a git command in ``repo``."""
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, check=False, timeout=60
    ).returncode


def head(repo: Path) -> str:
    """The commit HEAD points at."""
    return git(repo, "rev-parse", "HEAD").strip()


def recovery_refs(repo: Path) -> list[str]:
    """Every ref under refs/recovery/."""
    return git(repo, "for-each-ref", "--format=%(refname)", "refs/recovery/").split()


def quarantine_refs(repo: Path, batch_id: str) -> list[str]:
    """The quarantine refs of ``batch_id``, any run, any attempt."""
    return [
        ref
        for ref in recovery_refs(repo)
        if ref.endswith("/quarantine") and ref.split("/")[-3] == batch_id
    ]


def start_cli(
    *args: str | os.PathLike[str], cwd: Path, new_session: bool = False
) -> subprocess.Popen[str]:
    """Starts the real `recovery` command without waiting for it."""
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 20) -> None:
    """Waits until ``path`` exists while ``proc`` still runs."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited {proc.returncode} first:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} never appeared")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[str], *, group: bool = False) -> None:
    """Kills ``proc`` (and its process group) if it still runs, and reaps it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
        proc.communicate(timeout=30)


def kill_pid_in(marker: Path) -> None:
    """Kills the process whose pid an action wrote into ``marker``, if alive."""
    try:
        pid = int(marker.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def pwned(folder: Path) -> list[str]:
    """The PWNED_* markers that git settings planted by a batch left in ``folder``."""
    return sorted(p.name for p in folder.glob("PWNED_*"))


# -- 1. a signal to the whole process group ---------------------------------------

SLOW_HALF_CHANGE = """\
import os, pathlib, sys, time
pathlib.Path('app/half.py').write_text('HALF = 1\\n')
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
time.sleep(30)
"""


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_a_signal_to_the_whole_process_group_halts_and_puts_the_files_back(
    repo: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C in a terminal (and SIGTERM or SIGHUP, as a closed terminal or a
    service manager sends) reaches the runner's whole process group, the git
    processes it started included. The interrupted attempt must still be
    recorded as the batch's failure (exit 3) with no crash (no Broken pipe, no
    ObjectError, no traceback); its new file is removed and its edit undone,
    its change kept under a quarantine ref; and `decide skip` + `resume` then
    complete the run without bringing the half-made file back."""
    marker = tmp_path / "action-started"
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "interrupted",
            action("generate", SLOW_HALF_CHANGE, str(marker)),
            validation=[{"name": "syntax_check", "kind": "syntax"}],
        ),
    )
    proc = start_cli("run", plan, cwd=repo, new_session=True)
    try:
        wait_for(marker, proc)
        os.killpg(proc.pid, sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        stop(proc, group=True)
        kill_pid_in(marker)
    assert proc.returncode == 3, err
    for crash in ("Broken pipe", "BrokenPipe", "ObjectError", "Traceback"):
        assert crash not in err, err
    assert not (repo / "app" / "half.py").exists()
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert quarantine_refs(repo, "b1"), recovery_refs(repo)
    status = cli_json("status", "latest", cwd=repo)
    (batch,) = status["batches"]
    assert (batch["status"], batch["verified"], batch["attempts"]) == (
        "failed",
        False,
        1,
    )
    assert status["state"] == "halted"

    decided = run_cli("decide", "latest", "b1", "skip", cwd=repo, timeout=60)
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", "latest", cwd=repo, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert not (repo / "app" / "half.py").exists()
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert cli_json("status", "latest", cwd=repo)["state"] == "completed"


# -- 2. two runners in one workspace ----------------------------------------------

WAIT_FOR_GO = """\
import os, pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
go = pathlib.Path(sys.argv[2])
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
path = pathlib.Path(sys.argv[3])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(sys.argv[4])
"""


def waiting_plan(
    plan_id: str, marker: Path, go: Path, path: str, content: str
) -> dict[str, Any]:
    """One committing batch that says it started, waits for ``go``, then writes
    ``path``."""
    return one_batch_plan(
        plan_id,
        action("generate", WAIT_FOR_GO, str(marker), str(go), path, content),
        commit_strategy="commit",
        validation=[{"name": "syntax_check", "kind": "syntax"}],
    )


def test_a_second_run_in_a_busy_workspace_exits_5_naming_the_holder(
    repo: Path, tmp_path: Path
) -> None:
    """While run A of one plan works in the workspace, `recovery run` of another
    plan in the same workspace must refuse at once with exit 5, name who holds
    the workspace (A's run id, its pid and host), and record nothing: it starts
    no run in the store, writes no file, makes no commit. A then finishes
    alone: one new commit on main, holding app/a.py."""
    initial = head(repo)
    marker, go = tmp_path / "a-started", tmp_path / "a-go"
    plan_a = write_plan(
        tmp_path / "plan_a.json",
        waiting_plan("plan-a", marker, go, "app/a.py", "A = 1\n"),
    )
    plan_b = write_plan(
        tmp_path / "plan_b.json",
        one_batch_plan(
            "plan-b",
            action(
                "generate",
                "import pathlib; pathlib.Path('app/b.py').write_text('B = 1\\n')",
            ),
            commit_strategy="commit",
            validation=[{"name": "syntax_check", "kind": "syntax"}],
        ),
    )
    proc = start_cli("run", plan_a, cwd=repo)
    try:
        wait_for(marker, proc)
        # Only A exists yet, so `latest` is A.
        run_a = cli_json("status", "latest", cwd=repo)["run_id"]
        second = run_cli("run", plan_b, cwd=repo, timeout=30)
        go.touch()
        _out, err_a = proc.communicate(timeout=60)
    finally:
        go.touch()
        stop(proc)
        kill_pid_in(marker)
    assert second.returncode == 5, second.stdout + second.stderr
    assert "workspace" in second.stderr
    assert run_a in second.stderr
    assert str(proc.pid) in second.stderr
    assert socket.gethostname() in second.stderr
    assert proc.returncode == 0, err_a

    assert git(repo, "rev-list", f"{initial}..main").split() == [head(repo)]
    assert git(repo, "show", "--name-only", "--format=", "main") == "app/a.py\n"
    assert not (repo / "app" / "b.py").exists()
    latest = cli_json("status", "latest", cwd=repo)
    assert (latest["run_id"], latest["plan_id"]) == (run_a, "plan-a")
    assert json.loads(plan_b.read_text())["batches"][0].get("status", "pending") == (
        "pending"
    )


def test_two_runs_started_at_once_in_a_fresh_workspace_one_wins(
    tmp_path: Path,
) -> None:
    """Two `recovery run` of two plans started at the same instant in a fresh
    repository (no .recovery folder, no store yet): in every one of 5 rounds
    exactly one exits 0 and the other exits 5, and only the winner's file and
    commit exist. (Each action waits until one of the two commands has ended,
    or both actions run at once, so that the two runs surely overlap.)"""
    for round_ in range(5):
        repo = make_repo(tmp_path / f"round{round_}")
        initial = head(repo)
        go = tmp_path / f"round{round_}-go"
        markers = {name: tmp_path / f"round{round_}-{name}-started" for name in "ab"}
        procs: dict[str, subprocess.Popen[str]] = {}
        try:
            for name in "ab":
                plan = write_plan(
                    tmp_path / f"round{round_}-{name}.json",
                    waiting_plan(
                        f"plan-{name}", markers[name], go, f"app/{name}.py", "X = 1\n"
                    ),
                )
                procs[name] = start_cli("run", plan, cwd=repo)
            deadline = time.monotonic() + 30
            while (
                all(p.poll() is None for p in procs.values())
                and not all(m.exists() for m in markers.values())
                and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            go.touch()
            outputs = {name: p.communicate(timeout=60) for name, p in procs.items()}
        finally:
            go.touch()
            for p in procs.values():
                stop(p)
            for m in markers.values():
                kill_pid_in(m)
        codes = {name: p.returncode for name, p in procs.items()}
        detail = f"round {round_}: exit codes {codes}; output {outputs}"
        assert sorted(codes.values()) == [0, 5], detail
        winner = next(name for name, code in codes.items() if code == 0)
        loser = "b" if winner == "a" else "a"
        assert (repo / "app" / f"{winner}.py").exists(), detail
        assert not (repo / "app" / f"{loser}.py").exists(), detail
        assert len(git(repo, "rev-list", f"{initial}..main").split()) == 1, detail
        assert cli_json("status", "latest", cwd=repo)["plan_id"] == f"plan-{winner}"


# -- 3. the user's uncommitted edit in a file the batch commits -------------------

APPEND_MUL = (
    "import pathlib; p = pathlib.Path('app/calc.py'); "
    f"p.write_text(p.read_text() + {MUL!r})"
)
REWRITE_RETURN = (
    "import pathlib; p = pathlib.Path('app/calc.py'); "
    "lines = p.read_text().splitlines(keepends=True); "
    "lines[1] = '    return b + a\\n'; p.write_text(''.join(lines))"
)


def test_the_users_uncommitted_edit_stays_out_of_the_batchs_commit(
    repo: Path, tmp_path: Path
) -> None:
    """The user added an uncommitted first line to app/calc.py; the batch appends
    a function to the same file and is committed. The commit must hold the
    batch's change only (HEAD's file plus `mul`, without the user's line); the
    working file keeps both; the user's line is still an unstaged change, the
    only difference between HEAD and the working tree."""
    initial = head(repo)
    (repo / "app" / "calc.py").write_text(USER_NOTE + APP_CALC)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "user-edit",
            action("generate", APPEND_MUL),
            commit_strategy="commit",
            validation=[{"name": "syntax_check", "kind": "syntax"}],
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 0, done.stderr
    assert git(repo, "rev-parse", "HEAD~1").strip() == initial
    committed = git(repo, "show", "HEAD:app/calc.py")
    assert "def mul" in committed
    assert "# user's note" not in committed
    assert committed == APP_CALC + MUL
    assert (repo / "app" / "calc.py").read_text() == USER_NOTE + APP_CALC + MUL
    diff = git(repo, "diff", "HEAD", "--", "app/calc.py").splitlines()
    added = [line for line in diff if line.startswith("+") and line[:3] != "+++"]
    removed = [line for line in diff if line.startswith("-") and line[:3] != "---"]
    assert (added, removed) == (["+# user's note"], [])
    assert git(repo, "status", "--porcelain") == " M app/calc.py\n"


def test_a_batch_that_overlaps_the_users_edit_is_verified_but_not_committed(
    repo: Path, tmp_path: Path
) -> None:
    """The user changed `return a + b` (uncommitted) and the batch rewrites that
    same line: the batch's change cannot be committed without the user's work
    in it. The batch is verified (exit 0) but nothing is committed: HEAD stays
    at the initial commit, the working tree keeps the batch's content, and the
    output says it was not committed and names the file."""
    initial = head(repo)
    user = APP_CALC.replace("    return a + b\n", "    return a + b  # user\n")
    (repo / "app" / "calc.py").write_text(user)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "overlap",
            action("generate", REWRITE_RETURN),
            commit_strategy="commit",
            validation=[{"name": "syntax_check", "kind": "syntax"}],
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 0, done.stderr
    assert head(repo) == initial
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert (repo / "app" / "calc.py").read_text() == FIXED_CALC
    status = cli_json("status", "latest", cwd=repo)
    (batch,) = status["batches"]
    assert (batch["status"], batch["verified"], batch["commit"]) == (
        "verified",
        True,
        None,
    )
    assert status["state"] == "completed"
    assert "not committed" in done.stderr.lower(), done.stderr
    assert "app/calc.py" in done.stderr, done.stderr


# -- 4. a batch that plants fsmonitor and a hook and moves HEAD -------------------

PLANT_AND_MOVE = """\
import pathlib, subprocess, sys
fsmonitor, hook_command, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
subprocess.run(['git', 'config', 'core.fsmonitor', fsmonitor], check=True)
hook = pathlib.Path('.git/hooks/pre-commit')
hook.write_text('#!/bin/sh\\n' + hook_command + '\\n')
hook.chmod(0o755)
safe = ['-c', 'core.fsmonitor=false', '-c', 'core.hooksPath=/dev/null']
subprocess.run(['git', *safe, 'checkout', '-q', '-b', 'evil'], check=True)
subprocess.run(['git', *safe, 'commit', '-q', '--allow-empty', '-m', 'evil'], check=True)
sys.exit(code)
"""


@pytest.mark.parametrize("action_exit", [1, 0], ids=["action-fails", "action-passes"])
def test_fsmonitor_hook_and_head_planted_by_a_batch_are_put_back(
    repo: Path, tmp_path: Path, action_exit: int
) -> None:
    """A batch sets core.fsmonitor and a pre-commit hook (each would create a
    PWNED file outside the repository when git runs it), checks out a new
    branch and commits on it. Whether its action then fails or passes, the run
    halts (exit 3: a failure, or the guard's failure), and the repository is
    put back: no fsmonitor setting, no pre-commit hook, HEAD on refs/heads/main
    at the initial commit. Neither PWNED file is made during the run, nor when
    the user afterwards runs `git status` and `git commit`."""
    initial = head(repo)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "planted",
            action(
                "plant",
                PLANT_AND_MOVE,
                touch_command(tmp_path / "PWNED_fsmonitor"),
                touch_command(tmp_path / "PWNED_hook"),
                str(action_exit),
            ),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert pwned(tmp_path) == [], done.stderr
    (batch,) = cli_json("status", "latest", cwd=repo)["batches"]
    assert batch["status"] == "failed"
    if action_exit == 0:
        assert batch["failure"]["step"] == "build.workspace_guard"
        assert batch["failure"]["kind"] == "guard"
    assert git_rc(repo, "config", "--get", "core.fsmonitor") == 1
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert head(repo) == initial
    git(repo, "status")
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    assert pwned(tmp_path) == []


PLANT_HOOKS_LINK = """\
import os, pathlib, shutil, sys
planted = pathlib.Path(sys.argv[1])
planted.mkdir()
hook = planted / 'pre-commit'
hook.write_text('#!/bin/sh\\n' + sys.argv[2] + '\\n')
hook.chmod(0o755)
shutil.rmtree('.git/hooks', ignore_errors=True)
os.symlink(planted, '.git/hooks')
"""


@pytest.mark.parametrize("had_hooks", [False, True], ids=["no-hooks", "hooks-folder"])
def test_a_hooks_folder_made_a_symlink_by_a_batch_is_put_back(
    repo: Path, tmp_path: Path, had_hooks: bool
) -> None:
    """A batch that makes `.git/hooks` a symbolic link to a folder of its own
    hooks (where the repository had no hooks folder, or had one) is caught by
    the guard and undone: the user's next `git commit` runs no planted hook."""
    hooks = repo / ".git" / "hooks"
    shutil.rmtree(hooks)
    if had_hooks:
        hooks.mkdir()
        (hooks / "post-merge.sample").write_text("#!/bin/sh\n")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "hooks-link",
            action(
                "plant",
                PLANT_HOOKS_LINK,
                str(tmp_path / "planted-hooks"),
                touch_command(tmp_path / "PWNED_hook"),
            ),
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    (batch,) = cli_json("status", "latest", cwd=repo)["batches"]
    assert batch["failure"]["step"] == "build.workspace_guard"
    assert "hooks" in batch["failure"]["error"]
    assert not hooks.is_symlink()
    if had_hooks:
        assert (hooks / "post-merge.sample").read_text() == "#!/bin/sh\n"
    git(repo, "commit", "-q", "--allow-empty", "-m", "after the run")
    assert pwned(tmp_path) == []


# -- 5. filter drivers planted by a failing batch ---------------------------------

PLANT_FILTERS = """\
import pathlib, subprocess, sys
subprocess.run(['git', 'config', 'filter.x.clean', sys.argv[1]], check=True)
subprocess.run(['git', 'config', 'filter.x.smudge', sys.argv[2]], check=True)
pathlib.Path('.gitattributes').write_text('* filter=x\\n')
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(1)
"""


def test_filter_drivers_planted_by_a_failing_batch_never_run(
    repo: Path, tmp_path: Path
) -> None:
    """A failing batch defines a clean and a smudge filter (each would create a
    PWNED file outside the repository, then pass the content through) and a
    .gitattributes applying them to every file, and edits app/calc.py. Putting
    the workspace back must run neither filter; app/calc.py has its committed
    content again, the new .gitattributes is gone, and the filter settings are
    removed from the config."""
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "filters",
            action(
                "plant",
                PLANT_FILTERS,
                touch_command(tmp_path / "PWNED_clean") + "; cat",
                touch_command(tmp_path / "PWNED_smudge") + "; cat",
            ),
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert pwned(tmp_path) == [], done.stderr
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert not (repo / ".gitattributes").exists()
    assert git_rc(repo, "config", "--get", "filter.x.clean") == 1
    assert git_rc(repo, "config", "--get", "filter.x.smudge") == 1
    assert quarantine_refs(repo, "b1"), recovery_refs(repo)


# -- 6. core.worktree redirects the restore ---------------------------------------

REDIRECT_WORKTREE = """\
import pathlib, subprocess, sys
subprocess.run(['git', 'config', 'core.worktree', sys.argv[1]], check=True)
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
pathlib.Path('app/new.py').write_text('NEW = 1\\n')
sys.exit(1)
"""


def test_core_worktree_set_by_a_failing_batch_does_not_redirect_the_restore(
    repo: Path, tmp_path: Path
) -> None:
    """A failing batch points core.worktree at an empty folder outside the
    repository, edits app/calc.py and adds app/new.py. The restore must work on
    the real working tree: the outside folder stays empty, app/calc.py has its
    committed content again, app/new.py is gone, and core.worktree is removed
    from the config."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "worktree", action("redirect", REDIRECT_WORKTREE, str(elsewhere))
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert not (repo / "app" / "new.py").exists()
    assert git_rc(repo, "config", "--get", "core.worktree") == 1


# -- 7. a repository made inside a watched folder ---------------------------------

MAKE_DATA = """\
import pathlib
pathlib.Path('data').mkdir()
pathlib.Path('data/table.csv').write_text('a,b\\n1,2\\n')
"""

MAKE_NESTED = """\
import subprocess
who = ['-c', 'user.name=Batch', '-c', 'user.email=batch@example.com']
subprocess.run(['git', 'init', '-q'], cwd='data', check=True)
subprocess.run(['git', 'add', 'table.csv'], cwd='data', check=True)
subprocess.run(['git', *who, 'commit', '-q', '-m', 'data'], cwd='data', check=True)
"""


def test_a_repository_made_inside_a_watched_folder_is_never_torn_apart(
    repo: Path, tmp_path: Path
) -> None:
    """Found by a probe of the watch (not among the issue's six): batch 1 makes
    the folder data/, batch 2 turns it into a repository of its own (git then
    sees one entry, a gitlink, not its files). With the watch following the
    files inside the nested repository as if they were the outer one's, a
    later restore deleted data/table.csv. Now a batch may not make a
    repository inside the work tree (section 23): batch 2 fails, the new
    repository is moved whole into the store folder (its file and its commit
    with it), and data/table.csv is put back as batch 1 left it."""
    plan = {
        "plan_id": "nested",
        "batches": [
            {"batch_id": "b1", "actions": [action("make", MAKE_DATA)]},
            {"batch_id": "b2", "actions": [action("nest", MAKE_NESTED)]},
        ],
    }
    done = run_cli("run", write_plan(tmp_path / "plan.json", plan), cwd=repo)
    assert done.returncode == 3, done.stderr
    status = cli_json("status", cwd=repo)
    assert [b["status"] for b in status["batches"]] == ["verified", "failed"]
    assert (
        "a git repository was made at data " in status["batches"][1]["failure"]["error"]
    )
    assert (repo / "data" / "table.csv").read_text() == "a,b\n1,2\n"
    assert not (repo / "data" / ".git").exists()
    (kept,) = (repo / ".recovery" / "repositories").glob("*/data")
    assert (kept / "table.csv").read_text() == "a,b\n1,2\n"
    assert git(kept, "log", "--format=%s") == "data\n"


# -- 8. filter drivers planted in the user's global git settings ------------------

PLANT_GLOBAL_FILTERS = PLANT_FILTERS.replace("'config',", "'config', '--global',")


@pytest.mark.parametrize("exit_code", [1, 0])
def test_filter_drivers_planted_in_the_global_settings_never_run(
    repo: Path, tmp_path: Path, exit_code: int
) -> None:
    """As hole 5, but the batch writes the filters into the user's global git
    settings (``git config --global``), outside the repository, where the
    repository's guard did not look: the quarantine's own ``git add`` then ran
    them. Neither filter runs, whether the batch's action fails or passes (then
    the guard fails the batch, naming the file), the workspace is put back, and
    so are the global settings (else the planted command would run on the
    user's next ``git status``)."""
    global_config = Path(os.environ["GIT_CONFIG_GLOBAL"])
    global_config.write_text("[user]\n\tname = Someone\n")
    code = PLANT_GLOBAL_FILTERS.replace("sys.exit(1)", f"sys.exit({exit_code})")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "global-filters",
            action(
                "plant",
                code,
                touch_command(tmp_path / "PWNED_clean") + "; cat",
                touch_command(tmp_path / "PWNED_smudge") + "; cat",
            ),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert pwned(tmp_path) == [], done.stderr
    assert global_config.read_text() == "[user]\n\tname = Someone\n"
    git(repo, "status")  # the user's next command runs no planted filter either
    assert pwned(tmp_path) == []
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert not (repo / ".gitattributes").exists()
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    if exit_code == 0:
        assert failure["step"] == "build.workspace_guard"
        assert f"{global_config} (outside the repository)" in failure["error"]


# -- 9. a folder replaced by a symbolic link that leads out ------------------------

LINK_OUT = """\
import os, pathlib, shutil, sys
shutil.rmtree('app')
os.symlink(sys.argv[1], 'app')
"""


def test_a_folder_replaced_by_a_link_out_commits_the_link_not_what_it_leads_to(
    repo: Path, tmp_path: Path
) -> None:
    """A passing batch replaces the folder app/ by a symbolic link to a folder
    outside the repository that holds a calc.py of its own. Git sees one
    change there: app/ went, the link came. The commit must hold the link and
    no app/calc.py; before, app/calc.py was read through the link, and the
    outside file's content went into the user's commit (and the followed tree
    lost the link)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "calc.py").write_text("SECRET = 'outside the repository'\n")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "link-out", action("link", LINK_OUT, str(outside)), commit_strategy="commit"
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 0, done.stderr
    files = git(repo, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert "app/calc.py" not in files
    assert git(repo, "ls-tree", "HEAD", "app").split()[0] == "120000"
    assert "SECRET" not in git(repo, "log", "-p", "--all")
    assert (outside / "calc.py").read_text() == "SECRET = 'outside the repository'\n"
    assert git(repo, "status", "--porcelain") == ""


# -- 10. the library's own folder un-ignored by a batch ----------------------------

UNIGNORE_STORE = """\
import pathlib, sys
pathlib.Path('.recovery/.gitignore').write_text('')
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("exit_code", [1, 0])
def test_a_batch_that_unignores_the_store_never_touches_it(
    repo: Path, tmp_path: Path, exit_code: int
) -> None:
    """A batch empties ``.recovery/.gitignore``, which keeps the library's own
    folder (the event store, the failure log) out of git, and fails or passes
    (then the guard fails it: that file is the library's). The store is never
    part of a batch's change: not quarantined, not removed by the restore (it
    was), not committed; every event is still there, the .gitignore is put
    back, and the run goes on from it."""
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "unignore",
            action("unignore", UNIGNORE_STORE, str(exit_code)),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert (repo / ".recovery" / "events.sqlite3").is_file()
    assert (repo / ".recovery" / ".gitignore").read_text() == "*\n"
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert failure["changed_files"] == ["app/calc.py"]
    if exit_code == 0:
        assert failure["step"] == "build.workspace_guard"
        assert ".recovery/.gitignore was changed" in failure["error"]
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert ".recovery" not in git(repo, "log", "--all", "--name-only", "--format=")
    assert git(repo, "status", "--porcelain") == ""
    assert run_cli("decide", "latest", "b1", "skip", cwd=repo).returncode == 0
    assert run_cli("resume", "latest", cwd=repo).returncode == 0


STAGE_STORE = """\
import subprocess
subprocess.run(['git', 'add', '-f', '.recovery'], check=True)
"""


def test_a_batch_that_stages_the_store_never_commits_it(
    repo: Path, tmp_path: Path
) -> None:
    """A passing batch forces the library's folder into the user's index
    (``git add -f .recovery``): no commit may hold it (the events, the
    failure log), whatever the index says. The user's index is put back (the
    folder is not staged), and the batch fails at the guard for staging."""
    before = head(repo)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "stage-store",
            action(
                "edit", "import pathlib; pathlib.Path('app/x.py').write_text('X=1')"
            ),
            action("stage", STAGE_STORE),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert failure["step"] == "build.workspace_guard"
    assert head(repo) == before
    assert ".recovery" not in git(repo, "ls-files")
    assert ".recovery" not in git(repo, "log", "--all", "--name-only", "--format=")


# -- 11. the user's index corrupted or locked by a failing batch -------------------

STAGE_THEN = """\
import pathlib, subprocess, sys
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
subprocess.run(['git', 'add', 'app/calc.py'], check=True)
index = pathlib.Path('.git/index')
if sys.argv[1] == 'corrupt':
    index.write_bytes(b'not an index at all' * 4)
elif sys.argv[1] == 'truncate':
    index.write_bytes(index.read_bytes()[:40])
else:
    pathlib.Path('.git/index.lock').write_bytes(b'')
sys.exit(1)
"""


@pytest.mark.parametrize("how", ["corrupt", "truncate", "lock"])
def test_an_index_a_failing_batch_corrupted_or_locked_is_put_back(
    repo: Path, tmp_path: Path, how: str
) -> None:
    """The user has a file staged. A failing batch edits app/calc.py, stages
    it, and then writes garbage over the index, cuts it short, or leaves
    ``.git/index.lock`` behind. Before, git could not read (or write) the index
    any more: the strategy raised, the faulty change stayed in the working tree
    (or in the index), and the user's git commands failed. Now the index is
    made anew as the user had staged it (or the lock is removed), the change is
    quarantined and the workspace put back, and the failure says so."""
    (repo / "staged.txt").write_text("the user's staged file\n")
    git(repo, "add", "staged.txt")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("index", action("stage-then", STAGE_THEN, how)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert not (repo / ".git" / "index.lock").exists()
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert git(repo, "status", "--porcelain") == "A  staged.txt\n"
    assert git(repo, "show", ":staged.txt") == "the user's staged file\n"
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert failure["changed_files"] == ["app/calc.py"]
    said = "lock file left behind" if how == "lock" else "index could not be read"
    assert said in failure["error"]
    assert quarantine_refs(repo, "b1")


# -- 12. a lock of the user's branch left by a batch ------------------------------

LOCK_THE_BRANCH = """\
import pathlib, subprocess, sys
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'def mul(a, b):\\n    return a * b\\n')
branch = subprocess.run(
    ['git', 'symbolic-ref', 'HEAD'], capture_output=True, text=True, check=True
).stdout.strip()
pathlib.Path('.git', branch + '.lock').write_text('held by the batch\\n')
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", ["0", "1"])
def test_a_lock_of_the_users_branch_left_by_a_batch_is_removed(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """A batch (passing or failing) changes app/calc.py and leaves the lock of
    the user's branch behind (``.git/refs/heads/<branch>.lock``). Before, the
    lock stayed: the batch's commit failed ("verified but not committed"),
    and so did every later commit of the run and of the user, until someone
    removed it by hand. Now the guard removes it, says so, and the batch
    fails with its change quarantined; the user's next commit works. A lock
    that was there before the batch (the user's) is never touched (see the
    crash-safety test of our own stale locks)."""
    branch = git(repo, "symbolic-ref", "HEAD").strip()
    head = git(repo, "rev-parse", "HEAD").strip()
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "branchlock",
            action("lock-branch", LOCK_THE_BRANCH, code),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert not (repo / ".git" / f"{branch}.lock").exists()
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert (
        f"lock file left behind ({branch.rsplit('/', 1)[-1]}.lock)"
        in (failure["error"])
    )
    assert quarantine_refs(repo, "b1")
    (repo / "user.txt").write_text("the user's next commit\n")
    git(repo, "add", "user.txt")
    git(repo, "commit", "-q", "-m", "the user's commit")
    assert git(repo, "rev-parse", "HEAD~1").strip() == head


# -- 13. object alternates, the stash, tags, replace refs and shallow -------------

PLANT_ALTERNATES = """\
import os, pathlib, subprocess, sys
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
evil = pathlib.Path('evil/objects').resolve()
evil.mkdir(parents=True)
env = {**os.environ, 'GIT_OBJECT_DIRECTORY': str(evil)}
subprocess.run(['git', 'hash-object', '-w', 'app/calc.py'], env=env, check=True)
pathlib.Path('.git/objects/info/alternates').write_text(str(evil) + '\\n')
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", ["1", "0"])
def test_object_alternates_planted_by_a_batch_are_put_back(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """A batch (failing or passing) edits app/calc.py, stores that content in
    an object folder of its own inside the work tree, and names that folder in
    ``.git/objects/info/alternates``. Before, the alternates file stayed: the
    quarantine found the faulty file's object "there already" and did not
    store it, the restore removed the batch's folder, and so the quarantined
    change was lost (``git fsck``: missing blob) and every later git command of
    the user's printed an error. Now the file is put back before the
    quarantine: the repository is whole and the change is kept."""
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("alternates", action("plant", PLANT_ALTERNATES, code)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert not (repo / ".git" / "objects" / "info" / "alternates").exists()
    assert not (repo / "evil").exists()
    fsck = subprocess.run(
        ["git", "fsck", "--no-dangling"], cwd=repo, capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    status = subprocess.run(
        ["git", "status"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert status.stderr == ""
    (quarantine,) = quarantine_refs(repo, "b1")
    assert "BROKEN = True" in git(repo, "show", f"{quarantine}:app/calc.py")
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    if code == "0":
        assert failure["step"] == "build.workspace_guard"
        assert "alternates were changed" in failure["error"]


TAMPER_REFS = """\
import pathlib, subprocess, sys
def git(*args):
    return subprocess.run(
        ['git', '-c', 'core.hooksPath=/dev/null', *args],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
git('stash', 'drop', 'stash@{1}')
git('stash', 'clear')
empty_tree = git('hash-object', '-t', 'tree', '-w', '/dev/null')
fake = git('commit-tree', '-m', 'fake', empty_tree)
git('tag', '-f', 'v1', fake)
git('tag', '-f', '-a', '-m', 'moved', 'v2', fake)
git('tag', 'evil', fake)
head = git('rev-parse', 'HEAD')
git('replace', '-f', head, fake)
pathlib.Path('.git/shallow').write_text(head + '\\n')
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", ["1", "0"])
def test_the_stash_tags_replace_refs_and_shallow_a_batch_changed_are_put_back(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """The user has two stash entries and two tags. A batch (failing or
    passing) drops both stash entries, moves both tags to a fake commit, makes
    that commit replace HEAD (so that git shows it instead of the user's) and
    marks HEAD shallow (its history hidden). Before, all of it stayed, and a
    passing batch's run even completed: the user's stashed work was gone and
    `git log` showed only "fake". Now each is put back, and the batch fails
    saying what it changed; the tag it made is left in place."""
    for name in ("first", "second"):
        (repo / f"{name}.txt").write_text(f"the user's {name} stashed work\n")
        git(repo, "add", f"{name}.txt")
        git(repo, "stash", "push", "-q", "-m", f"my {name} work")
    git(repo, "tag", "v1")
    git(repo, "tag", "-a", "-m", "release", "v2")
    stash = git(repo, "stash", "list", "--format=%H %gs")
    tags = git(repo, "for-each-ref", "refs/tags/")
    history = git(repo, "log", "--format=%H %s")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("refs", action("tamper", TAMPER_REFS, code)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert git(repo, "stash", "list", "--format=%H %gs") == stash
    assert "my first work" in stash and "my second work" in stash
    assert git(repo, "stash", "show", "-p", "stash@{1}").count("stashed work") == 1
    assert git(repo, "replace", "-l") == ""
    assert not (repo / ".git" / "shallow").exists()
    assert git(repo, "log", "--format=%H %s") == history
    evil = "refs/tags/evil"
    left = git(repo, "for-each-ref", "refs/tags/").splitlines()
    assert [line for line in left if not line.endswith(evil)] == tags.splitlines()
    assert any(line.endswith(evil) for line in left)
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    if code == "0":
        assert failure["step"] == "build.workspace_guard"
        for said in (
            "the stash was changed",
            "tag refs/tags/v1 was rewritten",
            "tag refs/tags/v2 was rewritten",
            "replace ref refs/replace/",
            "shallow file was changed",
        ):
            assert said in failure["error"], failure["error"]


FETCH_LIKE = """\
import pathlib, subprocess
head = subprocess.run(
    ['git', 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True
).stdout.strip()
subprocess.run(['git', 'update-ref', 'refs/remotes/origin/main', head], check=True)
subprocess.run(['git', 'update-ref', 'refs/remotes/origin/new', head], check=True)
subprocess.run(['git', 'tag', 'fetched-tag', head], check=True)
pathlib.Path('app/mul.py').write_text('def mul(a, b):\\n    return a * b\\n')
"""


def test_what_a_fetch_moves_while_a_batch_runs_is_put_back(
    repo: Path, tmp_path: Path
) -> None:
    """While a batch runs, a fetch (the user's, or their editor's automatic
    one) moves and makes remote-tracking refs and brings a new tag. Nothing
    tells that from a batch forging a remote-tracking branch (section 26),
    so the refs are put back as they were and the batch fails at the guard,
    naming them; what the fetch brought is on the remote still, and the next
    fetch brings it again. The new tag changes nothing the user had: it stays."""
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    first = head(repo)
    git(repo, "commit", "-q", "--allow-empty", "-m", "the user's second")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "fetch", action("fetch-like", FETCH_LIKE), commit_strategy="commit"
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert git(repo, "rev-parse", "origin/main").strip() == first
    assert git_rc(repo, "rev-parse", "--verify", "-q", "origin/new") == 1
    second = head(repo)
    assert git(repo, "rev-parse", "fetched-tag").strip() == second
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert failure["step"] == "build.workspace_guard"
    assert "refs/remotes/origin/main was rewritten" in failure["error"]
    assert "refs/remotes/origin/new was created (removed)" in failure["error"]


def add_lib_submodule(repo: Path, tmp_path: Path) -> None:
    """Gives ``repo`` a submodule at ``lib`` (a one-commit repository), committed."""
    lib = tmp_path / "lib-origin"
    lib.mkdir()
    git(lib, "init", "-q")
    git(lib, "commit", "-q", "--allow-empty", "-m", "lib")
    add = ("-c", "protocol.file.allow=always", "submodule", "add", "-q")
    git(repo, *add, str(lib), "lib")
    git(repo, "commit", "-q", "-m", "the lib submodule")


PLANT_IN_SUBMODULE = """\
import pathlib, subprocess, sys
fsmonitor, hook_command, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
subprocess.run(['git', '-C', 'lib', 'config', 'core.fsmonitor', fsmonitor], check=True)
hooks = pathlib.Path(subprocess.run(
    ['git', '-C', 'lib', 'rev-parse', '--git-path', 'hooks'],
    capture_output=True, text=True, check=True,
).stdout.strip())
hooks = hooks if hooks.is_absolute() else pathlib.Path('lib') / hooks
hooks.mkdir(exist_ok=True)
(hooks / 'pre-commit').write_text('#!/bin/sh\\n' + hook_command + '\\n')
(hooks / 'pre-commit').chmod(0o755)
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(code)
"""


@pytest.mark.parametrize("code", ["1", "0"])
def test_settings_and_hooks_planted_in_a_submodule_never_run(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """The repository has a submodule. A batch (failing or passing) sets
    ``core.fsmonitor`` and a pre-commit hook in the submodule's repository
    (``.git/modules/lib/``). Before, both stayed, and the user's next `git
    status` in the repository ran the planted fsmonitor (git looks into each
    submodule with a `git status` of its own). Now they are put back: neither
    runs, and the batch fails saying so."""
    add_lib_submodule(repo, tmp_path)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "submodule",
            action(
                "plant",
                PLANT_IN_SUBMODULE,
                touch_command(tmp_path / "PWNED_fsmonitor"),
                touch_command(tmp_path / "PWNED_hook"),
                code,
            ),
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    git(repo, "status")
    git(repo / "lib", "commit", "-q", "--allow-empty", "-m", "the user's")
    assert pwned(tmp_path) == []
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert "a submodule's git settings or hooks were changed" in failure["error"]


REDIRECT_SUBMODULE = """\
import pathlib, subprocess, sys
evil, fsmonitor, code = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
subprocess.run(['git', 'init', '-q', str(evil)], check=True)
subprocess.run(['git', '-C', str(evil), 'config', 'core.fsmonitor', fsmonitor], check=True)
pathlib.Path('lib/.git').write_text(f'gitdir: {evil / ".git"}\\n')
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(code)
"""


@pytest.mark.parametrize("code", ["1", "0"])
def test_a_submodules_git_file_a_batch_redirects_is_put_back(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """The repository has a submodule. A batch (failing or passing) points
    the submodule's ``.git`` file at a repository of its own whose settings
    plant ``core.fsmonitor``. Before, the file stayed, and the user's next
    `git status` ran the planted command inside that repository. Now the
    file is put back and the batch fails saying so."""
    add_lib_submodule(repo, tmp_path)
    before = (repo / "lib" / ".git").read_text()
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "gitfile",
            action(
                "redirect",
                REDIRECT_SUBMODULE,
                str(tmp_path / "evil"),
                touch_command(tmp_path / "PWNED_fsmonitor"),
                code,
            ),
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert (repo / "lib" / ".git").read_text() == before
    git(repo, "status")
    assert pwned(tmp_path) == []
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert "the .git file of the repository at lib was changed" in failure["error"]


# -- 14. index entries git takes as they are (assume-unchanged, skip-worktree) ---

HIDE_BEHIND_A_FLAG = """\
import pathlib, subprocess, sys
subprocess.run(['git', 'update-index', '--' + sys.argv[1], 'app/calc.py'], check=True)
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(1)
"""


@pytest.mark.parametrize("flag", ["assume-unchanged", "skip-worktree"])
def test_a_change_a_failing_batch_hides_behind_an_index_flag_is_quarantined(
    repo: Path, tmp_path: Path, flag: str
) -> None:
    """A failing batch marks app/calc.py assume-unchanged (or skip-worktree)
    in the user's index, then breaks it. Before, git took the entry as it
    was: the quarantine missed the file, the broken line stayed in the
    working tree, and the user's `git status` showed nothing. Now the flag
    is cleared again, the change is quarantined and the file put back."""
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("flags", action("hide", HIDE_BEHIND_A_FLAG, flag)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert git(repo, "ls-files", "-v", "app/calc.py") == "H app/calc.py\n"
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert "app/calc.py" in failure["changed_files"]
    assert "flags of the user's index entries" in failure["error"]
    (quarantine,) = quarantine_refs(repo, "b1")
    assert "BROKEN = True" in git(repo, "show", f"{quarantine}:app/calc.py")


BREAK_CALC = """\
import pathlib, sys
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(1)
"""


def test_the_users_edit_in_an_assume_unchanged_file_survives_a_failing_batch(
    repo: Path, tmp_path: Path
) -> None:
    """The user keeps a local edit in app/calc.py marked assume-unchanged (so
    that git status does not show it). A failing batch breaks the file.
    Before, the snapshot took the file as HEAD has it, so the restore put
    HEAD's version back: the user's edit was lost. Now the snapshot holds
    what the file holds, and the restore puts the user's edit back; the
    user's flag stays."""
    calc = repo / "app" / "calc.py"
    calc.write_text(APP_CALC + USER_NOTE)
    git(repo, "update-index", "--assume-unchanged", "app/calc.py")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("flagged", action("break", BREAK_CALC)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stderr
    assert calc.read_text() == APP_CALC + USER_NOTE
    assert git(repo, "ls-files", "-v", "app/calc.py") == "h app/calc.py\n"
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert failure["changed_files"] == ["app/calc.py"]


@pytest.mark.parametrize("flag", ["assume-unchanged", "skip-worktree"])
def test_the_users_flag_on_a_file_a_batch_commits_stays(
    repo: Path, tmp_path: Path, flag: str
) -> None:
    """The user keeps a local edit in app/calc.py, hidden from `git status`
    by an assume-unchanged (or skip-worktree) flag; a passing batch appends a
    function to the file and is committed. The commit holds the batch's
    change only; the flag stays, so the user's edit stays hidden. Before, the
    index entry was staged anew and the flag was lost."""
    (repo / "app" / "calc.py").write_text(USER_NOTE + APP_CALC)
    git(repo, "update-index", f"--{flag}", "app/calc.py")
    listed = git(repo, "ls-files", "-v", "app/calc.py")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "flag-kept", action("generate", APPEND_MUL), commit_strategy="commit"
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "HEAD:app/calc.py") == APP_CALC + MUL
    assert (repo / "app" / "calc.py").read_text() == USER_NOTE + APP_CALC + MUL
    assert git(repo, "ls-files", "-v", "app/calc.py") == listed
    assert git(repo, "status", "--porcelain") == ""


# -- 15. a merge, cherry-pick or rebase left in progress by a batch ---------------

LEAVE_IN_PROGRESS = """\
import pathlib, sys
what, value, code = sys.argv[1:]
pathlib.Path('app/mul.py').write_text('def mul(a, b):\\n    return a * b\\n')
state = pathlib.Path('.git', what)
if value == 'folder':
    state.mkdir()
else:
    state.write_text(value + '\\n')
    if what == 'MERGE_HEAD':
        pathlib.Path('.git/MERGE_MSG').write_text("Merge the batch's commit\\n")
        pathlib.Path('.git/MERGE_MODE').write_text('')
sys.exit(int(code))
"""


def foreign_commit(repo: Path) -> str:
    """A commit of someone else's, on no branch of the user's."""
    (repo / "foreign.txt").write_text("not the user's\n")
    git(repo, "add", "foreign.txt")
    tree = git(repo, "write-tree").strip()
    git(repo, "rm", "-q", "--cached", "foreign.txt")
    (repo / "foreign.txt").unlink()
    return git(
        repo,
        "-c",
        "user.name=Mallory",
        "-c",
        "user.email=mallory@example.com",
        "commit-tree",
        "-m",
        "a commit nobody reviewed",
        tree,
    ).strip()


@pytest.mark.parametrize("code", ["0", "1"])
@pytest.mark.parametrize("what", ["MERGE_HEAD", "CHERRY_PICK_HEAD", "rebase-merge"])
def test_an_operation_a_batch_leaves_in_progress_is_ended(
    repo: Path, tmp_path: Path, what: str, code: str
) -> None:
    """A batch (passing, with commit; or failing) adds app/mul.py and leaves
    git's state of an operation in progress: a merge with a commit of its own
    choosing (``MERGE_HEAD``, with ``MERGE_MSG`` and ``MERGE_MODE``), a
    cherry-pick of that commit (``CHERRY_PICK_HEAD``), or a rebase (an empty
    ``rebase-merge/``). Before, it stayed, and a passing batch's run even
    completed: the user's next `git commit` was a merge with the batch's
    commit (its history in the user's branch) or took that commit's author,
    and every later `recovery run` refused to start. Now the state is removed
    before any git command of ours, the batch fails at the guard with its
    change quarantined, and the user's next commit is theirs alone."""
    value = "folder" if what == "rebase-merge" else foreign_commit(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "inprogress",
            action("leave", LEAVE_IN_PROGRESS, what, value, code),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    state = ("MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", what)
    assert not [name for name in state if (repo / ".git" / name).exists()]
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert not (repo / "app" / "mul.py").exists()
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    if code == "0":
        assert failure["step"] == "build.workspace_guard"
        assert "in progress was made or changed" in failure["error"]
    assert quarantine_refs(repo, "b1")
    status = git(repo, "status")
    assert "merging" not in status and "rebase" not in status
    assert "cherry-pick" not in status
    (repo / "user.txt").write_text("the user's next commit\n")
    git(repo, "add", "user.txt")
    git(repo, "commit", "-q", "-m", "the user's commit")
    assert git(repo, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:] == [head]
    assert "Mallory" not in git(repo, "log", "-1", "--format=%an %cn")
    # The workspace is free for the next run.
    again = run_cli("run", plan, cwd=repo, timeout=60)
    assert "in the middle of" not in again.stderr


# -- 16. a process a batch leaves running -----------------------------------------

LEAVE_RUNNING = """\
import os, pathlib, subprocess, sys, time
how, marker = sys.argv[1:]
pathlib.Path('app/mul.py').write_text('def mul(a, b):\\n    return a * b\\n')
later = '''
import os, pathlib, subprocess, sys, time
pathlib.Path(sys.argv[1] + '.pid').write_text(str(os.getpid()))
time.sleep(3)
subprocess.run(['git', 'config', 'core.fsmonitor', sys.argv[2]])
pathlib.Path('app/calc.py').write_text('BROKEN = True\\\\n')
'''
plant = [sys.executable, '-c', later, marker, 'touch ' + marker]
if how == 'background':
    subprocess.Popen(plant)
else:  # a daemon: a session of its own, its parent gone
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, plant)
        os._exit(0)
    os.wait()
while not pathlib.Path(marker + '.pid').exists():
    time.sleep(0.01)
if how == 'daemon-and-hang':
    time.sleep(60)
"""


@pytest.mark.parametrize("how", ["background", "daemon", "daemon-and-hang"])
def test_nothing_a_batch_leaves_running_outlives_its_step(
    repo: Path, tmp_path: Path, how: str
) -> None:
    """A batch's action adds app/mul.py and leaves a process running that,
    three seconds later, sets ``core.fsmonitor`` and breaks app/calc.py: in
    the background, or as a daemon in a session of its own (and then passes,
    or hangs until its timeout). Before, that process outlived the step: the
    run completed, then the fsmonitor ran on the user's next `git status`,
    and the broken file passed for the user's own edit. Now whatever a step
    leaves running is killed when the step ends."""
    marker = tmp_path / "planted"
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "leftover",
            action(
                "leave",
                LEAVE_RUNNING,
                how,
                str(marker),
                timeout_s=1 if "hang" in how else 60,
            ),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    pid = int(Path(f"{marker}.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped
    time.sleep(3.5)  # when it would have planted its setting
    assert git_rc(repo, "config", "core.fsmonitor") == 1
    subprocess.run(["git", "status"], cwd=repo, check=True, capture_output=True)
    assert not marker.exists()
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    if how == "daemon-and-hang":
        assert done.returncode == 3, done.stdout + done.stderr
        failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
        assert "timed out" in failure["error"]
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "app/mul.py" in git(repo, "show", "--name-only", "--format=", "HEAD")


# -- 17. what a batch changes inside a submodule ----------------------------------

LIB_X = "X = 1\n"
CHANGE_THE_SUBMODULE = """\
import pathlib, subprocess, sys
how, code = sys.argv[1:]
pathlib.Path('app/mul.py').write_text('def mul(a, b):\\n    return a * b\\n')
pathlib.Path('lib/x.py').write_text('X = "broken"\\n')
pathlib.Path('lib/new.py').write_text('NEW = 1\\n')
if how == 'commit':
    def git(*args):
        subprocess.run(['git', '-C', 'lib', '-c', 'user.name=b', '-c',
                        'user.email=b@example.com', *args], check=True)
    git('add', '-A')
    git('commit', '-q', '-m', 'the batch, inside the submodule')
sys.exit(int(code))
"""


def add_lib_with_file(repo: Path, tmp_path: Path) -> str:
    """Gives ``repo`` a submodule at ``lib`` holding x.py, committed; the
    user then edits x.py's neighbour. Returns the submodule's HEAD."""
    lib = tmp_path / "lib-origin"
    lib.mkdir()
    git(lib, "init", "-q")
    (lib / "x.py").write_text(LIB_X)
    (lib / "y.py").write_text("Y = 1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib")
    add = ("-c", "protocol.file.allow=always", "submodule", "add", "-q")
    git(repo, *add, str(lib), "lib")
    git(repo, "commit", "-q", "-m", "the lib submodule")
    (repo / "lib" / "y.py").write_text("Y = 'the user's edit'\n")
    return git(repo / "lib", "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("how", ["edit", "commit"])
def test_what_a_failing_batch_changes_inside_a_submodule_is_quarantined(
    repo: Path, tmp_path: Path, how: str
) -> None:
    """A failing batch breaks lib/x.py and adds lib/new.py inside the
    submodule at lib (and, in one case, commits them there). Before, the
    failure listed no file of the submodule, nothing of it was quarantined,
    and the broken file, the new one (and the submodule's moved HEAD) stayed.
    Now the submodule is a workspace of its own: its files are listed,
    kept under the same ref in its repository and put back, its HEAD too;
    the user's own edit in it stays."""
    lib_head = add_lib_with_file(repo, tmp_path)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("sub", action("change", CHANGE_THE_SUBMODULE, how, "1")),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    lib = repo / "lib"
    assert (lib / "x.py").read_text() == LIB_X
    assert not (lib / "new.py").exists()
    assert (lib / "y.py").read_text() == "Y = 'the user's edit'\n"
    assert git(lib, "rev-parse", "HEAD").strip() == lib_head
    assert not (repo / "app" / "mul.py").exists()
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert {"app/mul.py", "lib/new.py", "lib/x.py"} <= set(failure["changed_files"])
    ref = failure["quarantine_ref"]
    assert git(lib, "show", f"{ref}:x.py") == 'X = "broken"\n'
    assert git(lib, "show", f"{ref}:new.py") == "NEW = 1\n"
    # Shown and brought back with the rest, the submodule's part too.
    shown = run_cli("show", "latest", "b1", cwd=repo)
    assert shown.returncode == 0, shown.stderr
    for path in ("app/mul.py", "lib/x.py", "lib/new.py"):
        assert f"+++ b/{path}" in shown.stdout, shown.stdout
    done = run_cli("restore", "latest", "b1", cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (lib / "x.py").read_text() == 'X = "broken"\n'
    assert (lib / "new.py").read_text() == "NEW = 1\n"
    assert (repo / "app" / "mul.py").exists()
    assert (lib / "y.py").read_text() == "Y = 'the user's edit'\n"


def test_a_passing_batchs_change_inside_a_submodule_is_left_uncommitted_there(
    repo: Path, tmp_path: Path
) -> None:
    """A passing batch with commit adds app/mul.py and changes files inside
    the submodule at lib. Its commit holds app/mul.py and nothing of the
    submodule (neither its files nor a moved submodule commit); the
    submodule's change stays in its working tree, for the user to commit
    there."""
    lib_head = add_lib_with_file(repo, tmp_path)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "subpass",
            action("change", CHANGE_THE_SUBMODULE, "edit", "0"),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [
        "app/mul.py"
    ]
    lib = repo / "lib"
    assert (lib / "x.py").read_text() == 'X = "broken"\n'
    assert (lib / "new.py").exists()
    assert git(lib, "rev-parse", "HEAD").strip() == lib_head


def test_a_restore_refused_inside_a_submodule_writes_nothing_anywhere(
    repo: Path, tmp_path: Path
) -> None:
    """After a failing batch changed app/mul.py and lib/x.py, the user edits
    lib/x.py. `recovery restore` refuses, naming lib/x.py, and writes nothing:
    not the superproject's part either."""
    add_lib_with_file(repo, tmp_path)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "subrefused", action("change", CHANGE_THE_SUBMODULE, "edit", "1")
        ),
    )
    assert run_cli("run", plan, cwd=repo, timeout=60).returncode == 3
    (repo / "lib" / "x.py").write_text("X = 'the user's own'\n")
    done = run_cli("restore", "latest", "b1", cwd=repo)
    assert done.returncode != 0
    assert "lib/x.py" in done.stderr and "nothing was changed" in done.stderr
    assert not (repo / "app" / "mul.py").exists()
    assert not (repo / "lib" / "new.py").exists()
    assert (repo / "lib" / "x.py").read_text() == "X = 'the user's own'\n"


# -- 18. the settings of the repository's other worktrees --------------------------

PLANT_IN_WORKTREE = """\
import pathlib, subprocess, sys
how, fsmonitor, code = sys.argv[1:]
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
if how == 'config':
    pathlib.Path('.git/worktrees/other/config.worktree').write_text(
        '[core]\\n\\tfsmonitor = ' + fsmonitor + '\\n'
    )
else:  # the other worktree's .git file sent to a repository of the batch's
    evil = pathlib.Path('../evil').resolve()
    subprocess.run(['git', 'init', '-q', str(evil)], check=True)
    subprocess.run(['git', '-C', str(evil), 'config', 'core.fsmonitor', fsmonitor],
                   check=True)
    other = pathlib.Path('.git/worktrees/other/gitdir').read_text().strip()
    pathlib.Path(other).write_text('gitdir: ' + str(evil / '.git') + '\\n')
sys.exit(int(code))
"""


@pytest.mark.parametrize("code", ["1", "0"])
@pytest.mark.parametrize("how", ["config", "dotgit"])
def test_settings_planted_for_another_worktree_never_run(
    repo: Path, tmp_path: Path, how: str, code: str
) -> None:
    """The user has a second worktree of the repository (and per-worktree
    settings on). A batch (failing or passing) plants a ``core.fsmonitor`` in
    that worktree's ``config.worktree``, or points its ``.git`` file at a
    repository of its own that sets one. Before, it stayed, and it ran on the
    user's next `git status` in that worktree. Now it is put back, and the
    batch fails saying so."""
    git(repo, "config", "extensions.worktreeConfig", "true")
    other = tmp_path / "other"
    git(repo, "worktree", "add", "-q", "-b", "other", str(other))
    marker = tmp_path / "planted"
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "worktree",
            action("plant", PLANT_IN_WORKTREE, how, touch_command(marker), code),
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    subprocess.run(["git", "status"], cwd=other, check=True, capture_output=True)
    assert not marker.exists()
    assert not (repo / ".git" / "worktrees" / "other" / "config.worktree").exists()
    assert git(other, "rev-parse", "--git-common-dir").strip() == str(
        (repo / ".git").resolve()
    )
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    if code == "0":
        assert failure["step"] == "build.workspace_guard"
        assert "the git settings of the worktree other were changed" in failure["error"]


# -- 19. the user's staged changes restaged or unstaged by a batch -----------------

STAGED_LINE = "# staged by the user\n"
UNSTAGED_LINE = "# not staged yet\n"

RESTAGE = """\
import pathlib, subprocess, sys
how, code = sys.argv[1:]
pathlib.Path('app/mul.py').write_text('def mul(a, b):\\n    return a * b\\n')
subprocess.run(['git', *how.split()], check=True)
sys.exit(int(code))
"""


@pytest.mark.parametrize("code", ["0", "1"])
@pytest.mark.parametrize("how", ["add -A", "reset -q", "rm -q -f --cached app/calc.py"])
def test_what_the_user_staged_stays_staged(
    repo: Path, tmp_path: Path, how: str, code: str
) -> None:
    """The user staged one line of app/calc.py and not the next. A batch
    (passing or failing) runs `git add -A`, `git reset` or `git rm --cached`.
    Before, a passing batch left the user's index as it had made it: the
    staged line was unstaged (or the unstaged one staged with the batch's own
    files), and what the user had chosen to commit was gone from the index.
    Now the index is put back as the user had it, and the batch fails at the
    guard, saying so."""
    calc = repo / "app" / "calc.py"
    calc.write_text(APP_CALC + STAGED_LINE)
    git(repo, "add", "app/calc.py")
    calc.write_text(APP_CALC + STAGED_LINE + UNSTAGED_LINE)
    staged = git(repo, "diff", "--cached")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("restage", action("stage", RESTAGE, how, code)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert git(repo, "diff", "--cached") == staged
    assert calc.read_text() == APP_CALC + STAGED_LINE + UNSTAGED_LINE
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    if code == "0":
        assert failure["step"] == "build.workspace_guard"
        assert "the user's index was changed" in failure["error"]
    assert not (repo / "app" / "mul.py").exists()  # quarantined


def test_a_batch_that_stages_its_change_is_not_committed_with_the_users(
    repo: Path, tmp_path: Path
) -> None:
    """A passing batch with commit_strategy 'commit' appends a function to
    app/calc.py and runs `git add -A`, staging the user's own edit in
    app/other.py too. Nothing is committed, the user's index is as they had
    it, and both edits stay in the working tree until the operator decides."""
    other = repo / "app" / "other.py"
    other.write_text("OTHER = 1\n")
    before = head(repo)
    add_all = f"{APPEND_MUL}; import subprocess; subprocess.run(['git', 'add', '-A'])"
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "stage-all", action("generate", add_all), commit_strategy="commit"
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert head(repo) == before
    assert git(repo, "diff", "--cached") == ""
    assert other.read_text() == "OTHER = 1\n"
    assert (repo / "app" / "calc.py").read_text() == APP_CALC


# -- 20. the HEAD of another worktree moved by a batch ----------------------------

MOVE_OTHER_HEAD = """\
import pathlib, subprocess, sys
name, target, code = sys.argv[1:]
pathlib.Path('app/mul.py').write_text('def mul(a, b):\\n    return a * b\\n')
if target.startswith('refs/'):
    subprocess.run(['git', 'symbolic-ref', name, target], check=True)
else:
    subprocess.run(['git', 'update-ref', '--no-deref', name, target], check=True)
sys.exit(int(code))
"""


@pytest.mark.parametrize("code", ["0", "1"])
@pytest.mark.parametrize("where", ["main", "linked"])
def test_the_head_of_another_worktree_stays(
    repo: Path, tmp_path: Path, where: str, code: str
) -> None:
    """The user has a second worktree of the repository, on the branch
    ``other``. A batch run in one worktree (passing or failing) points the
    other worktree's HEAD at the branch ``main`` (so that the user's next
    commit there lands on main), or detaches it at a commit of its own.
    Before, the other worktree stayed moved. Now its HEAD is put back, and
    the batch fails saying so."""
    linked = tmp_path / "other"
    git(repo, "worktree", "add", "-q", "-b", "other", str(linked))
    runs_in, other = (repo, linked) if where == "main" else (linked, repo)
    name = "worktrees/other/HEAD" if where == "main" else "main-worktree/HEAD"
    target = "refs/heads/main" if where == "main" else foreign_commit(repo)
    before = git(other, "symbolic-ref", "HEAD")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("move", action("move", MOVE_OTHER_HEAD, name, target, code)),
    )
    done = run_cli("run", plan, cwd=runs_in, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert git(other, "symbolic-ref", "HEAD") == before
    assert not (runs_in / "app" / "mul.py").exists()
    failure = cli_json("status", cwd=runs_in)["batches"][0]["failure"]
    if code == "0":
        assert failure["step"] == "build.workspace_guard"
        assert f"the HEAD of another worktree ({name}) moved" in failure["error"]


# -- 21. a remote planted in git's older remote files ------------------------------

PLANT_REMOTE = """\
import pathlib, sys
folder, url, code = sys.argv[1:]
pathlib.Path('app/mul.py').write_text('def mul(a, b):\\n    return a * b\\n')
remotes = pathlib.Path('.git', folder)
remotes.mkdir(exist_ok=True)
if folder == 'remotes':
    (remotes / 'origin').write_text(f'URL: {url}\\nPush: refs/heads/main:refs/heads/stolen\\n')
else:
    (remotes / 'origin').write_text(f'{url}#main\\n')
sys.exit(int(code))
"""


@pytest.mark.parametrize("code", ["0", "1"])
@pytest.mark.parametrize("folder", ["remotes", "branches"])
def test_a_remote_planted_in_the_older_remote_files_never_gets_a_push(
    repo: Path, tmp_path: Path, folder: str, code: str
) -> None:
    """The user's repository has no remote yet. A batch (passing or failing)
    names one, ``origin``, in ``.git/remotes/`` or ``.git/branches/``, as git
    did before remotes were settings (git still reads them). Before, it
    stayed, and the user's next `git push` sent their branch to the batch's
    repository. Now it is removed, and the batch fails saying so."""
    evil = tmp_path / "evil.git"
    subprocess.run(["git", "init", "-q", "--bare", str(evil)], check=True)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "remote", action("plant", PLANT_REMOTE, folder, str(evil), code)
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert not (repo / ".git" / folder / "origin").exists()
    assert git_rc(repo, "push", "origin", "HEAD:refs/heads/stolen") != 0
    assert git(evil, "for-each-ref") == ""
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    if code == "0":
        assert failure["step"] == "build.workspace_guard"
        assert "remotes named in remotes/ or branches/" in failure["error"]


# -- 22. a repository with no commit inside the work tree --------------------------

INIT_THEN_BREAK = """\
import pathlib, subprocess, sys
subprocess.run(['git', 'init', '-q', 'crate'], check=True)
pathlib.Path('crate/lib.rs').write_text('fn main() {}\\n')
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", ["1", "0"])
def test_a_repository_with_no_commit_a_batch_makes_is_taken_out(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """A batch (failing, or passing) scaffolds a folder with ``git init`` and
    no commit (as ``cargo new`` does outside a repository) and breaks
    app/calc.py. Before, git could not stage the new repository, so no tree
    could be made: the manual-git strategy raised, nothing was quarantined
    and the broken line stayed in the working tree. Then the repository with
    no commit was left out of the trees (like an ignored folder), and stayed
    in the working tree after the quarantine. Now it is moved whole into the
    store folder (section 23), the batch fails saying so, and the rest is
    quarantined and put back."""
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("unborn", action("scaffold", INIT_THEN_BREAK, code)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert not (repo / "crate").exists()
    (kept,) = (repo / ".recovery" / "repositories").glob("*/crate")
    assert (kept / "lib.rs").read_text() == "fn main() {}\n"
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert "a git repository was made at crate " in failure["error"]
    assert failure["changed_files"] == ["app/calc.py"]
    (quarantine,) = quarantine_refs(repo, "b1")
    assert "BROKEN = True" in git(repo, "show", f"{quarantine}:app/calc.py")


COMMIT_IN_SCRATCH = """\
import pathlib, subprocess, sys
git = ['git', '-C', 'scratch', '-c', 'user.name=b', '-c', 'user.email=b@example.com']
subprocess.run([*git, 'add', '-A'], check=True)
subprocess.run([*git, 'commit', '-q', '-m', 'batch'], check=True)
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(1)
"""


@pytest.mark.parametrize(
    "code", [BREAK_CALC, COMMIT_IN_SCRATCH], ids=["break", "commit"]
)
def test_the_users_repository_with_no_commit_does_not_stop_a_run(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """The user keeps a scratch repository with no commit yet inside the work
    tree (``git init scratch``). Before, every run stopped at its first
    snapshot (exit 2, "git add failed"). Now it runs; a failing batch is
    quarantined, and the scratch repository and its file stay as they were.
    So when the batch commits in it: it was the user's at the snapshot, so it
    is never taken out as a repository the batch made (section 23)."""
    scratch = repo / "scratch"
    subprocess.run(["git", "init", "-q", str(scratch)], check=True)
    (scratch / "notes.txt").write_text("the user's notes\n")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("scratch", action("batch", code)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert (scratch / "notes.txt").read_text() == "the user's notes\n"
    assert (scratch / ".git" / "HEAD").is_file()
    assert not (repo / ".recovery" / "repositories").exists()
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert failure["changed_files"][0] == "app/calc.py"


@pytest.mark.parametrize(
    "language", [{"LANGUAGE": "de"}, {"LC_ALL": "C.UTF-8", "LANGUAGE": "de"}]
)
def test_git_in_the_users_language_changes_nothing(
    repo: Path, tmp_path: Path, language: dict[str, str]
) -> None:
    """The user reads git in German (``LANGUAGE=de``). The repository with no
    commit of the test above, and a failing batch. Before, git's message
    naming that repository was German, was not recognised, and the run
    stopped at its first snapshot (exit 2). Now git's messages reach us
    untranslated, whatever the user's language."""
    subprocess.run(["git", "init", "-q", str(repo / "scratch")], check=True)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("german", action("break", BREAK_CALC)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60, env=language)
    assert done.returncode == 3, done.stdout + done.stderr
    assert (repo / "app" / "calc.py").read_text() == APP_CALC


# -- 23. a repository with commits made inside the work tree by a batch -------------

NESTED_REPOSITORY = """\
import pathlib, subprocess, sys
fsmonitor, code = sys.argv[1], int(sys.argv[2])
nested = pathlib.Path('vendor/tool')
nested.mkdir(parents=True)
subprocess.run(['git', 'init', '-q', str(nested)], check=True)
(nested / 'tool.py').write_text('TOOL = 1\\n')
git = ['git', '-C', str(nested), '-c', 'user.name=b', '-c', 'user.email=b@example.com']
subprocess.run([*git, 'add', 'tool.py'], check=True)
subprocess.run([*git, 'commit', '-q', '-m', 'tool'], check=True)
subprocess.run([*git, 'config', 'core.fsmonitor', fsmonitor], check=True)
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(code)
"""


@pytest.mark.parametrize("code", ["1", "0"])
def test_a_repository_a_batch_makes_in_the_work_tree_is_taken_out(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """A batch (failing, or passing with ``commit_strategy: commit``) makes a
    repository with a commit at ``vendor/tool`` and sets ``core.fsmonitor`` in
    its own settings. Before, it stayed in the working tree (git sees it as one
    entry, so the restore could not remove it, and a passing batch committed
    it), and once the user had run `git add -A`, their `git status` looked
    into it and ran the planted fsmonitor. Now the batch fails saying so, and
    the repository is moved whole into the store folder (nothing of it is
    lost): the planted command never runs, and nothing is committed."""
    before = head(repo)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "nested",
            action(
                "vendor", NESTED_REPOSITORY, touch_command(tmp_path / "PWNED_x"), code
            ),
            commit_strategy="commit",
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert head(repo) == before
    assert not (repo / "vendor").exists()
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert "a git repository was made at vendor/tool" in failure["error"]
    (kept,) = (repo / ".recovery" / "repositories").glob("*/vendor/tool")
    assert (kept / "tool.py").read_text() == "TOOL = 1\n"
    assert str(kept.relative_to(repo)) in failure["error"]
    git(repo, "add", "-A")
    git(repo, "status")
    assert pwned(tmp_path) == []


# -- 24. a name that git would take for the user's branch --------------------------

SHADOW_BRANCH = """\
import pathlib, subprocess, sys
branch, how, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
def git(*args):
    return subprocess.run(['git', *args], capture_output=True, text=True, check=True).stdout.strip()
tree = git('rev-parse', 'HEAD^{tree}')
evil = git('-c', 'user.name=b', '-c', 'user.email=b@example.com',
           'commit-tree', tree, '-p', 'HEAD', '-m', 'the batch\\'s')
if how == 'tag':
    git('tag', branch, evil)
elif how == 'ref':
    git('update-ref', f'refs/{branch}', evil)
    git('pack-refs', '--all')  # into packed-refs, where no loose file shows it
else:
    shadow = pathlib.Path(git('rev-parse', '--git-dir'), branch)
    shadow.parent.mkdir(exist_ok=True)
    shadow.write_text(evil + '\\n')
sys.exit(code)
"""


@pytest.mark.parametrize("remote", [False, True], ids=["branch", "remote"])
@pytest.mark.parametrize(
    ("how", "code"), [("tag", "0"), ("ref", "0"), ("file", "0"), ("file", "1")]
)
def test_a_name_git_would_take_for_the_users_branch_is_removed(
    repo: Path, tmp_path: Path, how: str, code: str, remote: bool
) -> None:
    """A batch (passing, or failing) makes a commit of its own and gives it
    the name of the user's branch elsewhere: a tag ``main``, a ref
    ``refs/main`` (packed) or a file ``.git/main``; or the name of a
    remote-tracking branch: a tag ``origin/main``, a ref ``refs/origin/main``
    or a file ``.git/origin/main``. Git takes each before ``refs/heads/main``
    (``refs/remotes/origin/main``), and only warns that the name is
    ambiguous. Before, each stayed, and the user's next `git merge main`,
    `git reset --hard main` or `git rebase origin/main` took the batch's
    commit. Now each is removed, and the batch fails saying so."""
    name = git(repo, "symbolic-ref", "--short", "HEAD").strip()
    if remote:
        git(tmp_path, "init", "-q", "--bare", "origin.git")
        git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
        git(repo, "push", "-q", "origin", f"HEAD:{name}")
        git(repo, "fetch", "-q", "origin")
        name = f"origin/{name}"
    before = git(repo, "rev-parse", name).strip()
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("shadow", action("shadow", SHADOW_BRANCH, name, how, code)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    resolved = subprocess.run(
        ["git", "rev-parse", name], cwd=repo, capture_output=True, text=True
    )
    assert (resolved.stdout.strip(), resolved.stderr) == (before, "")
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    taken_for = f"the branch {name}"
    if remote:
        taken_for = "the remote-tracking branch" + (
            "es of origin" if how == "file" else f" {name}"
        )
    assert f"which git would take for {taken_for} (removed)" in failure["error"]


# -- 25. the user's other repositories inside the work tree ------------------------

IN_NESTED = """\
import pathlib, subprocess, sys
folder, fsmonitor, code = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
subprocess.run(['git', '-C', str(folder), 'config', 'core.fsmonitor', fsmonitor], check=True)
(folder / 'notes.txt').unlink()
(folder / 'new.txt').write_text("the batch's\\n")
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
sys.exit(code)
"""


@pytest.mark.parametrize("code", ["1", "0"])
@pytest.mark.parametrize("kind", ["embedded", "untracked", "no-commit"])
def test_the_users_other_repositories_are_guarded_like_submodules(
    repo: Path, tmp_path: Path, kind: str, code: str
) -> None:
    """The user keeps another repository inside the work tree, with a file
    in it: ``lib``, committed as a gitlink without a ``.gitmodules`` entry
    (``git add lib``), or ``lib`` with a commit but never added (a clone
    kept beside the code), or ``scratch``, with no commit yet (section 22). A
    batch (failing or passing) deletes that file, adds one, and sets
    ``core.fsmonitor`` in that repository's settings. Before, no snapshot
    held their files, so the user's file was lost, and the planted command
    ran on the user's next `git status` (in the work tree, which looks into
    every gitlink, or in scratch). Now each is a workspace of its own, like
    a submodule: the batch fails saying so, and the settings, and (as the
    failure is quarantined) the files, are put back."""
    name = "scratch" if kind == "no-commit" else "lib"
    nested = repo / name
    git(repo, "init", "-q", name)
    (nested / "notes.txt").write_text("the user's notes\n")
    if kind != "no-commit":
        git(nested, "add", "notes.txt")
        git(nested, "commit", "-q", "-m", "lib")
    if kind == "embedded":
        git(repo, "add", name)
        git(repo, "commit", "-q", "-m", "the lib repository, embedded")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "nested",
            action("edit", IN_NESTED, name, touch_command(tmp_path / "PWNED_x"), code),
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert (nested / "notes.txt").read_text() == "the user's notes\n"
    assert not (nested / "new.txt").exists()
    git(repo, "status")
    git(nested, "status")
    assert pwned(tmp_path) == []
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert (
        f"in the repository at {name}: the repository's git config was changed"
        in (failure["error"])
    )


def test_a_worktree_of_the_same_repository_inside_the_work_tree_is_no_submodule(
    repo: Path, tmp_path: Path
) -> None:
    """The user keeps a linked worktree of the same repository inside the
    work tree (``git worktree add .worktrees/feature``, not ignored): git
    stages it as an embedded repository, but it is no repository of its
    own. Taken for one, its snapshots, quarantine and restore would use the
    same refs as the work tree's own, and the quarantine would take the
    other's faulty tree for its own. It is left to the guard of the other
    worktrees (section 18): the failing batch's change is quarantined and
    put back as with no worktree there, and the worktree's HEAD stays."""
    git(repo, "worktree", "add", "-q", ".worktrees/feature")
    feature_head = git(repo / ".worktrees" / "feature", "rev-parse", "HEAD")
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("worktree", action("break", BREAK_CALC)),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert failure["changed_files"] == ["app/calc.py"]
    (quarantine,) = quarantine_refs(repo, "b1")
    assert "BROKEN = True" in git(repo, "show", f"{quarantine}:app/calc.py")
    assert git(repo / ".worktrees" / "feature", "rev-parse", "HEAD") == feature_head


# -- 26. the remote-tracking branches -------------------------------------------

FORGE_TRACKING = """\
import pathlib, subprocess, sys
code = int(sys.argv[1])
def git(*args):
    return subprocess.run(['git', *args], capture_output=True, text=True, check=True).stdout.strip()
pathlib.Path('app/mul.py').write_text('def mul(a, b):\\n    return a * b\\n')
tree = git('rev-parse', 'HEAD^{tree}')
evil = git('-c', 'user.name=b', '-c', 'user.email=b@example.com',
           'commit-tree', tree, '-p', 'origin/main', '-m', 'the batch\\'s')
git('update-ref', 'refs/remotes/origin/main', evil)
git('update-ref', 'refs/remotes/origin/feature', evil)
git('symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/feature')
sys.exit(code)
"""


def tracking_repo(repo: Path, tmp_path: Path) -> dict[str, str]:
    """Gives ``repo`` a remote ``origin`` with its branch ``main`` fetched (and
    ``origin/HEAD`` naming it); returns what each of them resolves to."""
    git(repo, "branch", "-M", "main")
    git(tmp_path, "init", "-q", "--bare", "origin.git")
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "fetch", "-q", "origin")
    git(repo, "remote", "set-head", "origin", "main")
    names = ("origin/main", "origin/HEAD")
    return {name: git(repo, "rev-parse", name).strip() for name in names}


@pytest.mark.parametrize("code", ["0", "1"])
def test_a_remote_tracking_branch_a_batch_forges_is_put_back(
    repo: Path, tmp_path: Path, code: str
) -> None:
    """A batch (passing with commit_strategy commit, or failing) makes a commit
    of its own on top of ``origin/main`` and points ``origin/main`` at it,
    makes ``origin/feature`` there and turns ``origin/HEAD`` to it. Before,
    all of it stayed: the user's next `git rebase origin/main` (or `git
    switch feature`, which starts a branch from ``origin/feature``) took the
    batch's commit into their branch, and the push after it sent it to the
    remote. Now each is put back
    as the user had it (origin/HEAD still names origin/main), the made branch
    is removed, and the batch fails at the guard saying so."""
    before = tracking_repo(repo, tmp_path)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "forge", action("forge", FORGE_TRACKING, code), commit_strategy="commit"
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    now = {name: git(repo, "rev-parse", name).strip() for name in before}
    assert now == before
    symref = git(repo, "symbolic-ref", "refs/remotes/origin/HEAD").strip()
    assert symref == "refs/remotes/origin/main"
    assert git_rc(repo, "rev-parse", "--verify", "-q", "origin/feature") == 1
    assert not (repo / "app" / "mul.py").exists()
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    step = "build.workspace_guard" if code == "0" else "build.forge"
    assert failure["step"] == step
    for said in (
        "remote-tracking branch refs/remotes/origin/main was rewritten or deleted",
        "remote-tracking branch refs/remotes/origin/feature was created (removed)",
    ):
        assert said in failure["error"], failure["error"]


# -- 27. the library's own store wiped by a batch ---------------------------------

WIPE_STORE = """\
import shutil, subprocess, sys
how, code = sys.argv[1], int(sys.argv[2])
if how == 'clean':
    subprocess.run(['git', 'clean', '-fdxq'], check=True)
else:
    shutil.rmtree('.recovery')
sys.exit(code)
"""


def committed_then(tmp_path: Path, second: dict[str, Any]) -> Path:
    """A plan whose batch b1 adds app/mul.py and is committed, and whose batch
    b2 does ``second``."""
    plan = {
        "plan_id": "two",
        "batches": [
            {
                "batch_id": "b1",
                "description": "adds mul",
                "actions": [action("mul", f"open('app/mul.py', 'w').write({MUL!r})")],
                "commit_strategy": "commit",
            },
            {
                "batch_id": "b2",
                "description": "then this",
                "actions": [second],
                "commit_strategy": "commit",
            },
        ],
    }
    return write_plan(tmp_path / "plan.json", plan)


@pytest.mark.parametrize(("how", "code"), [("clean", "1"), ("clean", "0"), ("rm", "0")])
def test_a_batch_that_wipes_the_store_loses_no_event(
    repo: Path, tmp_path: Path, how: str, code: str
) -> None:
    """A batch cleans the working tree as build scripts do (`git clean -fdx`,
    which removes ignored files, .recovery/ among them) or removes .recovery/
    itself, after an earlier batch was verified and committed. Before, the
    event store went with it: every event of every run was lost, `recovery
    status` found no run, and the decide commands printed pointed at nothing.
    Now the store's files are put back as they were, with every event (ours
    written since too), and the batch fails at the guard saying so; the
    history verifies, and the second names the store's files were given are
    gone with the runner."""
    plan = committed_then(tmp_path, action("wipe", WIPE_STORE, how, code))
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    status = cli_json("status", cwd=repo)
    assert [b["status"] for b in status["batches"]] == ["verified", "failed"]
    failure = status["batches"][1]["failure"]
    assert failure["step"] == ("build.workspace_guard" if code == "0" else "build.wipe")
    assert "the event store" in failure["error"], failure["error"]
    assert (repo / ".recovery" / ".gitignore").is_file()
    assert not (repo / ".git" / "recovery-store").exists()  # let go with the lock
    verified = run_cli("verify", cwd=repo, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    decided = run_cli("decide", "latest", "b2", "skip", cwd=repo, timeout=60)
    assert decided.returncode == 0, decided.stdout + decided.stderr
    resumed = run_cli("resume", "latest", cwd=repo, timeout=60)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (repo / "app" / "mul.py").read_text() == MUL


@pytest.mark.parametrize("code", ["1", "0"])
def test_a_batch_that_cleans_the_work_tree_loses_no_line_of_the_plan_file(
    repo: Path, code: str
) -> None:
    """The plan file lives in the workspace, untracked (as a pipeline writes
    it). A batch runs `git clean -fdx`. Before, the plan file went with it:
    the plan is left out of every snapshot (a batch's change to it is never
    the batch's), so no restore put it back, and each later status write
    found no file. Now it is put back as it was at the snapshot, the user's
    own keys too, and the status keys are written again."""
    plan_data = one_batch_plan("clean", action("wipe", WIPE_STORE, "clean", code))
    plan_data["owner"] = "the user's own key"
    plan = write_plan(repo / "plan.json", plan_data)
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    written = json.loads(plan.read_text())
    assert written["owner"] == "the user's own key"
    (batch,) = written["batches"]
    assert (batch["batch_id"], batch["status"], batch["verified"]) == (
        "b1",
        "failed",
        False,
    )
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert f"{plan} was removed (put back)" in failure["error"], failure["error"]


WIPE_AND_KILL = """\
import os, pathlib, shutil, signal, time
shutil.rmtree('.recovery')
pid = os.getppid()  # up to the runner, past whatever runs the action
while b'recovery_adapters.cli' not in pathlib.Path(f'/proc/{pid}/cmdline').read_bytes():
    pid = int(pathlib.Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()[1])
os.kill(pid, signal.SIGKILL)
time.sleep(1)
"""


def test_a_store_removed_as_its_runner_is_killed_is_found_again(
    repo: Path, tmp_path: Path
) -> None:
    """A batch removes .recovery/ and its runner is killed (kill -9, the OOM
    killer) before it could put the store back: the store's files are left
    under their second names only, in .git/recovery-store/. Before, there
    was no store at all. Now the next command that looks for the store links
    it back, every event there (the last ones were still in the store's
    write-ahead log), and the history verifies."""
    plan = committed_then(tmp_path, action("wipe", WIPE_AND_KILL))
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    assert not (repo / ".recovery" / "events.sqlite3").exists()
    status = cli_json("status", cwd=repo)
    assert [b["batch_id"] for b in status["batches"]] == ["b1", "b2"]
    assert status["batches"][0]["status"] == "verified"
    assert status["batches"][0]["commit"], status["batches"][0]
    assert not (repo / ".git" / "recovery-store").exists()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    verified = run_cli("verify", cwd=repo, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- 28. the git folder moved or removed by a batch -------------------------------

MOVE_GIT = """\
import pathlib, shutil, subprocess, sys
how, code = sys.argv[1], int(sys.argv[2])
calc = pathlib.Path('app/calc.py')
calc.write_text(calc.read_text() + 'BROKEN = True\\n')
if how == 'remove':
    shutil.rmtree('.git')
else:
    pathlib.Path('.git').rename('.git-old')
if how == 'anew':
    subprocess.run(['git', 'init', '-q'], check=True)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("how", "code"), [("move", "1"), ("move", "0"), ("anew", "1"), ("anew", "0")]
)
def test_a_git_folder_a_batch_moves_aside_is_put_back(
    repo: Path, tmp_path: Path, how: str, code: str
) -> None:
    """A batch (failing, or passing with commit_strategy commit) edits
    app/calc.py and renames .git to .git-old (and with ``anew``, makes a new
    repository with `git init`, as a scaffold does). Before, the guard wrote
    the kept settings and hooks into a .git of its own making (or the
    batch's), nothing was quarantined, the broken edit stayed, and the user's
    repository was left at .git-old behind that stub. Now the git folder is
    found by what it is (the same folder, renamed) and put back first; the
    batch's new repository goes to .recovery/repositories/; the attempt is
    quarantined as any other and the batch fails saying so."""
    before = head(repo)
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan(
            "gitdir", action("move", MOVE_GIT, how, code), commit_strategy="commit"
        ),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert not (repo / ".git-old").exists()
    assert head(repo) == before
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    (quarantine,) = quarantine_refs(repo, "b1")
    assert "BROKEN = True" in git(repo, "show", f"{quarantine}:app/calc.py")
    failure = cli_json("status", cwd=repo)["batches"][0]["failure"]
    assert "the repository's git folder was moved to .git-old" in failure["error"]
    if how == "anew":
        taken = list((repo / ".recovery" / "repositories").glob("*/.git"))
        assert taken, failure["error"]
    assert git(repo, "status", "--porcelain") == ""


def test_a_git_folder_a_batch_removes_is_said_and_never_made_anew(
    repo: Path, tmp_path: Path
) -> None:
    """A batch removes .git (`rm -rf .git`, as a script that starts a
    repository anew does). Nothing can bring the history back, but nothing of
    ours may make it worse or hide it: before, the guard wrote a .git of its
    own (settings, hooks, info/ only), which git then took for a broken
    repository, and the failure spoke of a git error of the strategy's. Now
    no git folder is made, the run halts (exit 3) and its failure says the
    repository's git folder was removed."""
    plan = write_plan(
        tmp_path / "plan.json",
        one_batch_plan("gitdir", action("remove", MOVE_GIT, "remove", "1")),
    )
    done = run_cli("run", plan, cwd=repo, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert not (repo / ".git").exists()
    assert "the repository's git folder was removed" in done.stderr, done.stderr
