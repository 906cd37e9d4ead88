"""``recovery show`` and ``recovery restore`` through the real command: a failed
attempt's quarantined change as a diff, and brought back into the working tree
as ``git apply`` would (the user's other files and index untouched; refused,
with nothing changed, over the user's own uncommitted edits to the same files
or while a runner holds the workspace)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import (
    BUGGY_CALC,
    FIXED_CALC,
    cli_json,
    git,
    make_repo,
    python_step,
    run_cli,
    unit_tests_step,
    waiting_runner,
    write_plan,
)

BINARY = b"\x00\x01\xfe\xffGIF89a\x00binary\n\x00"
FAULTY_BINARY = b"\x00\x02\xfe\xffGIF89a\x00changed\x00\r\n"
ONE = "X = 1  # the faulty new module\n"

# The batch's action: a new file, a modified one, a binary one changed and a
# file removed; attempt 2 writes other content (to tell the attempts apart).
ACTION_CODE = f"""\
import os, pathlib
attempt = int(os.environ['RECOVERY_ATTEMPT'])
pathlib.Path('app/one.py').write_text({ONE!r} + '# attempt %d\\n' % attempt)
pathlib.Path('app/calc.py').write_text({BUGGY_CALC!r})
pathlib.Path('app/data.bin').write_bytes({FAULTY_BINARY!r})
os.remove('app/old.txt')
"""


def _workspace(repo: Path) -> None:
    """The repository with a binary file and a file the batch removes."""
    (repo / "app" / "data.bin").write_bytes(BINARY)
    (repo / "app" / "old.txt").write_text("old\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "show-restore",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [
                        {"name": "generate", "run": [sys.executable, "-c", ACTION_CODE]}
                    ],
                    "validation": [
                        {"name": "syntax", "kind": "syntax"},
                        python_step("checks", "raise SystemExit('the check fails')"),
                    ],
                },
                {
                    "batch_id": "b2",
                    "actions": [],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                },
            ],
        },
    )


def _halted(repo: Path, *args: str) -> dict[str, Any]:
    """Runs the plan to its halt at b1; the run's status."""
    _workspace(repo)
    done = run_cli("run", "plan.json", *args, cwd=repo)
    assert done.returncode == 3, done.stderr
    status: dict[str, Any] = cli_json("status", cwd=repo)
    assert status["state"] == "halted"
    return status


def _quarantine_ref(status: dict[str, Any]) -> str:
    ref: str = status["batches"][0]["failure"]["quarantine_ref"]
    assert ref.endswith("/b1/1/quarantine")
    return ref


def _kept(repo: Path, ref: str, path: str) -> bytes:
    """A file's content in the quarantine's tree."""
    done = subprocess.run(
        ["git", "cat-file", "blob", f"{ref}:{path}"],
        cwd=repo,
        capture_output=True,
        check=True,
    )
    return done.stdout


def _snapshot(repo: Path) -> dict[str, bytes]:
    """Every file of the working tree (less .git and .recovery), by path."""
    found: dict[str, bytes] = {}
    for path in sorted(repo.rglob("*")):
        relative = path.relative_to(repo).as_posix()
        if path.is_file() and not relative.startswith((".git/", ".recovery/")):
            found[relative] = path.read_bytes()
    return found


def _index(repo: Path) -> str:
    return git(repo, "ls-files", "--stage")


CHANGED = ["app/calc.py", "app/data.bin", "app/old.txt", "app/one.py"]


def test_show_prints_the_faulty_change_as_a_diff(repo: Path) -> None:
    """``show`` (default attempt: the latest failed one) prints the change from
    the attempt's baseline to its quarantine: the files, then the diff with
    the faulty lines; it changes nothing."""
    status = _halted(repo)
    ref = _quarantine_ref(status)
    before = _snapshot(repo)
    done = run_cli("show", "latest", "b1", cwd=repo)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert ref in out.splitlines()[0]
    assert status["batches"][0]["baseline"][:12] in out.splitlines()[0]
    for path in CHANGED:
        assert f"diff --git a/{path} b/{path}" in out, out
    assert "+    return a - b" in out
    assert "-    return a + b" in out
    assert "+X = 1  # the faulty new module" in out
    assert "deleted file mode 100644" in out
    assert "Binary files a/app/data.bin and b/app/data.bin differ" in out
    assert "4 files changed" in out  # the --stat summary first
    assert _snapshot(repo) == before
    assert cli_json("status", cwd=repo)["version"] == status["version"]


