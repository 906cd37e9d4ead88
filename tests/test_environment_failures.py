"""Failures of the environment through the real ``recovery`` command: a clear
message with a documented exit code, never a traceback, and the run left
resumable (issue 10)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery_adapters.environment import as_recovery_error
from recovery_core import EnvironmentFailure
from support import git, make_repo, run_cli, write_file_action, write_plan


def _plan(repo: Path, *batches: str) -> Path:
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": "env",
            "batches": [
                {
                    "batch_id": batch,
                    "actions": [
                        write_file_action("write", f"app/{batch}.py", f"{batch} = 1\n")
                    ],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                    "commit_strategy": "commit",
                }
                for batch in batches
            ],
        },
    )


def _refused(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_a_plan_nested_at_any_depth_is_refused_with_a_message(
    repo: Path, depth: int
) -> None:
    """A plan nested 1,000 (or 100,000) levels deep is bad input, exit 2, and
    nothing is written."""
    plan = repo / "deep.json"
    plan.write_text(
        '{"plan_id": "deep", "batches": [], "x": ' + "[" * depth + "]" * depth + "}"
    )
    _refused(run_cli("run", plan, cwd=repo), 2, "nested more than 64 levels deep")
    assert not (repo / ".recovery").exists()


def test_a_corrupt_or_truncated_store_is_named(repo: Path) -> None:
    """A store that is not a SQLite file, or one cut short, exits 6 naming the
    file, and the workspace is untouched."""
    plan = _plan(repo, "one")
    assert run_cli("run", plan, cwd=repo).returncode == 0
    store = repo / ".recovery" / "events.sqlite3"
    data = store.read_bytes()
    for broken in (
        b"these are not the events you are looking for\n" * 100,
        data[:5000],
    ):
        store.write_bytes(broken)
        for extra in store.parent.glob("events.sqlite3-*"):
            extra.unlink()
        for args in (("status", "latest"), ("run", plan)):
            _refused(run_cli(*args, cwd=repo), 6, str(store), "cannot be read")
    assert git(repo, "status", "--porcelain") == "?? plan.json\n"


def test_a_locked_store_says_what_holds_it(repo: Path) -> None:
    """Another process holding the SQLite store's lock: a command that must
    write to it exits 5, naming that process, and writes nothing."""
    plan = _plan(repo, "one")
    assert run_cli("run", plan, cwd=repo).returncode == 0
    plan.write_text(plan.read_text().replace('"env"', '"env-2"'))
    head = git(repo, "rev-parse", "HEAD")
    holder = subprocess.Popen(
        [
            "python3",
            "-c",
            "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], "
            "isolation_level=None); db.execute('BEGIN EXCLUSIVE'); print('held', "
            "flush=True); time.sleep(60)",
            str(repo / ".recovery" / "events.sqlite3"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        done = run_cli("run", plan, cwd=repo)
        _refused(done, 5, "is locked by another process", f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert git(repo, "rev-parse", "HEAD") == head
    assert run_cli("run", plan, cwd=repo).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB file system of its own (tmpfs), unmounted afterwards."""
    if shutil.which("mount") is None:
        pytest.skip("needs mount(8)")
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=False)
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_mid_run_leaves_the_run_resumable(small_disk: Path) -> None:
    """The disk fills up while a batch runs (its action fills it and exits 0):
    exit 7 saying the disk is full, no traceback; once space is freed the run
    resumes, the lost attempt recorded, and completes."""
    repo = make_repo(small_disk / "work")
    filler = small_disk / "filler"
    fill = (
        "echo 'TWO = 2' > app/two.py; [ \"$RECOVERY_ATTEMPT\" = 1 ] && "
        f"head -c 8000000 /dev/zero > {filler}; true"
    )
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "full",
            "batches": [
                {
                    "batch_id": "one",
                    "actions": [write_file_action("write", "app/one.py", "ONE = 1\n")],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                    "commit_strategy": "commit",
                },
                {
                    "batch_id": "two",
                    "actions": [{"name": "fill", "run": ["sh", "-c", fill]}],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                    "commit_strategy": "commit",
                },
            ],
        },
    )
    _refused(run_cli("run", "plan.json", cwd=repo), 7, "full")
    filler.unlink()
    again = run_cli("run", "plan.json", cwd=repo)
    assert again.returncode == 3, again.stderr  # the lost attempt, recorded
    assert run_cli("decide", "latest", "two", "retry", cwd=repo).returncode == 0
    done = run_cli("resume", "latest", cwd=repo)
    assert done.returncode == 0, done.stderr
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert [s.split(":")[0] for s in subjects] == ["two", "one", "initial"]


def test_a_read_only_workspace_is_named(small_disk: Path) -> None:
    """The workspace's file system is read-only: exit 7 naming what cannot be
    written, for a new run and for the status of an old one; nothing changes."""
    repo = make_repo(small_disk / "work")
    plan = _plan(repo, "one", "two")
    assert run_cli("run", plan, cwd=repo).returncode == 0
    head = git(repo, "rev-parse", "HEAD")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    _refused(run_cli("run", plan, cwd=repo), 7, "read-only")
    _refused(run_cli("status", "latest", cwd=repo), 7, "cannot be opened")
    assert git(repo, "rev-parse", "HEAD") == head


def test_what_the_machine_raises_becomes_our_error_and_a_bug_does_not() -> None:
    """The mapping behind exit code 7: the machine's failures become an
    ``EnvironmentFailure`` naming the file; anything else stays a bug."""
    full = as_recovery_error(OSError(errno.ENOSPC, "No space", "/w/plan.json"), None)
    assert isinstance(full, EnvironmentFailure) and full.exit_code == 7
    assert "cannot write /w/plan.json: the disk is full" in str(full)
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = OSError(errno.EROFS, "Read-only file system")
    assert isinstance(as_recovery_error(wrapped, None), EnvironmentFailure)
    assert as_recovery_error(KeyError("a bug"), None) is None
    assert as_recovery_error(OSError(errno.ENOENT, "gone"), None) is None


def test_a_file_name_that_is_not_utf8_is_recorded_and_quarantined(repo: Path) -> None:
    """A failing batch that made a file whose name is not UTF-8 (git holds any
    bytes): the failure is recorded (the name's odd bytes as ``\\xNN``), the
    file quarantined and removed, and the run goes on; it used to stay
    ``running`` for good."""
    code = "open(b'app/bad-\\xff.py', 'w').write('X = (\\n')"
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "names",
            "batches": [
                {
                    "batch_id": "one",
                    "actions": [{"name": "write", "run": [sys.executable, "-c", code]}],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                }
            ],
        },
    )
    _refused(run_cli("run", "plan.json", cwd=repo), 3)
    status = json.loads(run_cli("status", "latest", "--json", cwd=repo).stdout)
    assert status["state"] == "halted"
    assert status["batches"][0]["failure"]["changed_files"] == ["app/bad-\\xff.py"]
    names = {os.fsencode(p.name) for p in (repo / "app").iterdir()}
    assert b"bad-\xff.py" not in names
    kept = git(repo, "for-each-ref", "--format=%(refname)", "refs/recovery/")
    (quarantine,) = [r for r in kept.split() if r.endswith("/quarantine")]
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--name-only", quarantine, "app/"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    assert b"app/bad-\xff.py" in listed.split(b"\0")
    assert run_cli("decide", "latest", "one", "skip", cwd=repo).returncode == 0
    assert run_cli("resume", "latest", cwd=repo).returncode == 0
