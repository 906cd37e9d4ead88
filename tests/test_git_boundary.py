"""The git boundary as a host sees it: the workspace lock, commits that keep the
user's edits out, and git's own housekeeping (repacks) under a long-lived
workspace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from recovery_adapters.git import GitWorkspace
from recovery_adapters.git.lock import WorkspaceInUse
from recovery_core import Committed, ConflictError
from support import APP_CALC, git


def test_a_second_holder_of_the_workspace_is_refused_with_its_holder_named(
    repo: Path,
) -> None:
    """While one workspace object holds the lock, another (even for another
    plan) gets WorkspaceInUse (a ConflictError, exit 5) naming the holder's
    run, host and process; once it is released, the other may take it."""
    first, second = GitWorkspace(repo), GitWorkspace(repo)
    holder = {"run": "run-a", "plan": "plan-a", "host": "here", "pid": "123"}
    with first.locked(holder):
        with pytest.raises(WorkspaceInUse) as refused, second.locked({}):
            pytest.fail("two holders at once")
        assert isinstance(refused.value, ConflictError)
        assert refused.value.exit_code == 5
        for part in ("run run-a", "plan plan-a", "host here", "process 123"):
            assert part in str(refused.value)
        with first.locked({**holder, "run": "run-a2"}):  # re-entrant
            pass
        with pytest.raises(WorkspaceInUse), second.locked({}):
            pass
    with (
        second.locked({"plan": "plan-b"}),
        pytest.raises(WorkspaceInUse, match="plan plan-b"),
        first.locked({}),
    ):
        pass


def test_a_lock_left_by_a_killed_process_is_taken_over(repo: Path) -> None:
    """A process that held the workspace and was killed (SIGKILL: no clean-up
    of its own) holds nothing: the next holder gets the lock at once."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from recovery_adapters.git import GitWorkspace
        workspace = GitWorkspace({str(repo)!r})
        with workspace.locked({{"plan": "doomed"}}):
            print("held", flush=True)
            time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        with (
            pytest.raises(WorkspaceInUse, match="plan doomed"),
            GitWorkspace(repo).locked({}),
        ):
            pass
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        with GitWorkspace(repo).locked({"plan": "next"}):
            pass
    finally:
        child.kill()
        child.wait()


def test_a_users_edit_in_a_file_the_batch_changes_stays_out_of_the_commit(
    repo: Path,
) -> None:
    """commit() of a batch that appends to a file the user had edited (at its
    top, apart from the batch's hunk) commits HEAD's file plus the batch's hunk
    only; the working tree keeps both, and the user's edit shows as unstaged."""
    calc = repo / "app" / "calc.py"
    calc.write_text("# the user's note\n" + APP_CALC)
    workspace = GitWorkspace(repo)
    workspace.prepare(commits=True)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    with calc.open("a") as handle:
        handle.write("\n\ndef mul(a: int, b: int) -> int:\n    return a * b\n")
    changed = workspace.changed_files(baseline)
    assert changed == ("app/calc.py",)
    assert workspace.check(baseline) == ()
    result = workspace.commit(
        baseline=baseline, files=changed, message="b: mul", trailers={}
    )
    assert isinstance(result, Committed)
    assert result.commit is not None and result.note == ""
    committed = git(repo, "show", f"{result.commit}:app/calc.py")
    assert (
        committed
        == APP_CALC + "\n\ndef mul(a: int, b: int) -> int:\n    return a * b\n"
    )
    assert calc.read_text().startswith("# the user's note\n")
    assert "def mul" in calc.read_text()
    assert git(repo, "status", "--porcelain") == " M app/calc.py\n"
    diff = git(repo, "diff", "HEAD", "--", "app/calc.py").splitlines()
    added = [line for line in diff if line.startswith("+") and line[:3] != "+++"]
    assert added == ["+# the user's note"]


def test_an_edit_that_overlaps_the_users_is_left_uncommitted_with_a_reason(
    repo: Path,
) -> None:
    """Where the batch rewrites the very line the user had edited, the two
    cannot be told apart: commit() makes no commit, says why (naming the
    file), and leaves HEAD, the index and the working tree as they are."""
    calc = repo / "app" / "calc.py"
    calc.write_text(APP_CALC.replace("a + b", "a + b  # user"))
    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    calc.write_text(APP_CALC.replace("a + b", "b + a"))
    head = git(repo, "rev-parse", "HEAD")
    index = git(repo, "ls-files", "-s")
    result = workspace.commit(
        baseline=baseline,
        files=workspace.changed_files(baseline),
        message="b",
        trailers={},
    )
    assert result.commit is None
    assert result.note.startswith("not committed:")
    assert "app/calc.py" in result.note
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "ls-files", "-s") == index
    assert "b + a" in calc.read_text()