def test_show_json_has_the_attempt_and_a_diff_git_applies(repo: Path) -> None:
    """``show --json``: run, batch, attempt, ref, baseline, files and the diff
    as ``git diff --binary`` prints it, which ``git apply`` takes (binary and
    deleted files too)."""
    status = _halted(repo)
    shown = cli_json("show", status["run_id"][:8], "b1", cwd=repo)
    assert set(shown) == {
        "run_id",
        "batch_id",
        "attempt",
        "quarantine_ref",
        "baseline",
        "files",
        "diff",
    }
    assert shown["run_id"] == status["run_id"]
    assert shown["batch_id"] == "b1"
    assert shown["attempt"] == 1
    assert shown["quarantine_ref"] == _quarantine_ref(status)
    assert shown["baseline"] == status["batches"][0]["baseline"]
    assert shown["files"] == CHANGED
    assert "GIT binary patch" in shown["diff"]
    patch = repo.parent / "change.patch"
    patch.write_text(shown["diff"])
    git(repo, "apply", "--check", str(patch))


def test_restore_brings_back_exactly_the_faulty_files(repo: Path) -> None:
    """``restore`` writes each changed file as the quarantine has it (a new
    file, a modified one, a binary one, a removed one), byte for byte, in the
    working tree only: the user's other uncommitted and untracked work and
    the index stay as they were, and the run stays halted."""
    status = _halted(repo)
    ref = _quarantine_ref(status)
    # The user's own work, elsewhere: an edit staged, an edit not staged, an
    # untracked file.
    (repo / "tests" / "test_calc.py").write_text("# staged edit\n")
    git(repo, "add", "tests/test_calc.py")
    (repo / "tests" / "__init__.py").write_text("# unstaged edit\n")
    (repo / "notes.txt").write_text("my notes\n")
    before, index = _snapshot(repo), _index(repo)

    done = run_cli("restore", "latest", "b1", cwd=repo)
    assert done.returncode == 0, done.stderr
    for path in CHANGED:
        assert f"  {path}\n" in done.stdout
    assert "the run stays halted at batch b1" in done.stdout
    assert f"recovery decide {status['run_id']} b1 retry" in done.stdout

    after = _snapshot(repo)
    for path in ("app/one.py", "app/calc.py", "app/data.bin"):
        assert after[path] == _kept(repo, ref, path), path
    assert after["app/data.bin"] == FAULTY_BINARY
    assert "app/old.txt" not in after
    others = {p: c for p, c in before.items() if p not in CHANGED}
    assert {p: c for p, c in after.items() if p not in CHANGED} == others
    assert _index(repo) == index
    later = cli_json("status", cwd=repo)
    assert later["state"] == "halted"
    assert later["version"] == status["version"]

    again = run_cli("restore", "latest", "b1", cwd=repo)  # nothing left to do
    assert again.returncode == 0, again.stderr
    assert "in the working tree already" in again.stdout
    assert _snapshot(repo) == after


def test_restore_json_and_a_pre_run_edit_in_the_same_file(repo: Path) -> None:
    """The user's edit made before the run is in the attempt's baseline: it
    does not stop ``restore`` (the change was made on top of it), and
    ``--json`` says what was brought back."""
    _workspace(repo)
    (repo / "app" / "calc.py").write_text("# the user's edit\n")
    done = run_cli("run", "plan.json", cwd=repo)
    assert done.returncode == 3, done.stderr
    assert (repo / "app" / "calc.py").read_text() == "# the user's edit\n"
    restored = cli_json("restore", "latest", "b1", cwd=repo)
    assert restored["restored"] == CHANGED
    assert restored["files"] == CHANGED
    assert restored["run_state"] == "halted"
    assert (repo / "app" / "calc.py").read_text() == BUGGY_CALC


