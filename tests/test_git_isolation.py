"""Property tests of GitWorkspace's isolation: Hypothesis builds a repository with
a history, the user's own uncommitted work on top of it (unstaged and staged
edits, staged edits edited again, untracked and ignored files, deletions staged
and not, binary files, renames, names with spaces and unicode, executable bits),
then a batch's change on top of that (edits, new files and folders, deletions,
mode changes, ``git add`` and ``git rm --cached`` into the user's index; never
an ignored path, which no snapshot holds).

After a failed batch, ``quarantine`` must give the user back exactly what they
had (every file's bytes and mode, ignored ones included, ``git ls-files -s`` and
HEAD) and keep exactly the batch's result under the quarantine ref. After a
verified batch, ``commit`` must commit HEAD plus exactly the batch's own change
(merged per file, as ``git merge-file`` merges, where the user had uncommitted
edits in the same file; nothing at all where the two cannot be told apart) and
leave what the user staged elsewhere staged. A workspace that follows the tree
through its tracker must see what one scanning everything sees.

Each example builds its own repository in a fresh temporary folder (Hypothesis
runs many examples per test function, so ``tmp_path`` would be shared)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from recovery_adapters.git import GitWorkspace
from recovery_adapters.watch import InotifyTracker, Tracker, start_tracker
from support import run_cli, write_plan

# (bytes, permission bits) of every file in the working tree, by posix path.
Files = dict[str, tuple[bytes, int]]
# `git ls-files -s`: (mode, object id, stage, path), in git's order.
IndexEntries = list[tuple[str, str, str, str]]

# Paths the history commits; with spaces, unicode, nesting and a script.
HISTORY_PATHS = (
    "a.txt",
    "src/app.py",
    "src/util/helpers.py",
    "with space.txt",
    "dir with space/ünïcödé.md",
    "日本語/データ.bin",
    "run.sh",
    "docs/ñame – dash.txt",
)
# Paths the user or the batch may create.
NEW_PATHS = (
    "new file.txt",
    "src/new_module.py",
    "fresh/dir/é.txt",
    "новый/файл.bin",
    "untracked.py",
    "src/util/extra helpers.py",
)
# Paths that .gitignore ignores (the batch never touches them: ignored files are
# not part of a snapshot, see test_a_batch_that_unignores_a_file_*).
IGNORED_PATHS = ("debug.log", "build/out.o", "build/ü/cache.bin", "src/trace.log")
GITIGNORE = b"*.log\nbuild/\n"

# No explain phase: it replays a failing example hundreds of times, each in a
# new repository, which takes minutes; the shrunk example is printed anyway.
EXAMPLES = settings(
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

contents = st.one_of(
    st.text(max_size=40).map(lambda s: s.encode("utf-8")),
    st.binary(max_size=64),  # NUL bytes make git see a binary file
)


# -- git and the working tree ------------------------------------------------


def git(repo: Path, *args: str) -> bytes:
    """Runs git in ``repo`` as a user would (hooks and all); fails on error."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=False)
    assert done.returncode == 0, (
        f"git {' '.join(args)}: {done.stderr.decode(errors='replace')}"
    )
    return done.stdout


