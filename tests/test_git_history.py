"""A run against a real repository with a history of a few dozen commits and
the user's uncommitted work on top, through the real command line: verified
batches become commits on the branch with the Recovery-* trailers, failed
attempts live only under refs/recovery/, the user's work survives, and retry,
skip and abort each leave the tree at the baseline."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from recovery_core import RecoveryApp
from support import (
    ATTEMPT_AWARE,
    BUGGY_CALC,
    FIXED_CALC,
    GOOD_EXTRA,
    cli_json,
    git,
    make_repo,
    run_cli,
    unit_tests_step,
    write_file_action,
    write_plan,
)

# Paths the plan's batches write; everything else is the user's.
BATCH_PATHS = {"app/extra.py", "app/calc.py", "docs/calc.md", "plan.json"}
DIGEST = re.compile(r"[0-9a-f]{64}")


def build_history(root: Path, commits: int = 30) -> Path:
    """The test app, then ``commits`` commits touching several files (a module,
    notes, a README, a config, a data file), and a .gitignore."""
    repo = make_repo(root)
    (repo / ".gitignore").write_text("*.log\n__pycache__/\n")
    for number in range(1, commits + 1):
        match number % 5:
            case 0:
                with (repo / "app" / "util.py").open("a") as f:
                    f.write(f"\n\ndef f{number}() -> int:\n    return {number}\n")
            case 1:
                (repo / "docs").mkdir(exist_ok=True)
                with (repo / "docs" / "notes.md").open("a") as f:
                    f.write(f"- note {number}\n")
            case 2:
                (repo / "README.md").write_text(f"# app\n\nrelease {number}\n")
            case 3:
                (repo / "config.ini").write_text(f"[app]\nlevel = {number}\n")
            case _:
                (repo / "data" / "table.bin").parent.mkdir(exist_ok=True)
                (repo / "data" / "table.bin").write_bytes(bytes(range(number)) * 3)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"history {number}")
    return repo


def make_user_work(repo: Path) -> None:
    """The user's uncommitted work: an unstaged edit, a staged edit, a staged
    edit edited again, an untracked file and an ignored one."""
    (repo / "README.md").write_text("# app\n\nthe user's unstaged edit\n")
    with (repo / "docs" / "notes.md").open("a") as f:
        f.write("- staged by the user\n")
    git(repo, "add", "docs/notes.md")
    with (repo / "app" / "util.py").open("a") as f:
        f.write("\n# staged\n")
    git(repo, "add", "app/util.py")
    with (repo / "app" / "util.py").open("a") as f:
        f.write("# and edited again\n")
    (repo / "scratch notes.txt").write_text("untracked, the user's\n")
    (repo / "local.log").write_text("ignored, the user's\n")


def user_files(repo: Path) -> dict[str, bytes]:
    """The user's files in the working tree (the batches' paths, .git,
    .recovery and byte-code caches aside)."""
    found = {}
    for path in sorted(repo.rglob("*")):
        relative = path.relative_to(repo)
        if (
            path.is_file()
            and relative.parts[0] not in (".git", ".recovery")
            and "__pycache__" not in relative.parts
            and relative.as_posix() not in BATCH_PATHS
        ):
            found[relative.as_posix()] = path.read_bytes()
    return found


def user_index(repo: Path) -> list[str]:
    """`git ls-files -s` lines of the user's paths."""
    return [
        line
        for line in git(repo, "ls-files", "-s").splitlines()
        if line.split("\t", 1)[1] not in BATCH_PATHS
    ]


def four_batch_plan() -> dict[str, Any]:
    """b1 adds a module; b2 breaks add() (skipped); b3 breaks it on attempt 1
    and fixes it on the retry; b4 adds a document. All commit."""
    validation = [{"name": "syntax_check", "kind": "syntax"}, unit_tests_step()]
    return {
        "plan_id": "history",
        "batches": [
            {
                "batch_id": "b1",
                "description": "Add double()",
                "actions": [write_file_action("generate", "app/extra.py", GOOD_EXTRA)],
                "validation": validation,
                "commit_strategy": "commit",
            },
            {
                "batch_id": "b2",
                "description": "Break add()",
                "actions": [write_file_action("generate", "app/calc.py", BUGGY_CALC)],
                "validation": validation,
                "commit_strategy": "commit",
            },
            {
                "batch_id": "b3",
                "description": "Rewrite add()",
                "actions": [
                    {"name": "generate", "run": [sys.executable, "-c", ATTEMPT_AWARE]}
                ],
                "validation": validation,
                "commit_strategy": "commit",
            },
            {
                "batch_id": "b4",
                "description": "Document calc",
                "actions": [
                    write_file_action("write_docs", "docs/calc.md", "# calc\n")
                ],
                "validation": [{"name": "syntax_check", "kind": "syntax"}],
                "commit_strategy": "commit",
            },
        ],
    }