def test_restore_refuses_over_the_users_edit_of_a_changed_file(repo: Path) -> None:
    """An uncommitted edit since the halt in one of the files the change
    touches: refused with exit 2, naming the file; nothing written."""
    _halted(repo)
    (repo / "app" / "calc.py").write_text("def add(a, b):\n    return 42\n")
    before, index = _snapshot(repo), _index(repo)
    done = run_cli("restore", "latest", "b1", cwd=repo)
    assert done.returncode == 2, done.stderr
    assert "app/calc.py" in done.stderr
    assert "app/one.py" not in done.stderr
    assert "nothing was changed" in done.stderr
    assert _snapshot(repo) == before
    assert _index(repo) == index

    # A file the change adds, made by the user meanwhile (untracked): refused.
    git(repo, "checkout", "--", "app/calc.py")
    (repo / "app" / "one.py").write_text("mine\n")  # untracked, in the way
    done = run_cli("restore", "latest", "b1", "--json", cwd=repo)
    assert done.returncode == 2
    error = json.loads(done.stdout) if done.stdout.strip() else {}
    assert "app/one.py" in done.stderr + json.dumps(error)
    assert (repo / "app" / "one.py").read_text() == "mine\n"
    assert (repo / "app" / "old.txt").exists()


def test_restore_is_refused_while_a_runner_holds_the_workspace(repo: Path) -> None:
    """While ``run --wait`` waits for a decision, ``restore`` exits 5 naming
    the runner, and writes nothing; ``show`` still works."""
    _workspace(repo)
    runner = waiting_runner(repo)
    try:
        before = _snapshot(repo)
        done = run_cli("restore", "latest", "b1", cwd=repo)
        assert done.returncode == 5, done.stderr
        assert f"process {runner.pid}" in done.stderr
        assert _snapshot(repo) == before
        assert run_cli("show", "latest", "b1", cwd=repo).returncode == 0
    finally:
        os.killpg(runner.pid, signal.SIGINT)
        runner.communicate(timeout=60)


def test_attempts_are_chosen_by_number(repo: Path) -> None:
    """Two failed attempts: the default is the latest, ``--attempt 1`` the
    first; an attempt that does not exist, a batch that did not fail and an
    unknown batch exit 2."""
    status = _halted(repo)
    run_id = status["run_id"]
    assert run_cli("decide", run_id, "b1", "retry", cwd=repo).returncode == 0
    assert run_cli("resume", run_id, cwd=repo).returncode == 3
    latest = cli_json("show", run_id, "b1", cwd=repo)
    assert latest["attempt"] == 2
    assert latest["quarantine_ref"].endswith("/b1/2/quarantine")
    assert "+# attempt 2" in latest["diff"]
    first = cli_json("show", run_id, "b1", "--attempt", "1", cwd=repo)
    assert first["attempt"] == 1
    assert "+# attempt 1" in first["diff"]

    for args, words in (
        (["b1", "--attempt", "3"], "has no attempt 3"),
        (["b2"], "has no failed attempt"),
        (["nope"], "has no batch 'nope'"),
    ):
        for command in ("show", "restore"):
            done = run_cli(command, run_id, *args, cwd=repo)
            assert done.returncode == 2, (command, args, done.stderr)
            assert words in done.stderr, done.stderr