def commit_files(repo: Path, files: dict[str, bytes]) -> None:
    """Writes ``files`` and commits them (the repository's first commit)."""
    for path, content in files.items():
        write(repo, path, content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")


@contextmanager
def fresh_repo() -> Iterator[Path]:
    """An empty repository (branch ``main``) in a new temporary folder."""
    with tempfile.TemporaryDirectory(prefix="recovery-prop-") as folder:
        repo = Path(folder) / "work"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        yield repo


def write(repo: Path, path: str, content: bytes, *, executable: bool = False) -> None:
    """Writes a file (making its folders) with the given executable bit."""
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    target.chmod(0o755 if executable else 0o644)


def working_files(repo: Path) -> Files:
    """Every file of the working tree (ignored and untracked ones included),
    ``.git`` and ``.recovery`` aside: bytes and permission bits."""
    found: Files = {}
    for folder, dirs, names in os.walk(repo):
        here = Path(folder)
        if here == repo:
            dirs[:] = [d for d in dirs if d not in (".git", ".recovery")]
        for name in names:
            path = here / name
            relative = path.relative_to(repo).as_posix()
            found[relative] = (path.read_bytes(), stat.S_IMODE(path.lstat().st_mode))
    return found


def ignored_files(repo: Path) -> set[str]:
    """The untracked files git ignores right now."""
    out = git(repo, "ls-files", "-z", "--others", "--ignored", "--exclude-standard")
    return {p for p in out.decode().split("\0") if p}


def index_entries(repo: Path) -> IndexEntries:
    """``git ls-files -s``: what the index holds, stage by stage."""
    entries: IndexEntries = []
    for record in git(repo, "ls-files", "-s", "-z").decode().split("\0"):
        if record:
            meta, _, path = record.partition("\t")
            mode, sha, stage = meta.split()
            entries.append((mode, sha, stage, path))
    return entries


def head(repo: Path) -> tuple[str, str]:
    """HEAD's symbolic ref and commit."""
    return (
        git(repo, "symbolic-ref", "-q", "HEAD").decode().strip(),
        git(repo, "rev-parse", "HEAD").decode().strip(),
    )


def blob_id(content: bytes) -> str:
    """The id git gives a blob of ``content`` (no filters are configured)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()  # noqa: S324


def tree_entries(repo: Path, treeish: str) -> dict[str, tuple[str, str]]:
    """``git ls-tree -r``: (mode, object id) by path."""
    found: dict[str, tuple[str, str]] = {}
    out = git(repo, "ls-tree", "-r", "-z", "--full-tree", treeish).decode()
    for record in out.split("\0"):
        if record:
            meta, _, path = record.partition("\t")
            mode, _kind, sha = meta.split()
            found[path] = (mode, sha)
    return found


def as_tree(files: Files, leave_out: set[str]) -> dict[str, tuple[str, str]]:
    """The tree entries git would record for ``files`` (``leave_out`` aside)."""
    return {
        path: ("100755" if mode & 0o100 else "100644", blob_id(content))
        for path, (content, mode) in files.items()
        if path not in leave_out
    }


# -- generating a history, the user's work and a batch ------------------------


def build_history(data: st.DataObject, repo: Path) -> None:
    """One to three commits of the history paths (and .gitignore)."""
    first = data.draw(
        st.dictionaries(
            st.sampled_from(HISTORY_PATHS),
            st.tuples(contents, st.booleans()),
            min_size=1,
            max_size=len(HISTORY_PATHS),
        ),
        label="initial commit",
    )
    write(repo, ".gitignore", GITIGNORE)
    for path, (content, executable) in first.items():
        write(repo, path, content, executable=executable)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    for number in range(data.draw(st.integers(0, 2), label="more commits")):
        tracked = sorted(tracked_files(repo) - {".gitignore"})
        changes = data.draw(
            st.dictionaries(
                st.sampled_from([*tracked, *HISTORY_PATHS]),
                st.one_of(st.none(), st.tuples(contents, st.booleans())),
                min_size=1,
                max_size=4,
            ),
            label=f"commit {number + 2}",
        )
        for path, change in changes.items():
            if change is None:
                if path in tracked and len(tracked) > 1:
                    git(repo, "rm", "-q", "--", path)
                    tracked.remove(path)
            else:
                write(repo, path, change[0], executable=change[1])
                git(repo, "add", "--", path)
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {number + 2}")


def writable(repo: Path, path: str) -> bool:
    """Whether a file can be written at ``path``: no file where a folder of it
    must be, no folder where it must be."""
    target = repo / path
    parents = [p for p in target.parents if p != repo and repo in p.parents]
    return not target.is_dir() and all(p.is_dir() or not p.exists() for p in parents)


def tracked_files(repo: Path) -> set[str]:
    """The paths in the index."""
    return {entry[3] for entry in index_entries(repo)}


def visible_files(repo: Path) -> list[str]:
    """Working-tree files that git does not ignore (.gitignore aside)."""
    ignored = ignored_files(repo)
    return sorted(
        p for p in working_files(repo) if p not in ignored and p != ".gitignore"
    )


USER_OPS = (
    "edit",
    "stage_edit",
    "stage_then_edit",
    "untracked",
    "stage_new",
    "ignored",
    "delete",
    "git_rm",
    "rm_cached",
    "rename",
    "chmod",
    "prepend_line",
)


def make_user_state(data: st.DataObject, repo: Path) -> None:
    """The user's uncommitted work: a sequence of everyday operations (a line
    added at the top of a file among them, which a batch's line at the end
    merges with)."""
    for number in range(data.draw(st.integers(0, 10), label="user operations")):
        op = data.draw(st.sampled_from(USER_OPS), label=f"user op {number}")
        tracked = sorted(tracked_files(repo) - {".gitignore"})
        present = [p for p in tracked if (repo / p).is_file()]
        if op in ("untracked", "stage_new", "ignored"):
            pool = IGNORED_PATHS if op == "ignored" else NEW_PATHS
            path = data.draw(st.sampled_from(pool), label="path")
            if (repo / path).exists() or path in tracked or not writable(repo, path):
                continue
            write(repo, path, data.draw(contents, label="content"))
            if op == "stage_new":
                git(repo, "add", "--", path)
            continue
        if not present:
            continue
        path = data.draw(st.sampled_from(present), label="path")
        if op == "edit":
            write(repo, path, data.draw(contents, label="content"))
        elif op in ("stage_edit", "stage_then_edit"):
            write(repo, path, data.draw(contents, label="staged content"))
            git(repo, "add", "--", path)
            if op == "stage_then_edit":
                write(repo, path, data.draw(contents, label="edited again"))
        elif op == "delete":
            (repo / path).unlink()
        elif op == "git_rm":
            git(repo, "rm", "-q", "-f", "--", path)
        elif op == "rm_cached":
            git(repo, "rm", "-q", "-f", "--cached", "--", path)
        elif op == "rename":
            target = data.draw(
                st.sampled_from([*NEW_PATHS, "renamed/ü space.txt"]), label="to"
            )
            if (
                (repo / target).exists()
                or target in tracked
                or not writable(repo, target)
            ):
                continue
            (repo / target).parent.mkdir(parents=True, exist_ok=True)
            git(repo, "mv", "--", path, target)
        elif op == "chmod":
            mode = stat.S_IMODE((repo / path).stat().st_mode)
            (repo / path).chmod(0o644 if mode & 0o100 else 0o755)
        elif op == "prepend_line":  # merges with a batch's line at the end
            content = (repo / path).read_bytes()
            (repo / path).write_bytes(b"the user's line\n" + content)


BATCH_OPS = (
    "modify",
    "add",
    "delete",
    "chmod",
    "file_to_dir",
    "dir_to_file",
    "append_line",
    "git_add",
    "git_add_all",
    "rm_cached",
)
BATCH_NEW_PATHS = (
    *NEW_PATHS,
    "batch/new dir/ß.py",
    "batch/deeper/still/x.bin",
    "src/generated.py",
)


def make_batch_change(
    data: st.DataObject, repo: Path, *, touch_index: bool = True
) -> None:
    """The batch's change: edits of any visible file (the user's edited, staged
    and untracked ones too; whole new contents, or a line added at the end),
    new files and folders, deletions, mode changes and,
    with ``touch_index``, ``git add`` / ``git rm --cached`` into the user's
    index. Ignored paths are left alone."""
    ops = BATCH_OPS if touch_index else BATCH_OPS[:7]
    for number in range(data.draw(st.integers(1, 8), label="batch operations")):
        op = data.draw(st.sampled_from(ops), label=f"batch op {number}")
        visible = visible_files(repo)
        if op == "add":
            path = data.draw(st.sampled_from(BATCH_NEW_PATHS), label="path")
            if not writable(repo, path):
                continue
            write(
                repo,
                path,
                data.draw(contents, label="content"),
                executable=data.draw(st.booleans(), label="executable"),
            )
            continue
        if op == "git_add_all":
            git(repo, "add", "-A")
            continue
        if not visible:
            continue
        path = data.draw(st.sampled_from(visible), label="path")
        if not (repo / path).is_file():
            continue  # gone with a folder an earlier operation replaced
        if op == "modify":
            (repo / path).write_bytes(data.draw(contents, label="content"))
        elif op == "append_line":
            with (repo / path).open("ab") as handle:
                handle.write(b"\nthe batch's line\n")
        elif op == "delete":
            (repo / path).unlink()
        elif op == "chmod":
            mode = stat.S_IMODE((repo / path).stat().st_mode)
            (repo / path).chmod(0o644 if mode & 0o100 else 0o755)
        elif op == "file_to_dir":
            (repo / path).unlink()
            write(repo, f"{path}/inner.txt", data.draw(contents, label="content"))
        elif op == "dir_to_file":
            folder = path.rpartition("/")[0]
            held = [p for p in working_files(repo) if p.startswith(f"{folder}/")]
            if not folder or set(held) - set(visible):
                continue  # never a folder holding ignored files
            shutil.rmtree(repo / folder)
            write(repo, folder, data.draw(contents, label="content"))
        elif op == "git_add":
            git(repo, "add", "-A", "--", path)
        elif op == "rm_cached" and path in tracked_files(repo):
            git(repo, "rm", "-q", "-f", "--cached", "--", path)


# -- the properties -------------------------------------------------------------


@given(data=st.data())
@EXAMPLES
def test_quarantine_gives_back_the_users_exact_state_and_keeps_the_batch(
    data: st.DataObject,
) -> None:
    """After a failed batch, quarantine() leaves every file of the working tree
    (ignored and untracked ones included) with the bytes and mode it had before
    the batch, the index exactly as ``git ls-files -s`` showed it, and HEAD where
    it was; the quarantine ref's tree is exactly the batch's result (ignored
    files aside), the baseline ref's tree the user's state, and the reported
    files the paths that differ between the two."""
    with fresh_repo() as repo:
        build_history(data, repo)
        make_user_state(data, repo)
        workspace = GitWorkspace(repo)
        workspace.prepare()
        files_before = working_files(repo)
        index_before = index_entries(repo)
        head_before = head(repo)
        ignored_before = ignored_files(repo)

        baseline = workspace.snapshot(run_id="run-1", batch_id="b.1", attempt=1)
        make_batch_change(data, repo)
        files_faulty = working_files(repo)
        ignored_faulty = ignored_files(repo)
        changed = workspace.changed_files(baseline)
        kept = workspace.quarantine(
            run_id="run-1", batch_id="b.1", attempt=1, baseline=baseline
        )

        assert working_files(repo) == files_before
        assert index_entries(repo) == index_before
        assert head(repo) == head_before

        assert kept.ref == "refs/recovery/run-1/b.1/1/quarantine"
        faulty_tree = as_tree(files_faulty, ignored_faulty)
        assert tree_entries(repo, kept.ref) == faulty_tree
        assert git(repo, "rev-parse", f"{kept.ref}^{{tree}}").decode().strip() == (
            kept.tree_id
        )
        baseline_tree = as_tree(files_before, ignored_before)
        assert tree_entries(repo, "refs/recovery/run-1/b.1/1/baseline") == (
            baseline_tree
        )
        differing = {
            p
            for p in baseline_tree.keys() | faulty_tree.keys()
            if baseline_tree.get(p) != faulty_tree.get(p)
        }
        assert set(kept.files) == differing
        assert list(kept.files) == sorted(kept.files)
        # changed_files, after the batch and before the quarantine, must find
        # what comparing the two trees finds.
        assert changed == kept.files
        workspace.close()


# Tree entries: (mode, object id).
TreeEntry = tuple[str, str]
REGULAR = ("100644", "100755")


def merge_file(
    repo: Path, ours: TreeEntry, base: TreeEntry, theirs: TreeEntry
) -> bytes | None:
    """``git merge-file -p ours base theirs`` of three blobs: the merged bytes,
    or None when git finds conflicts or refuses (binary files)."""
    with tempfile.TemporaryDirectory(prefix="recovery-merge-") as folder:
        names = []
        for label, entry in (("ours", ours), ("base", base), ("theirs", theirs)):
            target = Path(folder) / label
            target.write_bytes(git(repo, "cat-file", "blob", entry[1]))
            names.append(str(target))
        done = subprocess.run(
            ["git", "merge-file", "-p", "--", *names],
            cwd=repo,
            capture_output=True,
            check=False,
        )
    return done.stdout if done.returncode == 0 else None


def batch_entry(
    repo: Path,
    at_head: TreeEntry | None,
    before: TreeEntry | None,
    now: TreeEntry | None,
) -> tuple[bool, TreeEntry | None]:
    """What a verified batch's commit holds for one changed path (HEAD's entry,
    the baseline's, the working tree's now): ``(True, now)`` where the user had
    no uncommitted edit there (or the batch left HEAD's file), ``(True, merged)``
    for HEAD's file with the batch's change merged in by ``git merge-file``, and
    ``(False, None)`` where the two cannot be told apart (a conflict, a file
    missing on one side, not a regular file)."""
    if before == at_head or now == at_head:
        return True, now
    if at_head is None or before is None or now is None:
        return False, None
    if {at_head[0], before[0], now[0]} - set(REGULAR):
        return False, None
    merged = merge_file(repo, at_head, before, now)
    if merged is None:
        return False, None
    # The mode merges three ways too: the batch's change of it, else HEAD's.
    mode = at_head[0] if now[0] == before[0] else now[0]
    return True, (mode, blob_id(merged))


def with_changes(
    tree: dict[str, TreeEntry], changes: dict[str, TreeEntry | None]
) -> dict[str, TreeEntry]:
    """``tree`` with each path of ``changes`` set or removed, as
    ``git update-index --replace`` does: a file takes the place of a folder
    (everything below it goes) and of a file where its folder must be."""
    result = dict(tree)
    for path, entry in changes.items():
        if entry is None:
            result.pop(path, None)
            continue
        for other in list(result):
            if other.startswith(f"{path}/") or path.startswith(f"{other}/"):
                del result[other]
        result[path] = entry
    return result


@given(data=st.data())
@EXAMPLES
def test_commit_holds_exactly_the_batch_and_leaves_the_users_staging_alone(
    data: st.DataObject,
) -> None:
    """commit(files=changed_files(baseline)) after a verified batch commits HEAD
    plus the batch's own change: each changed path as the working tree has it
    where the user had no uncommitted edit in it, else HEAD's file with the
    batch's change merged in as ``git merge-file`` (run here as the oracle)
    merges it, so the user's staged and unstaged work stays out. It is one
    commit on the branch, on the old HEAD, with the trailers; the working tree
    is untouched; what the user had staged in other paths stays staged, entry
    for entry; the batch's paths where the user had nothing staged match the
    new commit. Where a merge conflicts (or a side is missing or no regular
    file) nothing is committed, ``note`` says which paths, and HEAD, the index
    and the working tree stay as they were; so too, with "HEAD has the change
    already", when the result is HEAD's tree."""
    with fresh_repo() as repo:
        build_history(data, repo)
        make_user_state(data, repo)
        workspace = GitWorkspace(repo)
        workspace.prepare(commits=True)
        index_before = index_entries(repo)
        old_ref, old_head = head(repo)
        old_tree = tree_entries(repo, old_head)
        staged_before = {e[3]: (e[0], e[1]) for e in index_before}

        baseline = workspace.snapshot(run_id="run-1", batch_id="b.1", attempt=1)
        baseline_tree = tree_entries(repo, baseline)
        make_batch_change(data, repo, touch_index=False)
        files_after = working_files(repo)
        changed = workspace.changed_files(baseline)
        assert workspace.check(baseline) == ()

        now_tree = as_tree(files_after, ignored_files(repo))
        changes: dict[str, TreeEntry | None] = {}
        tangled: list[str] = []
        for path in changed:
            separable, entry = batch_entry(
                repo, old_tree.get(path), baseline_tree.get(path), now_tree.get(path)
            )
            if separable:
                changes[path] = entry
            else:
                tangled.append(path)
        expected = with_changes(old_tree, changes)
        # What the examples cover (shown by --hypothesis-show-statistics).
        if tangled:
            event("not committed: tangled with the user's edits")
        elif expected == old_tree:
            event("not committed: HEAD has the change already")
        elif any(baseline_tree.get(p) != old_tree.get(p) for p in changes):
            event("committed, in files the user had edited too")
        else:
            event("committed, in files the user had not edited")

        committed = workspace.commit(
            baseline=baseline,
            files=changed,
            message="b.1: verified",
            trailers={"Recovery-Run": "run-1", "Recovery-Batch": "b.1"},
        )
        assert working_files(repo) == files_after
        if tangled or expected == old_tree:
            assert committed.commit is None, (tangled, committed)
            assert committed.note.startswith("not committed:")
            if tangled:
                assert all(path in committed.note for path in tangled)
            else:
                assert committed.note == "not committed: HEAD has the change already"
            assert head(repo) == (old_ref, old_head)
            assert index_entries(repo) == index_before
        else:
            commit = committed.commit
            assert commit is not None, committed
            new_ref, new_head = head(repo)
            assert (new_ref, new_head) == (old_ref, commit)
            parents = git(repo, "rev-list", "--parents", "-n", "1", commit).decode()
            assert parents.split() == [commit, old_head]
            message = git(repo, "log", "-1", "--format=%B", commit).decode()
            assert "Recovery-Run: run-1\nRecovery-Batch: b.1\n" in message
            assert tree_entries(repo, commit) == expected

            index_after = {e[3]: (e[0], e[1]) for e in index_entries(repo)}
            assert all(e[2] == "0" for e in index_entries(repo))
            for path in staged_before.keys() | index_after.keys():
                if path not in changed:
                    if any(
                        "/".join(path.split("/")[:cut]) in changed
                        and "/".join(path.split("/")[:cut]) in expected
                        for cut in range(1, path.count("/") + 1)
                    ):
                        # The batch made a file of a folder this path is in: an
                        # index cannot hold both, so the entry goes with it.
                        assert path not in index_after, path
                    else:
                        assert index_after.get(path) == staged_before.get(path), path
                elif staged_before.get(path) != old_tree.get(path):
                    if folder_clash(path, expected):
                        # The batch made a folder of the user's staged file, or
                        # a file of its folder: the index follows the commit.
                        assert path not in index_after, path
                    else:
                        # The user had staged something here: it stays staged.
                        assert index_after.get(path) == staged_before.get(path), path
                else:
                    assert index_after.get(path) == expected.get(path), path

        # The workspace keeps the index's tree across its own update of the
        # index: the next snapshot's index ref must be what git makes of it.
        workspace.snapshot(run_id="run-1", batch_id="b.2", attempt=1)
        index_ref = "refs/recovery/run-1/b.2/1/index"
        assert tree_entries(repo, index_ref) == tree_entries(
            repo, git(repo, "write-tree").decode().strip()
        )
        workspace.close()


@given(data=st.data())
@EXAMPLES
def test_a_watched_workspace_sees_the_tree_a_full_scan_sees(
    data: st.DataObject,
) -> None:
    """After the first snapshot a workspace follows the working tree through
    its tracker (inotify) instead of scanning it; round after round of changes
    (the user's, the batch's, git add and git rm --cached among them), its
    snapshots hold exactly the tree that a workspace with ``tracker=False``
    (a full scan every time) takes, and the files it reports changed are the
    same."""
    with fresh_repo() as repo:
        build_history(data, repo)
        make_user_state(data, repo)
        watched = GitWorkspace(repo)
        scanning = GitWorkspace(repo, tracker=False)
        with watched, scanning:
            for round_number in range(3):
                followed = watched.snapshot(
                    run_id="w", batch_id=f"b{round_number}", attempt=1
                )
                scanned = scanning.snapshot(
                    run_id="s", batch_id=f"b{round_number}", attempt=1
                )
                assert tree_entries(repo, followed) == tree_entries(repo, scanned)
                touch_index = data.draw(st.booleans(), label="touch index")
                make_batch_change(data, repo, touch_index=touch_index)
                assert watched.changed_files(followed) == scanning.changed_files(
                    scanned
                )
                assert watched.tracking  # the tracker was what was tested
                assert not scanning.tracking


def _move_folder_then_edit(repo: Path) -> None:
    (repo / "pkg").rename(repo / "moved")
    (repo / "moved" / "sub" / "deep.py").write_text("edited after the move\n")
    write(repo, "pkg/again.py", b"a new folder where the old one was\n")


def _nested_folders_at_once(repo: Path) -> None:
    write(repo, "new/a/b/c/d.txt", b"deep\n")
    write(repo, "new/a/e.txt", b"e\n")
    (repo / "new" / "empty").mkdir()


def _delete_a_tree_and_make_a_file_of_it(repo: Path) -> None:
    shutil.rmtree(repo / "pkg")
    write(repo, "pkg", b"now a file\n")


def _symlink_to_a_folder_and_a_mode_change(repo: Path) -> None:
    (repo / "link").symlink_to("pkg")
    (repo / "top.txt").chmod(0o755)


def _a_folder_moved_in_from_outside(repo: Path) -> None:
    outside = repo.parent / "outside"
    write(outside, "inner/x.txt", b"x\n")
    outside.rename(repo / "arrived")


def _ignore_rules_change(repo: Path) -> None:
    write(repo, ".gitignore", b"*.log\n*.txt\n")
    write(repo, "notes.txt", b"now ignored\n")


def _exclude_file_changes(repo: Path) -> None:
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("top.txt\n*.tmp\n")
    write(repo, "scratch.tmp", b"excluded\n")
    write(repo, "visible.md", b"not excluded\n")


def _files_a_negated_rule_keeps(repo: Path) -> None:
    # .gitignore has "*.log" and "!keep.log": keep.log is no ignored file.
    write(repo, "keep.log", b"kept by the negated rule\n")
    write(repo, "pkg/drop.log", b"ignored\n")


def _a_folder_replaced_by_a_link_out(repo: Path) -> None:
    # What the link leads to has files of the same names: they are not the
    # working tree's, and never read as if they were.
    outside = repo.parent / "outside"
    write(outside, "mod.py", b"outside\n")
    write(outside, "sub/deep.py", b"outside too\n")
    shutil.rmtree(repo / "pkg")
    (repo / "pkg").symlink_to(outside)


def _a_second_name_for_a_file(repo: Path) -> None:
    (repo / "pkg" / "alias.txt").hardlink_to(repo / "top.txt")
    write(repo, "top.txt", b"changed through the other name\n")


def _a_nested_repository_appears(repo: Path) -> None:
    git(repo / "pkg", "init", "-q")
    write(repo, "pkg/sub/other.py", b"x\n")


@pytest.mark.parametrize(
    ("change", "still_tracking"),
    [
        (_move_folder_then_edit, True),
        (_nested_folders_at_once, True),
        (_delete_a_tree_and_make_a_file_of_it, True),
        (_symlink_to_a_folder_and_a_mode_change, True),
        (_a_folder_moved_in_from_outside, True),
        (_ignore_rules_change, True),
        (_exclude_file_changes, True),
        (_files_a_negated_rule_keeps, True),
        (_a_nested_repository_appears, None),
        (_a_folder_replaced_by_a_link_out, True),
        (_a_second_name_for_a_file, False),
    ],
)
def test_the_tracker_follows_or_gives_way_to_a_scan(
    change: Callable[[Path], None], still_tracking: bool | None
) -> None:
    """Changes that are hard to follow (folders moved, made and removed at once,
    symlinks, new ignore rules, a nested repository, a second name for a file)
    give the tree a full scan gives: followed where the tracker can vouch for
    them, scanned where not; the tracker stays in use through the ones it can
    follow (or that only need one scan), and is dropped for good where a file
    has a second name (None: either way)."""
    with fresh_repo() as repo:
        commit_files(
            repo,
            {
                ".gitignore": b"*.log\n!keep.log\n",
                "top.txt": b"top\n",
                "pkg/mod.py": b"x = 1\n",
                "pkg/sub/deep.py": b"y = 2\n",
            },
        )
        with (
            GitWorkspace(repo) as watched,
            GitWorkspace(repo, tracker=False) as scanning,
        ):
            before = watched.snapshot(run_id="w", batch_id="b0", attempt=1)
            assert watched.tracking
            change(repo)
            followed = watched.snapshot(run_id="w", batch_id="b1", attempt=1)
            scanned = scanning.snapshot(run_id="s", batch_id="b1", attempt=1)
            assert tree_entries(repo, followed) == tree_entries(repo, scanned)
            assert watched.changed_files(before) != ()
            assert watched.changed_files(before) == scanning.changed_files(before)
            if still_tracking is not None:
                assert watched.tracking is still_tracking


def test_a_repository_made_inside_a_watched_folder_ends_the_watch() -> None:
    """data/ (untracked) is watched when it becomes a repository of its own:
    git then sees one entry there, a gitlink, and a file inside it edited
    after the next snapshot is no change of the outer tree. The watch cannot
    vouch for the files below a gitlink: it is dropped, and every snapshot is
    what a full scan takes (before, the edit was followed as a file of the
    outer tree, and the gitlink replaced by the nested repository's files).
    The edit is seen all the same, by data/'s own workspace, as a
    submodule's would be (its path from the top)."""
    with fresh_repo() as repo:
        commit_files(repo, {"top.txt": b"top\n"})
        with (
            GitWorkspace(repo) as watched,
            GitWorkspace(repo, tracker=False) as scanning,
        ):
            watched.snapshot(run_id="w", batch_id="b0", attempt=1)
            write(repo, "data/table.csv", b"a,b\n")
            watched.snapshot(run_id="w", batch_id="b1", attempt=1)
            assert watched.tracking
            git(repo / "data", "init", "-q")
            git(repo / "data", "add", "-A")
            git(repo / "data", "commit", "-q", "-m", "nested")
            for batch in ("b2", "b3"):
                followed = watched.snapshot(run_id="w", batch_id=batch, attempt=1)
                scanned = scanning.snapshot(run_id="s", batch_id=batch, attempt=1)
                assert tree_entries(repo, followed) == tree_entries(repo, scanned)
                assert tree_entries(repo, followed)["data"][0] == "160000"
                write(repo, "data/table.csv", f"{batch}\n".encode())
                assert watched.changed_files(followed) == ("data/table.csv",)
                assert scanning.changed_files(scanned) == ("data/table.csv",)
            assert not watched.tracking


def small_tracker(root: Path) -> Tracker | None:
    """An inotify tracker that gives up beyond five folders."""
    return InotifyTracker.start(root, max_folders=5)


def test_a_tracker_that_cannot_watch_every_folder_gives_way_to_scans() -> None:
    """When the watch cannot cover a new folder (here: more folders than the
    tracker the workspace was given takes), the workspace drops it and scans
    from then on; trees stay right."""
    with fresh_repo() as repo:
        commit_files(repo, {"a.txt": b"a\n"})
        watched = GitWorkspace(repo, tracker=small_tracker)
        scanning = GitWorkspace(repo, tracker=False)
        with watched, scanning:
            watched.snapshot(run_id="w", batch_id="b0", attempt=1)
            tracking_at_first = watched.tracking
            assert tracking_at_first
            for number in range(8):
                write(repo, f"many/f{number}/x.txt", b"x\n")
            for round_number in (1, 2):
                followed = watched.snapshot(
                    run_id="w", batch_id=f"b{round_number}", attempt=1
                )
                scanned = scanning.snapshot(
                    run_id="s", batch_id=f"b{round_number}", attempt=1
                )
                assert tree_entries(repo, followed) == tree_entries(repo, scanned)
                assert not watched.tracking
                write(repo, "many/f0/x.txt", b"changed\n")


class MeddlingTracker:
    """An inotify tracker that, when asked, first does ``meddle`` to the tree
    (as a process racing the snapshot would) and may add ``extra`` paths to
    what it reports: the workspace must make the right tree all the same."""

    def __init__(
        self, inner: InotifyTracker, meddle: Callable[[], None], extra: set[str]
    ) -> None:
        self._inner = inner
        self._meddle = meddle
        self._extra = extra
        self.asked = 0

    @property
    def usable(self) -> bool:
        return self._inner.usable

    def changes(self) -> set[str] | None:
        found = self._inner.changes()
        self.asked += 1
        self._meddle()
        return None if found is None else found | self._extra

    def close(self) -> None:
        self._inner.close()


@pytest.mark.parametrize("how", ["gone before it is read", "git refuses to read it"])
def test_a_path_the_tracker_reports_that_cannot_be_read_is_no_failed_snapshot(
    how: str,
) -> None:
    """A file the tracker saw that is gone again by the time the tree is made
    (an editor's temporary file), or a reported path git refuses to read (here
    one beyond a symbolic link, where the followed tree's git command fails),
    gives the tree a full scan gives, not a failed snapshot; the tracker stays
    in use."""
    with fresh_repo() as repo:
        commit_files(repo, {"a.txt": b"a\n", "pkg/x.txt": b"x\n"})
        made: list[MeddlingTracker] = []

        def factory(root: Path) -> Tracker | None:
            inner = InotifyTracker.start(root)
            assert inner is not None
            if how == "gone before it is read":
                tracker = MeddlingTracker(
                    inner, lambda: (repo / "b.txt").unlink(missing_ok=True), set()
                )
            else:
                tracker = MeddlingTracker(inner, lambda: None, {"link/x.txt"})
            made.append(tracker)
            return tracker

        with (
            GitWorkspace(repo, tracker=factory) as workspace,
            GitWorkspace(repo, tracker=False) as scanning,
        ):
            workspace.snapshot(run_id="w", batch_id="b0", attempt=1)
            write(repo, "b.txt", b"b\n")
            if how == "git refuses to read it":
                (repo / "link").symlink_to("pkg")
            baseline = workspace.snapshot(run_id="w", batch_id="b1", attempt=1)
            scanned = scanning.snapshot(run_id="s", batch_id="b1", attempt=1)
            assert made[0].asked >= 1  # the second tree was asked of the tracker
            assert tree_entries(repo, baseline) == tree_entries(repo, scanned)
            wanted = {"a.txt", "pkg/x.txt"}
            if how == "git refuses to read it":
                wanted |= {"b.txt", "link"}
            assert set(tree_entries(repo, baseline)) == wanted
            assert workspace.tracking


@pytest.mark.parametrize("why", ["no tracker for this tree", "a file of two names"])
def test_no_watch_where_a_change_could_go_unseen(why: str) -> None:
    """Where a change could go unseen, the tree is scanned every time: where
    the tracker factory finds nothing to watch with (as start_tracker does on a
    network file system, see test_tracker.py), and where a file has a second
    name (a hard link), since a change through one name is reported for that
    name only. ``tracking`` is False, the factory is asked once, and every
    snapshot holds the tree as it is."""
    with fresh_repo() as repo:
        commit_files(repo, {"a.txt": b"a\n"})
        asked: list[Path] = []

        def factory(root: Path) -> Tracker | None:
            asked.append(root)
            return None if why == "no tracker for this tree" else start_tracker(root)

        if why == "a file of two names":
            (repo / "b.txt").hardlink_to(repo / "a.txt")
        with GitWorkspace(repo, tracker=factory) as workspace:
            workspace.snapshot(run_id="w", batch_id="b0", attempt=1)
            assert not workspace.tracking
            for content in (b"changed\n", b"changed again\n"):
                write(repo, "a.txt", content)
                baseline = workspace.snapshot(run_id="w", batch_id="b1", attempt=1)
                assert git(repo, "show", f"{baseline}:a.txt") == content
                if why == "a file of two names":
                    assert git(repo, "show", f"{baseline}:b.txt") == content
                assert not workspace.tracking
            assert asked == [repo.resolve()]


def test_the_stores_folder_stays_out_of_followed_trees() -> None:
    """The store and the failure log live in .recovery/, which prepare() has git
    ignore: written after every event, they never enter a followed tree."""
    with fresh_repo() as repo:
        commit_files(repo, {"a.txt": b"a\n"})
        with (
            GitWorkspace(repo) as watched,
            GitWorkspace(repo, tracker=False) as scanning,
        ):
            watched.prepare()
            watched.snapshot(run_id="w", batch_id="b0", attempt=1)
            write(repo, ".recovery/events.sqlite3", b"events\n")
            write(repo, ".recovery/logs/bootstrap_errors.log", b"log\n")
            write(repo, "b.txt", b"the batch's\n")
            followed = watched.snapshot(run_id="w", batch_id="b1", attempt=1)
            assert watched.tracking
            scanned = scanning.snapshot(run_id="s", batch_id="b1", attempt=1)
            assert set(tree_entries(repo, followed)) == {"a.txt", "b.txt"}
            assert tree_entries(repo, followed) == tree_entries(repo, scanned)


def folder_clash(path: str, tree: dict[str, tuple[str, str]]) -> bool:
    """Whether ``tree`` has a folder where ``path`` is a file, or a file where
    ``path`` needs a folder."""
    return any(
        other.startswith(f"{path}/") or path.startswith(f"{other}/") for other in tree
    )


# -- what ignored files can and cannot do -----------------------------------------


def test_a_batch_that_unignores_a_file_does_not_delete_the_users_ignored_file(
    tmp_path: Path,
) -> None:
    """A batch that edits .gitignore so that the user's ignored file (a local
    secrets file) shows up as new must not make quarantine delete that file: it
    was the user's before the batch, and it is there, byte for byte, after."""
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {".gitignore": b".env\n*.log\n", "app.py": b"print('hi')\n"})
    write(repo, ".env", b"SECRET=only-copy\n")
    write(repo, "old.log", b"user log\n")
    files_before = working_files(repo)
    index_before = index_entries(repo)

    workspace = GitWorkspace(repo)
    baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
    write(repo, ".gitignore", b"*.log\n")  # the batch drops the .env rule
    write(repo, "app.py", b"print('broken'\n")
    kept = workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=baseline)

    assert (repo / ".env").read_bytes() == b"SECRET=only-copy\n"
    assert working_files(repo) == files_before
    assert index_entries(repo) == index_before
    assert ".gitignore" in kept.files and "app.py" in kept.files