def ref(run_id: str, batch: str, attempt: int, name: str) -> str:
    """A ref the run keeps for an attempt."""
    return f"refs/recovery/{run_id}/{batch}/{attempt}/{name}"


def tree(repo: Path, rev: str) -> str:
    """The tree id of ``rev``."""
    return git(repo, "rev-parse", f"{rev}^{{tree}}").strip()


def trailers(repo: Path, commit: str) -> dict[str, str]:
    """The trailers of ``commit``'s message."""
    text = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", commit)
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def blob(repo: Path, content: str) -> str:
    """The id of a blob of ``content``."""
    scratch = repo.parent / "blob.tmp"
    scratch.write_text(content)
    return git(repo, "hash-object", "--", str(scratch)).strip()


def commits_with_blob(repo: Path, blob_id: str, *where: str) -> str:
    """`git log --find-object` over ``where`` (refs or --branches/--all)."""
    return git(repo, "log", "--format=%H", f"--find-object={blob_id}", *where)


@pytest.fixture
def history_repo(tmp_path: Path) -> Path:
    """A repository with 31 commits and the user's uncommitted work on top."""
    repo = build_history(tmp_path / "work")
    make_user_work(repo)
    return repo


def test_verified_batches_are_commits_and_failed_attempts_only_recovery_refs(
    history_repo: Path,
) -> None:
    """Through a skip and a retry, the three verified batches become three
    commits on main, each with exactly its batch's file and the trailers
    Recovery-Run, Recovery-Batch and Recovery-Chain (the digest of that batch's
    BatchVerified event in the stored history); the two failed attempts are
    kept only under refs/recovery/ (no branch has their content); retry and
    skip go on from the baseline; the user's uncommitted work is intact."""
    repo = history_repo
    files_before, index_before = user_files(repo), user_index(repo)
    old_head = git(repo, "rev-parse", "HEAD").strip()
    assert int(git(repo, "rev-list", "--count", "HEAD")) == 31
    original_calc = (repo / "app" / "calc.py").read_text()
    write_plan(repo / "plan.json", four_batch_plan())

    # b1 verified and committed; b2 fails: quarantined, tree at its baseline.
    first = run_cli("run", "plan.json", cwd=repo)
    assert first.returncode == 3, first.stderr
    status = cli_json("status", cwd=repo)
    run_id = status["run_id"]
    assert status["awaiting_decision"] == {"batch_id": "b2", "attempt": 1}
    assert (repo / "app" / "calc.py").read_text() == original_calc
    b1_commit = status["batches"][0]["commit"]
    assert git(repo, "rev-parse", "main").strip() == b1_commit
    assert git(repo, "rev-parse", ref(run_id, "b2", 1, "baseline") + "^").strip() == (
        b1_commit
    )
    b2_quarantine = ref(run_id, "b2", 1, "quarantine")
    assert git(repo, "show", f"{b2_quarantine}:app/calc.py") == BUGGY_CALC
    assert user_files(repo) == files_before

    # skip: the change stays in its ref; b3 starts from the same baseline.
    assert run_cli("decide", run_id, "b2", "skip", cwd=repo).returncode == 0
    second = run_cli("resume", run_id, cwd=repo)
    assert second.returncode == 3, second.stderr
    assert git(repo, "show", f"{b2_quarantine}:app/calc.py") == BUGGY_CALC
    assert tree(repo, ref(run_id, "b3", 1, "baseline")) == tree(
        repo, ref(run_id, "b2", 1, "baseline")
    )
    assert (repo / "app" / "calc.py").read_text() == original_calc
    assert user_files(repo) == files_before

    # retry: attempt 2 starts from attempt 1's baseline and passes; b4 too.
    assert run_cli("decide", run_id, "b3", "retry", cwd=repo).returncode == 0
    third = run_cli("resume", run_id, cwd=repo)
    assert third.returncode == 0, third.stderr
    assert tree(repo, ref(run_id, "b3", 2, "baseline")) == tree(
        repo, ref(run_id, "b3", 1, "baseline")
    )
    status = cli_json("status", run_id, cwd=repo)
    assert status["state"] == "completed"
    assert [b["status"] for b in status["batches"]] == [
        "verified",
        "skipped",
        "verified",
        "verified",
    ]

    # The branch: the old history plus exactly b1, b3, b4, one commit each.
    new = git(repo, "rev-list", "--reverse", f"{old_head}..main").split()
    assert new == [status["batches"][i]["commit"] for i in (0, 2, 3)]
    assert git(repo, "rev-parse", f"{new[0]}^").strip() == old_head
    store = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    events = store.history(run_id)
    digests = [str(getattr(e, "digest", "")) for e in events]
    for commit, batch_id, path in zip(
        new,
        ("b1", "b3", "b4"),
        ("app/extra.py", "app/calc.py", "docs/calc.md"),
        strict=True,
    ):
        assert git(repo, "show", "--name-only", "--format=", commit) == f"{path}\n"
        found = trailers(repo, commit)
        assert found["Recovery-Run"] == run_id
        assert found["Recovery-Batch"] == batch_id
        chain = found["Recovery-Chain"]
        assert DIGEST.fullmatch(chain)
        at = digests.index(chain)
        verified, committed = events[at], events[at + 1]
        assert type(verified).__name__ == "BatchVerified"
        assert getattr(verified, "batch_id", None) == batch_id
        assert type(committed).__name__ == "BatchCommitted"
        assert getattr(committed, "commit", None) == commit
    assert (repo / "app" / "calc.py").read_text() == FIXED_CALC

    # Failed attempts: only under refs/recovery/, on no branch.
    buggy = blob(repo, BUGGY_CALC)
    assert commits_with_blob(repo, buggy, "--branches") == ""
    kept = commits_with_blob(repo, buggy, "--all").split()
    quarantines = {
        git(repo, "rev-parse", ref(run_id, b, 1, "quarantine")).strip()
        for b in ("b2", "b3")
    }
    assert set(kept) == quarantines
    for commit in quarantines:
        assert git(repo, "branch", "--contains", commit) == ""
        assert git(repo, "for-each-ref", "--contains", commit, "refs/heads/") == ""
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/recovery/")
    assert {r.rsplit("/", 1)[1] for r in refs.split()} >= {
        "baseline",
        "index",
        "quarantine",
    }
    assert ref(run_id, "b1", 1, "quarantine") not in refs

    # The user's work: files byte for byte, staged entries still staged.
    assert user_files(repo) == files_before
    assert user_index(repo) == index_before
    status_lines = git(repo, "status", "--porcelain").splitlines()
    assert "M  docs/notes.md" in status_lines
    assert "MM app/util.py" in status_lines
    assert " M README.md" in status_lines
    assert '?? "scratch notes.txt"' in status_lines or (
        "?? scratch notes.txt" in status_lines
    )
    assert not any("calc" in line or "extra" in line for line in status_lines)


