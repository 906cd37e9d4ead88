"""The in-process git object layer against git itself: trees rebuilt with
changes equal what ``git update-index --replace`` and ``write-tree`` make, tree
diffs equal ``git diff-tree``, entries equal ``git ls-tree``, written objects
pass ``git fsck``, and a branch moved in-process is moved as ``git update-ref``
moves it (lock, compare-and-swap, reflogs)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import git as gitpython
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery_adapters.git.objects import Entry, ObjectError, ObjectStore, RefMoved

IDENTITY = {
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def run_git(repo: Path, *args: str, stdin: bytes | None = None, **env: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        input=stdin,
        capture_output=True,
        check=True,
        env={**os.environ, **IDENTITY, **env},
    ).stdout.decode()


@contextmanager
def bare_store() -> Iterator[tuple[Path, ObjectStore]]:
    with tempfile.TemporaryDirectory(prefix="recovery-objects-") as folder:
        repo = Path(folder)
        run_git(repo, "init", "-q", "-b", "main")
        handle = gitpython.Repo(repo)
        try:
            yield repo, ObjectStore(handle, repo / ".git")
        finally:
            handle.close()


def blob(repo: Path, content: bytes) -> str:
    return run_git(repo, "hash-object", "-w", "--stdin", stdin=content).strip()


def git_tree(repo: Path, base: str | None, changes: dict[str, Entry | None]) -> str:
    """What git makes of ``base`` with ``changes`` through a temporary index."""
    with tempfile.TemporaryDirectory() as folder:
        index = str(Path(folder) / "index")
        if base:
            run_git(repo, "read-tree", base, GIT_INDEX_FILE=index)
        for path, entry in changes.items():
            if entry is None:
                run_git(
                    repo, "update-index", "--force-remove", "--", path,
                    GIT_INDEX_FILE=index,
                )  # fmt: skip
            else:
                run_git(
                    repo, "update-index", "--add", "--replace", "--cacheinfo",
                    f"{entry.mode},{entry.sha},{path}", GIT_INDEX_FILE=index,
                )  # fmt: skip
        return run_git(repo, "write-tree", GIT_INDEX_FILE=index).strip()


# Paths from a small alphabet so that files and folders collide often.
names = st.sampled_from(["a", "b", "a b", "ü", "a.txt", "b-c"])
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
modes = st.sampled_from(["100644", "100755", "120000"])


def no_clash(files: Mapping[str, object]) -> bool:
    """No path of ``files`` is a folder of another."""
    return not any(other.startswith(f"{path}/") for path in files for other in files)


trees = st.dictionaries(paths, st.tuples(modes, st.binary(max_size=8))).filter(no_clash)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=trees,
    change_paths=st.dictionaries(
        paths, st.one_of(st.none(), st.tuples(modes, st.binary(max_size=8)))
    ).filter(no_clash),
)
def test_rebuilt_trees_diffs_and_entries_match_git(
    start: dict[str, tuple[str, bytes]],
    change_paths: dict[str, tuple[str, bytes] | None],
) -> None:
    with bare_store() as (repo, store):
        files = {p: Entry(mode, blob(repo, data)) for p, (mode, data) in start.items()}
        base = git_tree(repo, None, dict(files)) if files else None
        changes = {
            p: None if value is None else Entry(value[0], blob(repo, value[1]))
            for p, value in change_paths.items()
        }
        ours = store.with_changes(base, changes)
        theirs = git_tree(repo, base, changes)
        assert ours == theirs
        empty = run_git(repo, "hash-object", "-t", "tree", "/dev/null").strip()
        listed = run_git(
            repo, "diff-tree", "-r", "--no-renames", "--name-only", "-z",
            base or empty, theirs,
        )  # fmt: skip
        assert store.diff(base, ours) == tuple(sorted(filter(None, listed.split("\0"))))
        wanted = sorted({*start, *change_paths, "a"})
        listing = run_git(repo, "ls-tree", "-r", "-z", theirs, "--", *wanted)
        expected = {}
        for record in filter(None, listing.split("\0")):
            meta, _, path = record.partition("\t")
            mode, _kind, sha = meta.split()
            expected[path] = Entry(mode, sha)
        assert store.entries(ours, wanted) == expected
        run_git(repo, "fsck", "--strict", "--no-dangling")


def test_a_commit_written_in_process_is_one_git_reads_and_checks() -> None:
    with bare_store() as (repo, store):
        tree = store.with_changes(None, {"a.txt": Entry("100644", blob(repo, b"a"))})
        commit = store.write_commit(
            tree, [], "subject\n\nbody", author="A <a@x>", committer="C <c@x>"
        )
        assert run_git(repo, "log", "-1", "--format=%an|%cn|%s|%b", commit) == (
            "A|C|subject|body\n\n"
        )
        assert store.commit_tree(commit) == tree
        assert store.write("blob", b"a") == blob(repo, b"a")
        run_git(repo, "fsck", "--strict", "--no-dangling", commit)


@pytest.mark.parametrize("packed", [False, True])
def test_moving_a_branch_in_process_is_what_update_ref_does(packed: bool) -> None:
    """Moved only from the expected commit, under the ref's lock, with the same
    reflog lines in the branch's and HEAD's logs; a packed branch too."""
    with bare_store() as (repo, store):
        (repo / "f").write_text("one\n")
        run_git(repo, "add", "f")
        run_git(repo, "commit", "-q", "-m", "one")
        first = run_git(repo, "rev-parse", "HEAD").strip()
        (repo / "f").write_text("two\n")
        run_git(repo, "commit", "-q", "-am", "two")
        second = run_git(repo, "rev-parse", "HEAD").strip()
        run_git(repo, "update-ref", "refs/heads/main", first)
        if packed:
            run_git(repo, "pack-refs", "--all")
            assert not (repo / ".git" / "refs" / "heads" / "main").exists()

        def move(new: str, old: str) -> bool:
            return store.move_branch(
                "refs/heads/main",
                new,
                old,
                message="recovery: test",
                committer="C <c@x>",
                head_log=repo / ".git" / "logs" / "HEAD",
                log_all=True,
            )

        with pytest.raises(RefMoved):
            move(second, second)
        assert run_git(repo, "rev-parse", "main").strip() == first

        lock = repo / ".git" / "refs" / "heads" / "main.lock"
        lock.write_text("held\n")
        assert not move(second, first)
        assert lock.read_text() == "held\n"
        lock.unlink()
        assert run_git(repo, "rev-parse", "main").strip() == first

        assert move(second, first)
        assert run_git(repo, "rev-parse", "main").strip() == second
        assert not lock.exists()
        for log in ("main", "HEAD"):
            newest = run_git(repo, "reflog", "-1", "--format=%H %gs", log)
            assert newest == f"{second} recovery: test\n"
        run_git(repo, "fsck", "--strict")


def test_a_missing_object_is_a_recovery_error_naming_it() -> None:
    with bare_store() as (_repo, store):
        with pytest.raises(ObjectError, match="0123456789abcdef") as caught:
            store.tree("0123456789abcdef0123456789abcdef01234567")
        assert caught.value.exit_code == 2