def test_a_batch_that_ignores_the_users_untracked_file_does_not_commit_it() -> None:
    """A batch that adds an ignore rule covering the user's untracked file has
    changed .gitignore, not that file: changed_files lists only .gitignore and
    the commit leaves the user's file out (and in place)."""
    with fresh_repo() as repo:
        commit_files(repo, {".gitignore": b"*.log\n", "app.py": b"print('ok')\n"})
        write(repo, "notes.tmp", b"the user's, untracked\n")
        workspace = GitWorkspace(repo)
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        write(repo, ".gitignore", b"*.log\n*.tmp\n")
        changed = workspace.changed_files(baseline)
        assert changed == (".gitignore",)
        commit = workspace.commit(
            baseline=baseline, files=changed, message="b", trailers={}
        ).commit
        assert commit is not None
        assert set(tree_entries(repo, commit)) == {".gitignore", "app.py"}
        assert (repo / "notes.tmp").read_bytes() == b"the user's, untracked\n"


@pytest.mark.parametrize("where", ["new.txt", "newdir/sub/new.txt"])
def test_a_file_the_batch_made_in_a_new_folder_is_removed_with_its_folders(
    tmp_path: Path, where: str
) -> None:
    """A file the batch added is removed by quarantine, and so are the folders it
    made for it; folders that held the user's files stay."""
    with fresh_repo() as repo:
        commit_files(repo, {"keep/user.txt": b"mine\n"})
        workspace = GitWorkspace(repo)
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        write(repo, where, b"batch\n")
        write(repo, "keep/batch.txt", b"batch\n")
        workspace.quarantine(run_id="r", batch_id="b", attempt=1, baseline=baseline)
        assert not (repo / where).exists()
        assert not (repo / "newdir").exists()
        assert (repo / "keep" / "user.txt").read_bytes() == b"mine\n"
        assert sorted(p.name for p in (repo / "keep").iterdir()) == ["user.txt"]