def test_a_change_not_quarantined_or_a_ref_deleted_exits_2(
    repo: Path, tmp_path: Path
) -> None:
    """With the noop strategy nothing is quarantined; a quarantine ref deleted
    from git is named. Both exit 2."""
    status = _halted(repo)
    ref = _quarantine_ref(status)
    git(repo, "update-ref", "-d", ref)
    for command in ("show", "restore"):
        done = run_cli(command, "latest", "b1", cwd=repo)
        assert done.returncode == 2, done.stderr
        assert f"the quarantine ref {ref} is gone" in done.stderr

    other = make_repo(tmp_path / "other")
    _workspace(other)
    done = run_cli("run", "plan.json", "--strategy", "noop", cwd=other)
    assert done.returncode == 3, done.stderr
    for command in ("show", "restore"):
        done = run_cli(command, "latest", "b1", cwd=other)
        assert done.returncode == 2, done.stderr
        assert "was not quarantined" in done.stderr


def test_restore_fix_and_retry_commits_the_fixed_change(repo: Path) -> None:
    """The next step ``restore`` suggests: the operator fixes the change it
    brought back and decides retry; the batch's action (which writes nothing
    on a second attempt) and its tests run on the fixed files, and the batch
    is committed with them."""
    code = (
        "import os, pathlib\n"
        "if os.environ['RECOVERY_ATTEMPT'] == '1':\n"
        f"    pathlib.Path('app/calc.py').write_text({BUGGY_CALC!r})\n"
    )
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "fix-by-hand",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [
                        {"name": "generate", "run": [sys.executable, "-c", code]}
                    ],
                    "validation": [unit_tests_step()],
                    "commit_strategy": "commit",
                }
            ],
        },
    )
    assert run_cli("run", "plan.json", cwd=repo).returncode == 3
    assert (repo / "app" / "calc.py").read_text() != BUGGY_CALC
    assert run_cli("restore", "latest", "b1", cwd=repo).returncode == 0
    assert (repo / "app" / "calc.py").read_text() == BUGGY_CALC
    (repo / "app" / "calc.py").write_text(FIXED_CALC)  # the operator's fix
    assert run_cli("decide", "latest", "b1", "retry", cwd=repo).returncode == 0
    done = run_cli("resume", "latest", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "HEAD:app/calc.py") == FIXED_CALC
    assert git(repo, "status", "--porcelain", "--", "app") == ""


def test_odd_names_links_and_modes_come_back(repo: Path) -> None:
    """A name with a space, a quote and a non-ASCII letter, a symbolic link, a
    mode change and a glob-like name come back as the quarantine has them;
    hostile diff settings of the repository (an external diff, no prefixes,
    whitespace errors fatal to apply) change nothing."""
    git(repo, "config", "diff.external", "false")
    git(repo, "config", "diff.noprefix", "true")
    git(repo, "config", "apply.whitespace", "error")
    (repo / "run.sh").write_text("echo hi\n")
    (repo / "[ab].txt").write_text("glob-like\n")
    (repo / "a.txt").write_text("not the glob's\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    code = (
        "import os, pathlib\n"
        "pathlib.Path('app/odd \"näme\" 1.txt').write_text('trailing space  \\n')\n"
        "os.symlink('calc.py', 'app/link.py')\n"
        "os.chmod('run.sh', 0o755)\n"
        "pathlib.Path('[ab].txt').write_text('changed\\n')\n"
    )
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "odd",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [{"name": "gen", "run": [sys.executable, "-c", code]}],
                    "validation": [python_step("fails", "raise SystemExit(1)")],
                }
            ],
        },
    )
    assert run_cli("run", "plan.json", cwd=repo).returncode == 3
    assert not (repo / "app" / "link.py").is_symlink()  # quarantined
    assert not (repo / "run.sh").stat().st_mode & 0o111
    shown = cli_json("show", "latest", "b1", cwd=repo)
    odd = 'app/odd "näme" 1.txt'
    assert shown["files"] == ["[ab].txt", "app/link.py", odd, "run.sh"]
    done = run_cli("restore", "latest", "b1", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert (repo / odd).read_text() == "trailing space  \n"
    assert (repo / "app" / "link.py").readlink() == Path("calc.py")
    assert (repo / "run.sh").stat().st_mode & 0o111
    assert (repo / "[ab].txt").read_text() == "changed\n"
    assert (repo / "a.txt").read_text() == "not the glob's\n"
