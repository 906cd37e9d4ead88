"""The git object and ref layer (``Objects``, ``Refs``) against git itself, in
SHA-1 and SHA-256 repositories alike: trees read equal ``git ls-tree``, tree
diffs equal ``git diff-tree``, trees rebuilt with changes equal what
``git update-index --index-info`` into a temporary index and ``write-tree``
make, written commits are ones ``git cat-file`` and ``git fsck`` accept, and
refs move only from where they were expected to be, in one transaction, with
the reflog lines git writes."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery_adapters.git.command import Git, GitError
from recovery_adapters.git.objects import TREE_MODE, Entry, ObjectError, Objects
from recovery_adapters.git.refs import RefMoved, Refs, RefState, RefUpdate

IDENTITY = {
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
FORMATS = ["sha1", "sha256"]


def run_git(repo: Path, *args: str, stdin: bytes | None = None, **env: str) -> str:
    """Runs git in ``repo`` (fails the test on error); its output as text."""
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        input=stdin,
        capture_output=True,
        check=True,
        env={**os.environ, **IDENTITY, **env},
    ).stdout.decode("utf-8", "surrogateescape")


@attrs.frozen
class Repository:
    """A repository in a temporary folder, with our layer over it."""

    path: Path
    objects: Objects
    refs: Refs
    null: str  # the all-zero id of its object format


@contextmanager
def repository(object_format: str = "sha1") -> Iterator[Repository]:
    """A fresh repository (branch ``main``, no commit yet) in the given object
    format, with ``Objects`` and ``Refs`` over it; their git processes are ended
    afterwards."""
    with tempfile.TemporaryDirectory(prefix="recovery-objects-") as folder:
        repo = Path(folder) / "repo"
        scratch = Path(folder) / "scratch"
        repo.mkdir()
        scratch.mkdir()
        run_git(repo, "init", "-q", "-b", "main", f"--object-format={object_format}")
        width = 32 if object_format == "sha256" else 20
        git = Git(repo, repo / ".git")
        objects = Objects(git, scratch, id_bytes=width)
        refs = Refs(git, null="0" * (2 * width))
        try:
            yield Repository(repo, objects, refs, "0" * (2 * width))
        finally:
            objects.close()
            refs.close()


def blob(repo: Path, content: bytes) -> str:
    """Writes a blob with git; its id."""
    return run_git(repo, "hash-object", "-w", "--stdin", stdin=content).strip()


def git_tree(
    repo: Path, null: str, base: str | None, changes: Mapping[str, Entry | None]
) -> str:
    """What git makes of ``base`` with ``changes``: read into a temporary
    index, each change fed to ``update-index --index-info`` in order (mode 0
    removes a path), then ``write-tree``."""
    with tempfile.TemporaryDirectory() as folder:
        index = str(Path(folder) / "index")
        if base:
            run_git(repo, "read-tree", base, GIT_INDEX_FILE=index)
        lines = b"".join(
            (f"0 {null}\t" if e is None else f"{e.mode} {e.sha}\t").encode()
            + path.encode()
            + b"\0"
            for path, e in changes.items()
        )
        run_git(
            repo, "update-index", "-z", "--index-info", stdin=lines,
            GIT_INDEX_FILE=index,
        )  # fmt: skip
        return run_git(repo, "write-tree", GIT_INDEX_FILE=index).strip()


def ls_tree(repo: Path, tree: str, *args: str) -> dict[str, Entry]:
    """``git ls-tree -z`` (with ``args``): the entries by path."""
    found: dict[str, Entry] = {}
    for record in filter(None, run_git(repo, "ls-tree", "-z", *args).split("\0")):
        meta, _, path = record.partition("\t")
        mode, _kind, sha = meta.split()
        # A tree object writes a folder's mode as 40000, ls-tree prints 040000.
        found[path] = Entry(TREE_MODE if mode == "040000" else mode, sha)
    return found


def diff_tree(repo: Path, old: str | None, new: str) -> tuple[str, ...]:
    """``git diff-tree -r --name-only --no-renames`` (from the empty tree for
    None), sorted."""
    empty = run_git(repo, "hash-object", "-t", "tree", "/dev/null").strip()
    out = run_git(
        repo, "diff-tree", "-r", "--no-renames", "--name-only", "-z",
        old or empty, new,
    )  # fmt: skip
    return tuple(sorted(filter(None, out.split("\0"))))


# Paths from a small alphabet so that files and folders collide often.
names = st.sampled_from(["a", "b", "a b", "ü", "a.txt", "b-c"])
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
# Files, executables, symlinks and submodules (gitlinks: a commit id, which git
# does not need to have).
modes = st.sampled_from(["100644", "100755", "120000", "160000"])
files = st.tuples(modes, st.binary(max_size=8))


def clashes(path: str, other: str) -> bool:
    return other.startswith(f"{path}/") or path.startswith(f"{other}/")


def no_clash(found: Mapping[str, object]) -> bool:
    """No path of ``found`` is a folder of another."""
    return not any(clashes(p, o) for p in found for o in found)


def no_set_clash(found: Mapping[str, object | None]) -> bool:
    """No two paths set to an entry clash (a removal may clash with anything:
    a file turned into a folder is the file removed and one below it added)."""
    kept = [p for p, value in found.items() if value is not None]
    return not any(clashes(p, o) for p in kept for o in kept)


trees = st.dictionaries(paths, files).filter(no_clash)
changesets = st.dictionaries(paths, st.one_of(st.none(), files)).filter(no_set_clash)


def entry(repo: Path, mode: str, data: bytes, null: str) -> Entry:
    """An entry of ``mode`` for ``data``: a blob, or for a gitlink an id made
    from ``data`` that names no object here."""
    if mode == "160000":
        return Entry(mode, (data.hex() + "f" * len(null))[: len(null)])
    return Entry(mode, blob(repo, data))


@pytest.mark.parametrize("object_format", FORMATS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=trees, change_paths=changesets)
def test_rebuilt_trees_diffs_and_entries_match_git(
    object_format: str,
    start: dict[str, tuple[str, bytes]],
    change_paths: dict[str, tuple[str, bytes] | None],
) -> None:
    """``with_changes`` of a tree gives the tree git makes of it through a
    temporary index (a file taking a folder's place and the other way round,
    removals of what is not there, folders left empty going); ``diff`` lists
    what ``git diff-tree -r`` lists; ``tree``, ``files`` and ``entries`` read
    what ``git ls-tree`` reads; everything written passes ``git fsck``."""
    with repository(object_format) as repo:
        path, objects, null = repo.path, repo.objects, repo.null
        start_entries = {p: entry(path, m, d, null) for p, (m, d) in start.items()}
        base = git_tree(path, null, None, start_entries) if start_entries else None
        changes = {
            p: None if value is None else entry(path, value[0], value[1], null)
            for p, value in change_paths.items()
        }
        ours = objects.with_changes(base, changes)
        theirs = git_tree(path, null, base, changes)
        assert ours == theirs

        assert objects.diff(base, ours) == diff_tree(path, base, theirs)
        assert objects.diff(ours, base) == (
            diff_tree(path, theirs, base) if base else diff_tree(path, None, theirs)
        )
        assert objects.tree(ours) == ls_tree(path, ours, ours)
        assert dict(objects.files(ours)) == ls_tree(path, ours, "-r", ours)
        wanted = sorted({*start, *change_paths, "a"})
        assert objects.entries(ours, wanted) == ls_tree(
            path, ours, "-r", ours, "--", *wanted
        )
        for name in wanted:
            listed = ls_tree(path, ours, ours, "--", name).get(name)
            assert objects.entry(ours, name) == listed
        run_git(path, "fsck", "--strict", "--no-dangling")


@pytest.mark.parametrize("object_format", FORMATS)
def test_a_written_commit_is_one_git_reads_and_checks(object_format: str) -> None:
    """``write_commit`` writes a commit that ``git cat-file -p`` shows with the
    tree, parents, author, committer and message given, and that
    ``git fsck --strict`` accepts; ``commit_tree`` and ``blobs`` read it back
    as git does."""
    with repository(object_format) as repo:
        path, objects = repo.path, repo.objects
        tree = objects.with_changes(
            None, {"d/a.txt": Entry("100644", blob(path, b"a\n"))}
        )
        first = objects.write_commit(
            tree, [], "subject\n\nbody", author="A <a@x>", committer="C <c@x>"
        )
        tree2 = objects.with_changes(tree, {"b.txt": Entry("100755", blob(path, b""))})
        second = objects.write_commit(
            tree2, [first], "second", author="A <a@x>", committer="C <c@x>"
        )
        assert len(second) == len(repo.null)
        shown = run_git(path, "cat-file", "-p", second).splitlines()
        assert shown[0] == f"tree {tree2}"
        assert shown[1] == f"parent {first}"
        assert shown[2].startswith("author A <a@x> ")
        assert shown[3].startswith("committer C <c@x> ")
        assert shown[4:] == ["", "second"]
        assert run_git(path, "log", "-1", "--format=%an|%cn|%s|%b", first) == (
            "A|C|subject|body\n\n"
        )
        assert run_git(path, "rev-list", second).split() == [second, first]
        assert objects.commit_tree(second) == tree2
        assert objects.tree(second) == ls_tree(path, tree2, tree2)
        assert objects.blobs(second, ["d/a.txt", "b.txt", "d", "none"]) == {
            "d/a.txt": b"a\n",
            "b.txt": b"",
            "d": None,
            "none": None,
        }
        assert objects.write_blob(b"raw\n") == blob(path, b"raw\n")
        run_git(path, "fsck", "--strict", "--no-dangling", second)


@pytest.mark.parametrize("object_format", FORMATS)
def test_a_commit_written_or_read_once_is_read_again_without_git(
    object_format: str,
) -> None:
    """The commits ``write_commit`` wrote, and those read once by id, are
    kept: read again, they are the very bytes git stores under that id (git
    returns the id of the bytes it was given), with no request to git; a name
    that moves (HEAD) is always asked."""
    with repo_with_counted_reads(object_format) as (repo, reads):
        objects, path = repo.objects, repo.path
        tree = objects.with_changes(None, {"a": Entry("100644", blob(path, b"a\n"))})
        first = objects.write_commit(tree, [], "first\n\nbody")
        second = objects.write_commit(tree, [first], "second")
        for commit in (first, second):
            stored = subprocess.run(
                ["git", "cat-file", "commit", commit],
                cwd=path,
                capture_output=True,
                check=True,
            ).stdout
            head, _, message = stored.partition(b"\n\n")
            lines = head.decode().splitlines()
            parents = tuple(line[7:] for line in lines if line.startswith("parent "))
            assert objects.commit_parts(commit) == (parents, message.decode())
            assert objects.commit_tree(commit) == lines[0].removeprefix("tree ")
        assert objects.commit_parts(second) == ((first,), "second\n")
        assert objects.commit_tree(first) == tree
        assert reads() == 0
        run_git(path, "update-ref", "refs/heads/main", second)
        assert objects.commit_tree("HEAD") == tree
        assert objects.commit_tree("HEAD") == tree
        assert reads() == 2
        made = run_git(path, "commit-tree", "-m", "by git", tree).strip()
        assert objects.commit_parts(made) == ((), "by git\n")
        assert objects.commit_parts(made) == ((), "by git\n")
        assert reads() == 3


@contextmanager
def repo_with_counted_reads(
    object_format: str,
) -> Iterator[tuple[Repository, Callable[[], int]]]:
    """A repository whose object reads through git are counted."""
    with repository(object_format) as repo:
        asked: list[str] = []
        read = repo.objects.read

        def counted(name: str) -> tuple[str, bytes] | None:
            asked.append(name)
            return read(name)

        repo.objects.read = counted  # type: ignore[method-assign]
        yield repo, lambda: len(asked)


def test_a_missing_object_is_a_recovery_error_naming_it() -> None:
    """Reading a tree that is not there raises ObjectError (exit code 2) with
    the object's id; ``read`` of it answers None."""
    with repository() as repo:
        missing = "0123456789abcdef0123456789abcdef01234567"
        assert repo.objects.read(missing) is None
        with pytest.raises(ObjectError, match=missing) as caught:
            repo.objects.tree(missing)
        assert caught.value.exit_code == 2