def test_a_same_size_edit_in_the_second_the_file_was_staged_is_still_seen() -> None:
    """Git trusts an index entry's stat data (whole seconds) only for files older
    than the index itself. A batch that rewrites a file with as many bytes, in
    the second the user staged it, is still a change: quarantine puts it back.
    Quarantine copies the user's index after the edit: the copy keeps the
    index's timestamp, since one stamped later would make git trust the stale
    stat data and miss the edit. (The mtimes are set by hand to make that second
    certain; the edit's is set back to it as a quick batch's would be.)"""
    with fresh_repo() as repo:
        git(repo, "config", "core.trustctime", "false")
        commit_files(repo, {"calc.py": b"return a + b\n"})
        second = int(time.time()) - 5
        os.utime(repo / "calc.py", ns=(second * 10**9, second * 10**9))
        git(repo, "update-index", "--refresh")
        index = repo / ".git" / "index"
        os.utime(index, ns=(second * 10**9, second * 10**9))
        workspace = GitWorkspace(repo)
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        with (repo / "calc.py").open("r+b") as handle:
            handle.write(b"return a - b\n")
        os.utime(repo / "calc.py", ns=(second * 10**9, second * 10**9))
        kept = workspace.quarantine(
            run_id="r", batch_id="b", attempt=1, baseline=baseline
        )
        assert kept.files == ("calc.py",)
        assert (repo / "calc.py").read_bytes() == b"return a + b\n"