def test_abort_leaves_the_tree_at_the_baseline(history_repo: Path) -> None:
    """A failing first batch, then `decide abort`: the run ends (exit 4), no
    commit is added, the failed change is only in its quarantine ref, and the
    working tree and index are the user's as they were."""
    repo = history_repo
    files_before, index_before = user_files(repo), user_index(repo)
    full_index = git(repo, "ls-files", "-s")
    head = git(repo, "rev-parse", "HEAD").strip()
    original_calc = (repo / "app" / "calc.py").read_bytes()
    plan = four_batch_plan()
    plan["batches"] = plan["batches"][1:2]  # b2 only: it fails
    write_plan(repo / "plan.json", plan)

    assert run_cli("run", "plan.json", cwd=repo).returncode == 3
    run_id = cli_json("status", cwd=repo)["run_id"]
    aborted = run_cli("decide", run_id, "b2", "abort", "--reason", "no", cwd=repo)
    assert aborted.returncode == 4, aborted.stderr
    assert run_cli("resume", run_id, cwd=repo).returncode == 4

    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert (repo / "app" / "calc.py").read_bytes() == original_calc
    assert user_files(repo) == files_before
    assert user_index(repo) == index_before
    assert git(repo, "ls-files", "-s") == full_index
    quarantine = ref(run_id, "b2", 1, "quarantine")
    assert git(repo, "show", f"{quarantine}:app/calc.py") == BUGGY_CALC
    assert commits_with_blob(repo, blob(repo, BUGGY_CALC), "--branches") == ""