def test_a_repack_under_a_long_lived_workspace_changes_nothing(repo: Path) -> None:
    """git's housekeeping (a repack that moves loose objects into a pack and
    prunes them, as a background `gc --auto` does) between a snapshot and the
    quarantine does not disturb the workspace's long-lived git processes."""
    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    (repo / "app" / "new.py").write_text("X = 1\n")
    (repo / "app" / "calc.py").write_text("broken(\n")
    assert workspace.changed_files(baseline) == ("app/calc.py", "app/new.py")
    git(repo, "gc", "-q", "--prune=now")
    assert not list((repo / ".git" / "objects").glob("[0-9a-f][0-9a-f]/*"))
    (repo / "app" / "other.py").write_text("Y = 2\n")
    kept = workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=baseline)
    assert kept.files == ("app/calc.py", "app/new.py", "app/other.py")
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "show", f"{kept.ref}:app/other.py") == "Y = 2\n"


def test_closing_a_workspace_ends_its_git_processes(repo: Path) -> None:
    """The long-lived git processes end with close() (and when the workspace
    is dropped), so a host making many workspaces does not pile them up."""
    before = _git_children()
    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    assert workspace.read(baseline, ["app/calc.py"]) == {
        "app/calc.py": APP_CALC.encode()
    }
    mine = _git_children() - before
    assert mine, "the workspace keeps git processes for its reads and writes"
    workspace.close()
    deadline = time.monotonic() + 10
    while mine & _git_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mine & _git_children()


def _git_children() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        alive = fields[0] not in ("Z", "X")
        if alive and int(fields[1]) == os.getpid() and command[0] == b"git":
            found.add(int(entry.name))
    return found


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_a_file_the_batch_staged_leaves_the_users_index_again(
    tmp_path: Path, object_format: str
) -> None:
    """A failing batch that `git add`s a new file: the quarantine takes the
    file out of the working tree and out of the user's index, in either
    object format (the null id that removes an index entry differs)."""
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", f"--object-format={object_format}")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "a")
    index_before = git(repo, "ls-files", "-s")
    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    (repo / "new.txt").write_text("staged by the batch\n")
    git(repo, "add", "new.txt")
    kept = workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=baseline)
    assert kept.files == ("new.txt",)
    assert not (repo / "new.txt").exists()
    assert git(repo, "ls-files", "-s") == index_before
    assert git(repo, "status", "--porcelain") == ""


def test_a_ctrl_c_during_a_quarantine_lets_it_finish_first(repo: Path) -> None:
    """SIGINT arriving while the quarantine runs (many files: it takes a
    while) is held back until the quarantine is whole: the faulty tree is kept
    under its ref and the working tree put back, then the interrupt is
    raised."""
    code = textwrap.dedent(
        f"""
        import pathlib, sys
        from recovery_adapters.git import GitWorkspace
        root = pathlib.Path({str(repo)!r})
        workspace = GitWorkspace(root)
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        for n in range(3000):
            folder = root / "made" / f"d{{n // 100}}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{{n}}.py").write_text(f"X = {{n}}\\n")
        print("quarantining", flush=True)
        try:
            workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=baseline)
        except KeyboardInterrupt:
            print("interrupted after", flush=True)
        else:
            print("not interrupted", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "quarantining"
        time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline().strip() == "interrupted after"
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()
    assert not (repo / "made").exists()
    assert git(repo, "status", "--porcelain") == ""
    kept = git(repo, "ls-tree", "-r", "--name-only", "refs/recovery/r/b/1/quarantine")
    assert len([p for p in kept.splitlines() if p.startswith("made/")]) == 3000


def test_what_the_user_changes_between_attempts_is_kept(repo: Path) -> None:
    """The repository's state is kept at the latest snapshot: a setting and a
    hook the user adds between a failed attempt and its retry are not put back
    when the retry's change is measured against the first attempt's baseline
    (as the runner does), nor reported by the retry's guard."""
    workspace = GitWorkspace(repo)
    first = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    (repo / "app" / "calc.py").write_text("broken(\n")
    workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=first)
    git(repo, "config", "user.note", "set by the user between attempts")
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\nexit 0\n")
    second = workspace.snapshot(run_id="r", batch_id="b", attempt=2)
    (repo / "app" / "extra.py").write_text("X = 1\n")
    assert workspace.changed_files(first) == ("app/extra.py",)
    assert workspace.check(second) == ()
    assert git(repo, "config", "--get", "user.note").strip() == (
        "set by the user between attempts"
    )
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"