def test_quarantine_by_a_restarted_runner_still_puts_back_the_users_index(
    tmp_path: Path,
) -> None:
    """A runner killed during a batch leaves the quarantine to the next runner,
    a new process with a new GitWorkspace: the user's staged state, kept under
    the attempt's ``index`` ref, is still what the index gets back."""
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"a.txt": b"one\n", "b.txt": b"two\n"})
    write(repo, "a.txt", b"staged by the user\n")
    git(repo, "add", "--", "a.txt")
    write(repo, "b.txt", b"unstaged by the user\n")
    files_before = working_files(repo)
    index_before = index_entries(repo)

    baseline = GitWorkspace(repo).snapshot(run_id="r", batch_id="b", attempt=1)
    write(repo, "a.txt", b"batch\n")
    write(repo, "c.txt", b"batch\n")
    git(repo, "add", "-A")  # the batch stages everything, then the runner dies

    GitWorkspace(repo).quarantine(
        run_id="r", batch_id="b", attempt=1, baseline=baseline
    )
    assert working_files(repo) == files_before
    assert index_entries(repo) == index_before


@pytest.mark.parametrize("swap", ["file_to_folder", "folder_to_file"])
def test_quarantine_undoes_a_file_and_a_folder_trading_places(swap: str) -> None:
    """A batch that turns a file into a folder of the same name (or a folder
    into a file) is undone: the file, or the folder with its files, is back
    with its bytes and mode, and the index is as it was."""
    with fresh_repo() as repo:
        write(repo, "x", b"a file\n", executable=True)
        commit_files(repo, {"d/one.txt": b"one\n", "d/sub/two.txt": b"two\n"})
        write(repo, "d/untracked.txt", b"the user's\n")
        files_before, index_before = working_files(repo), index_entries(repo)
        workspace = GitWorkspace(repo)
        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        if swap == "file_to_folder":
            (repo / "x").unlink()
            write(repo, "x/inner.txt", b"batch\n")
        else:
            shutil.rmtree(repo / "d")
            write(repo, "d", b"now a file\n")
        kept = workspace.quarantine(
            run_id="r", batch_id="b", attempt=1, baseline=baseline
        )
        assert working_files(repo) == files_before
        assert index_entries(repo) == index_before
        assert len(kept.files) >= 2


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_snapshot_quarantine_and_commit_in_either_object_format(
    object_format: str,
) -> None:
    """A SHA-1 and a SHA-256 repository (``git init --object-format``) go
    through the one same path: both snapshot, read a snapshot's files back,
    quarantine a failed change back to the user's state and commit a verified
    one with only its paths, the user's staged work left staged; every id is
    of the repository's format and ``git fsck`` finds nothing wrong."""
    with tempfile.TemporaryDirectory(prefix="recovery-format-") as folder:
        repo = Path(folder)
        git(repo, "init", "-q", "-b", "main", f"--object-format={object_format}")
        commit_files(repo, {"a.txt": b"one\n", "d/b.txt": b"two\n"})
        write(repo, "a.txt", b"staged by the user\n")
        git(repo, "add", "a.txt")
        write(repo, "notes.txt", b"untracked\n")
        files_before, index_before = working_files(repo), index_entries(repo)
        assert git(repo, "rev-parse", "--show-object-format").decode().strip() == (
            object_format
        )
        width = 64 if object_format == "sha256" else 40
        with GitWorkspace(repo) as workspace:
            baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
            assert len(baseline) == width
            write(repo, "d/b.txt", b"broken\n")
            write(repo, "d/c.txt", b"new\n")
            kept = workspace.quarantine(
                run_id="r", batch_id="b", attempt=1, baseline=baseline
            )
            assert kept.files == ("d/b.txt", "d/c.txt")
            assert len(kept.tree_id) == len(kept.commit) == width
            assert working_files(repo) == files_before
            assert index_entries(repo) == index_before
            faulty = git(repo, "show", f"{kept.ref}:d/b.txt")
            assert faulty == b"broken\n"
            assert git(repo, "rev-parse", kept.ref).decode().strip() == kept.commit
            assert workspace.read(kept.commit, ["d/b.txt", "d/c.txt"]) == {
                "d/b.txt": b"broken\n",
                "d/c.txt": b"new\n",
            }

            baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=2)
            assert workspace.read(baseline, ["a.txt", "notes.txt", "d", "none"]) == {
                "a.txt": b"staged by the user\n",
                "notes.txt": b"untracked\n",
                "d": None,
                "none": None,
            }
            write(repo, "d/b.txt", b"fixed\n")
            committed = workspace.commit(
                baseline=baseline,
                files=workspace.changed_files(baseline),
                message="b: verified",
                trailers={"Recovery-Batch": "b"},
            )
        commit = committed.commit
        assert commit is not None and len(commit) == width, committed
        assert head(repo)[1] == commit
        assert git(repo, "show", f"{commit}:d/b.txt") == b"fixed\n"
        assert git(repo, "show", f"{commit}:a.txt") == b"one\n"
        assert "Recovery-Batch: b" in git(repo, "log", "-1", "--format=%B").decode()
        status = git(repo, "status", "--porcelain").decode().splitlines()
        assert status == ["M  a.txt", "?? notes.txt"]
        git(repo, "fsck", "--strict", "--no-dangling")