# -- refs ---------------------------------------------------------------------


def two_commits(repo: Path) -> tuple[str, str]:
    """Commits ``f`` twice on main; the two commits."""
    (repo / "f").write_text("one\n")
    run_git(repo, "add", "f")
    run_git(repo, "commit", "-q", "-m", "one")
    first = run_git(repo, "rev-parse", "HEAD").strip()
    (repo / "f").write_text("two\n")
    run_git(repo, "commit", "-q", "-am", "two")
    return first, run_git(repo, "rev-parse", "HEAD").strip()


def refs_now(repo: Path) -> str:
    return run_git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


@pytest.mark.parametrize("object_format", FORMATS)
@pytest.mark.parametrize("packed", [False, True])
def test_a_branch_moves_only_from_where_it_was_expected(
    object_format: str, packed: bool
) -> None:
    """``Refs.update`` with an old value that no longer holds raises RefMoved
    and changes nothing (not even the other refs of the transaction); a held
    ref lock is a GitError that leaves the lock and the branch alone; from the
    expected commit the branch moves, with a reflog line in the branch's and
    HEAD's logs that ``git reflog`` shows; a packed branch too."""
    with repository(object_format) as repo:
        path, refs = repo.path, repo.refs
        first, second = two_commits(path)
        run_git(path, "update-ref", "refs/heads/main", first)
        if packed:
            run_git(path, "pack-refs", "--all")
            assert not (path / ".git" / "refs" / "heads" / "main").exists()
        before = refs_now(path)

        with pytest.raises(RefMoved):
            refs.update(
                [
                    RefUpdate("refs/recovery/r/b/1/baseline", second),
                    RefUpdate("refs/heads/main", second, old=second),
                ]
            )
        assert refs_now(path) == before
        with pytest.raises(RefMoved):  # "" : only if it does not exist yet
            refs.update([RefUpdate("refs/heads/main", second, old="")])
        assert refs_now(path) == before

        lock = path / ".git" / "refs" / "heads" / "main.lock"
        lock.write_text("held\n")
        with pytest.raises(GitError):
            refs.update([RefUpdate("refs/heads/main", second, old=first)])
        assert lock.read_text() == "held\n"
        lock.unlink()
        assert refs_now(path) == before

        refs.update([RefUpdate("refs/heads/main", second, old=first)])
        assert run_git(path, "rev-parse", "main").strip() == second
        assert not lock.exists()
        for log in ("main", "HEAD"):
            newest = run_git(path, "reflog", "-1", "--format=%H %gs", log)
            assert newest == f"{second} recovery: commit verified batch\n"
        refs.update([RefUpdate("refs/recovery/r/b/1/baseline", first, old="")])
        assert run_git(path, "rev-parse", "refs/recovery/r/b/1/baseline").strip() == (
            first
        )
        run_git(path, "fsck", "--strict")


def test_refs_state_reads_head_and_branches_as_git_does() -> None:
    """``Refs.state`` says HEAD's branch and commit on an unborn branch (no
    commit), on a branch, and on a detached HEAD, and lists every branch."""
    with repository() as repo:
        path, refs = repo.path, repo.refs
        assert refs.state() == RefState("refs/heads/main", None, ())
        first, second = two_commits(path)
        run_git(path, "branch", "other", first)
        assert refs.state() == RefState(
            "refs/heads/main",
            second,
            (("refs/heads/main", second), ("refs/heads/other", first)),
        )
        run_git(path, "checkout", "-q", "--detach", first)
        assert refs.state() == RefState(
            None, first, (("refs/heads/main", second), ("refs/heads/other", first))
        )
        refs.put_head(RefState("refs/heads/main", second, ()))
        assert run_git(path, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
        refs.put_ref("refs/heads/other", second)
        assert run_git(path, "rev-parse", "other").strip() == second