def test_a_reader_killed_under_the_workspace_is_replaced_at_once(repo: Path) -> None:
    """A SIGKILL to the workspace's long-lived cat-file right before the next
    read (the process may still be dying when it is asked) costs that read
    nothing: a fresh process answers, every time."""
    others = _git_children()
    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    expected = {"app/calc.py": APP_CALC.encode()}
    killed = 0
    for _ in range(20):
        assert workspace.read(baseline, ["app/calc.py"]) == expected
        for pid in _git_children() - others:
            command = (Path("/proc") / str(pid) / "cmdline").read_bytes()
            if b"cat-file" in command:
                os.kill(pid, signal.SIGKILL)
                killed += 1
    assert workspace.read(baseline, ["app/calc.py"]) == expected
    assert killed >= 20


def test_a_repository_is_taken_out_by_another_process_only_if_the_batch_made_it(
    repo: Path,
) -> None:
    """A runner killed after its snapshot; the next process checks the attempt
    from the snapshot alone. The user's repository with no commit at the
    snapshot (named in the snapshot's message), in which the batch then
    committed, stays where it is; one the batch made is moved whole into the
    store folder, its commit and files with it."""
    scratch, made = repo / "scratch", repo / "made"
    git(repo, "init", "-q", "scratch")
    (scratch / "notes.txt").write_text("scratch\n")
    first = GitWorkspace(repo)
    first.prepare()
    baseline = first.snapshot(run_id="r", batch_id="b", attempt=1)
    first.close()
    git(repo, "init", "-q", "made")
    (made / "notes.txt").write_text("made\n")
    for folder in scratch, made:
        git(folder, "add", "notes.txt")
        git(folder, "commit", "-q", "-m", "the batch's")
    second = GitWorkspace(repo)
    (found,) = second.check(baseline)
    second.close()
    assert found.startswith("a git repository was made at made ")
    assert (scratch / "notes.txt").read_text() == "scratch\n"
    assert not made.exists()
    (kept,) = (repo / ".recovery" / "repositories").glob("*/made")
    assert (kept / "notes.txt").read_text() == "made\n"
    assert git(kept, "log", "--format=%s").strip() == "the batch's"


def test_names_the_user_gave_that_git_would_take_for_a_branch_stay(
    repo: Path,
) -> None:
    """A tag, a ref and a file at the top of ``.git`` named as the user's
    branch, and a folder there named as a remote, which the user made before
    the snapshot: the guard removes such names only when an attempt made
    them, so these stay."""
    branch = git(repo, "symbolic-ref", "--short", "HEAD").strip()
    commit = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "tag", branch, commit)
    git(repo, "update-ref", f"refs/{branch}", commit)
    (repo / ".git" / branch).write_text(commit + "\n")
    git(repo, "remote", "add", "origin", "https://example.com/origin.git")
    (repo / ".git" / "origin").mkdir()
    (repo / ".git" / "origin" / "notes").write_text("the user's\n")
    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    assert workspace.check(baseline) == ()
    workspace.close()
    listed = git(repo, "for-each-ref", "--format=%(refname)", f"refs/tags/{branch}")
    assert listed.strip() == f"refs/tags/{branch}"
    assert git(repo, "rev-parse", f"refs/{branch}").strip() == commit
    assert (repo / ".git" / branch).read_text() == commit + "\n"
    assert (repo / ".git" / "origin" / "notes").read_text() == "the user's\n"


def test_a_folder_git_lfs_makes_is_never_taken_for_a_remotes_shadow(
    repo: Path,
) -> None:
    """A remote named ``lfs`` and git-lfs's own folder ``.git/lfs``, made
    while a batch runs (git-lfs makes it on its first object): a folder named
    as a remote at the top of ``.git`` is removed as a shadow of its
    remote-tracking branches, but never one of git's or git-lfs's own."""
    git(repo, "remote", "add", "lfs", "https://example.com/lfs.git")
    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    stored = repo / ".git" / "lfs" / "objects" / "ab" / "cd" / "abcd"
    stored.parent.mkdir(parents=True)
    stored.write_text("0" * 40 + "\n")
    assert workspace.check(baseline) == ()
    workspace.close()
    assert stored.read_text() == "0" * 40 + "\n"