def test_commit_leaves_out_the_users_uncommitted_mode_change() -> None:
    """The user made a file executable (uncommitted) and the batch edited a
    line of it: the batch's commit holds the batch's edit on HEAD's file, with
    HEAD's mode, since the mode change is the user's; it stays uncommitted in
    the working tree."""
    with fresh_repo() as repo:
        commit_files(repo, {"tool.sh": b"one\ntwo\nthree\n"})
        (repo / "tool.sh").chmod(0o755)  # the user's, not committed
        with GitWorkspace(repo) as workspace:
            baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
            write(repo, "tool.sh", b"one\ntwo\nTHREE\n", executable=True)
            changed = workspace.changed_files(baseline)
            committed = workspace.commit(
                baseline=baseline, files=changed, message="b", trailers={}
            )
        assert committed.commit is not None, committed
        assert git(repo, "show", f"{committed.commit}:tool.sh") == b"one\ntwo\nTHREE\n"
        assert tree_entries(repo, committed.commit)["tool.sh"][0] == "100644"
        assert git(repo, "diff", "--summary").decode().strip() == (
            "mode change 100644 => 100755 tool.sh"
        )


def test_the_printed_commands_show_and_bring_back_the_faulty_change(
    tmp_path: Path,
) -> None:
    """`recovery run` of a failing batch prints, under the manual-git analysis,
    the quarantine ref and the `recovery show` and `recovery restore` commands
    of the attempt; run as printed, the first shows the quarantined change and
    the second gives exactly the faulty tree again, even where the batch
    deleted the user's untracked file, added a name with spaces and glob
    characters, or changed a mode."""
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"app.py": b"print('ok')\n", "tool.sh": b"#!/bin/sh\n"})
    write(repo, "user notes.txt", b"the user's, untracked\n")
    code = (
        "import os, pathlib; "
        "pathlib.Path('app.py').write_text('print(broken\\n'); "
        "pathlib.Path('new [*] file.txt').write_text('new\\n'); "
        "os.remove('user notes.txt'); os.chmod('tool.sh', 0o755)"
    )
    plan = {
        "plan_id": "hints",
        "batches": [
            {
                "batch_id": "b1",
                "actions": [{"name": "generate", "run": [sys.executable, "-c", code]}],
                "validation": [{"name": "syntax_check", "kind": "syntax"}],
            }
        ],
    }
    write_plan(tmp_path / "plan.json", plan)
    files_before = working_files(repo)
    done = run_cli("run", tmp_path / "plan.json", cwd=repo)
    assert done.returncode == 3, done.stderr
    assert working_files(repo) == files_before

    quarantine = done.stderr.split("  quarantine: ", 1)[1].split()[0]
    assert quarantine.startswith("refs/recovery/") and quarantine.endswith(
        "/b1/1/quarantine"
    )
    hints = done.stderr.split("into the working tree, with:\n", 1)[1]
    show, bring_back = (line.strip() for line in hints.splitlines()[:2])
    assert " show " in show and show.endswith(" b1 --attempt 1"), show
    assert " restore " in bring_back and bring_back.endswith(" b1 --attempt 1")
    assert (
        "git " not in done.stderr.split("  decide with", 1)[0].split("quarantine: ")[1]
    )
    shown = subprocess.run(
        shlex.split(show), cwd=repo, capture_output=True, check=True
    ).stdout
    assert b"print(broken" in shown and b"user notes.txt" in shown
    subprocess.run(shlex.split(bring_back), cwd=repo, capture_output=True, check=True)

    assert tree_entries(repo, quarantine) == as_tree(working_files(repo), set())
    assert not (repo / "user notes.txt").exists()
    assert (repo / "new [*] file.txt").read_bytes() == b"new\n"


class ScriptedTracker:
    """A tracker that answers from a script: a set of paths, or None ("cannot
    vouch this time"); nothing changed once the script is done."""

    def __init__(self) -> None:
        self.script: list[set[str] | None] = []

    @property
    def usable(self) -> bool:
        return True

    def changes(self) -> set[str] | None:
        return self.script.pop(0) if self.script else set()

    def close(self) -> None:
        pass


def test_changes_a_commit_could_not_vouch_for_are_scanned_at_the_next_snapshot() -> (
    None
):
    """When the commit asks the tracker and it cannot vouch (an overflow), the
    next snapshot scans instead of following the tree from before: a user's
    edit made meanwhile is in it (it was lost, and a later restore wrote the old
    content back over the user's file)."""
    tracker = ScriptedTracker()
    with fresh_repo() as repo:
        commit_files(repo, {"user.txt": b"before\n", "app.py": b"x = 1\n"})
        with GitWorkspace(repo, tracker=lambda _root: tracker) as workspace:
            first = workspace.snapshot(run_id="r", batch_id="b1", attempt=1)
            assert workspace.tracking
            write(repo, "app.py", b"x = 2\n")  # the batch's change, seen
            tracker.script = [{"app.py"}]
            assert workspace.changed_files(first) == ("app.py",)
            write(repo, "user.txt", b"the user's edit\n")  # made meanwhile
            tracker.script = [None]  # the commit's question: cannot vouch
            made = workspace.commit(
                baseline=first, files=["app.py"], message="b1", trailers={}
            )
            assert made.commit is not None
            second = workspace.snapshot(run_id="r", batch_id="b2", attempt=1)
            assert workspace.read(second, ["user.txt"]) == {
                "user.txt": b"the user's edit\n"
            }
