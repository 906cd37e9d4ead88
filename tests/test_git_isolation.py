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
verified batch, ``commit`` must commit exactly the batch's paths and leave what
the user staged elsewhere staged.

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from recovery_adapters.git import GitWorkspace, WorkspaceError
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
)


def make_user_state(data: st.DataObject, repo: Path) -> None:
    """The user's uncommitted work: a sequence of everyday operations."""
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


BATCH_OPS = (
    "modify",
    "add",
    "delete",
    "chmod",
    "file_to_dir",
    "dir_to_file",
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
    and untracked ones too), new files and folders, deletions, mode changes and,
    with ``touch_index``, ``git add`` / ``git rm --cached`` into the user's
    index. Ignored paths are left alone."""
    ops = BATCH_OPS if touch_index else BATCH_OPS[:6]
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
        # changed_files asks git status against the snapshot's own index; it
        # must find what comparing the trees finds.
        assert changed == kept.files


@given(data=st.data())
@EXAMPLES
def test_commit_holds_exactly_the_batch_and_leaves_the_users_staging_alone(
    data: st.DataObject,
) -> None:
    """commit(files=changed_files(baseline)) after a verified batch makes one
    commit on the branch whose tree is the old HEAD's with exactly the batch's
    paths as the working tree has them (the user's unrelated staged and unstaged
    work is not in it); the working tree is untouched; what the user had staged
    in other paths stays staged, entry for entry; the batch's paths where the
    user had nothing staged match the new commit (clean)."""
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
        make_batch_change(data, repo, touch_index=False)
        files_after = working_files(repo)
        changed = workspace.changed_files(baseline)
        assert workspace.check(baseline) == ()
        commit = workspace.commit(
            baseline=baseline,
            files=changed,
            message="b.1: verified",
            trailers={"Recovery-Run": "run-1", "Recovery-Batch": "b.1"},
        )

        new_ref, new_head = head(repo)
        assert (new_ref, new_head) == (old_ref, commit)
        parents = git(repo, "rev-list", "--parents", "-n", "1", commit).decode()
        assert parents.split() == [commit, old_head]
        message = git(repo, "log", "-1", "--format=%B", commit).decode()
        assert "Recovery-Run: run-1\nRecovery-Batch: b.1\n" in message

        now_tree = as_tree(files_after, ignored_files(repo))
        expected = dict(old_tree)
        for path in changed:
            if path in now_tree:
                expected[path] = now_tree[path]
            else:
                expected.pop(path, None)
        # A tree cannot hold a file and a folder of the same name: where the batch
        # made a file of a folder, what HEAD had below it goes (even paths the
        # batch did not list, such as ones the user had already deleted).
        expected = {
            path: entry
            for path, entry in expected.items()
            if not any(
                "/".join(path.split("/")[:cut]) in expected
                for cut in range(1, path.count("/") + 1)
            )
        }
        assert tree_entries(repo, commit) == expected
        assert working_files(repo) == files_after

        index_after = {e[3]: (e[0], e[1]) for e in index_entries(repo)}
        assert all(e[2] == "0" for e in index_entries(repo))
        for path in staged_before.keys() | index_after.keys():
            if path not in changed:
                if any(
                    "/".join(path.split("/")[:cut]) in changed
                    and "/".join(path.split("/")[:cut]) in expected
                    for cut in range(1, path.count("/") + 1)
                ):
                    # The batch made a file of a folder this path is in: an index
                    # cannot hold both, so the entry goes with the folder.
                    assert path not in index_after, path
                else:
                    assert index_after.get(path) == staged_before.get(path), path
            elif staged_before.get(path) != old_tree.get(path):
                if folder_clash(path, expected):
                    # The batch made a folder of the user's staged file, or a
                    # file of its folder: the index follows the commit.
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


@given(data=st.data())
@EXAMPLES
def test_a_watched_workspace_sees_the_tree_a_full_scan_sees(
    data: st.DataObject,
) -> None:
    """After the first snapshot a workspace follows the working tree through
    the file-system monitor instead of scanning it; round after round of
    changes (the user's, the batch's, git add and git rm --cached among them),
    its snapshots hold exactly the tree that a workspace scanning everything
    takes, and the files it reports changed are the trees' differences."""
    with fresh_repo() as repo:
        build_history(data, repo)
        make_user_state(data, repo)
        watched = GitWorkspace(repo)
        scanning = GitWorkspace(repo, monitor=False)
        for round_number in range(3):
            followed = watched.snapshot(
                run_id="w", batch_id=f"b{round_number}", attempt=1
            )
            scanned = scanning.snapshot(
                run_id="s", batch_id=f"b{round_number}", attempt=1
            )
            assert tree_entries(repo, followed) == tree_entries(repo, scanned)
            make_batch_change(
                data, repo, touch_index=data.draw(st.booleans(), label="touch index")
            )
            assert watched.changed_files(followed) == scanning.changed_files(scanned)
        assert watched._monitor is not None  # the monitor was what was tested


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


def _a_second_name_for_a_file(repo: Path) -> None:
    (repo / "pkg" / "alias.txt").hardlink_to(repo / "top.txt")
    write(repo, "top.txt", b"changed through the other name\n")


def _a_nested_repository_appears(repo: Path) -> None:
    git(repo / "pkg", "init", "-q")
    write(repo, "pkg/sub/other.py", b"x\n")


@pytest.mark.parametrize(
    "change",
    [
        _move_folder_then_edit,
        _nested_folders_at_once,
        _delete_a_tree_and_make_a_file_of_it,
        _symlink_to_a_folder_and_a_mode_change,
        _a_folder_moved_in_from_outside,
        _ignore_rules_change,
        _exclude_file_changes,
        _a_nested_repository_appears,
        _a_second_name_for_a_file,
    ],
)
def test_the_monitor_follows_or_gives_way_to_a_scan(change: Any) -> None:
    """Changes that are hard to follow (folders moved, made and removed at once,
    symlinks, new ignore rules, a nested repository) give the tree a full scan
    gives: followed where the monitor can vouch for them, scanned where not."""
    with fresh_repo() as repo:
        commit_files(
            repo,
            {
                ".gitignore": b"*.log\n",
                "top.txt": b"top\n",
                "pkg/mod.py": b"x = 1\n",
                "pkg/sub/deep.py": b"y = 2\n",
            },
        )
        watched = GitWorkspace(repo)
        scanning = GitWorkspace(repo, monitor=False)
        before = watched.snapshot(run_id="w", batch_id="b0", attempt=1)
        change(repo)
        followed = watched.snapshot(run_id="w", batch_id="b1", attempt=1)
        scanned = scanning.snapshot(run_id="s", batch_id="b1", attempt=1)
        assert tree_entries(repo, followed) == tree_entries(repo, scanned)
        assert watched.changed_files(before) != ()


def test_a_monitor_that_cannot_watch_every_folder_gives_way_to_scans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the watch cannot cover a new folder (here: more folders than it
    takes), the workspace drops it and scans from then on; trees stay right."""
    monkeypatch.setattr("recovery_adapters.git.monitor.MAX_FOLDERS", 5)
    with fresh_repo() as repo:
        commit_files(repo, {"a.txt": b"a\n"})
        watched = GitWorkspace(repo)
        scanning = GitWorkspace(repo, monitor=False)
        watched.snapshot(run_id="w", batch_id="b0", attempt=1)
        assert watched._monitor is not None
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
            write(repo, "many/f0/x.txt", b"changed\n")
        assert watched._monitor is None


def test_a_file_that_goes_while_it_is_read_brings_a_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file the watch saw that is gone again when git reads it (an editor's
    temporary file) makes that one tree a full scan, not a failed snapshot."""
    with fresh_repo() as repo:
        commit_files(repo, {"a.txt": b"a\n"})
        workspace = GitWorkspace(repo)
        workspace.snapshot(run_id="w", batch_id="b0", attempt=1)
        write(repo, "b.txt", b"b\n")
        reads = GitWorkspace._hashed_entries

        def vanishing(self: GitWorkspace, present: Any) -> Any:
            monkeypatch.setattr(GitWorkspace, "_hashed_entries", reads)
            raise WorkspaceError("git hash-object failed: could not open 'b.txt'")

        monkeypatch.setattr(GitWorkspace, "_hashed_entries", vanishing)
        baseline = workspace.snapshot(run_id="w", batch_id="b1", attempt=1)
        assert set(tree_entries(repo, baseline)) == {"a.txt", "b.txt"}
        assert workspace._monitor is not None


@pytest.mark.parametrize("why", ["a network file system", "a file of two names"])
def test_no_watch_where_a_change_could_go_unseen(
    why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where inotify could miss a change, the tree is scanned every time: on a
    file system where changes can come from another machine (here the tree's is
    made to read as NFS), and where a file has a second name (a hard link),
    since a change through one name is reported for that name only."""
    with fresh_repo() as repo:
        commit_files(repo, {"a.txt": b"a\n"})
        if why == "a network file system":
            monkeypatch.setattr(
                "recovery_adapters.git.monitor._filesystem_type",
                lambda libc, path: 0x6969,
            )
        else:
            (repo / "b.txt").hardlink_to(repo / "a.txt")
        workspace = GitWorkspace(repo)
        workspace.snapshot(run_id="w", batch_id="b0", attempt=1)
        assert workspace._monitor is None
        write(repo, "a.txt", b"changed\n")
        baseline = workspace.snapshot(run_id="w", batch_id="b1", attempt=1)
        assert git(repo, "show", f"{baseline}:a.txt") == b"changed\n"
        if why == "a file of two names":
            assert git(repo, "show", f"{baseline}:b.txt") == b"changed\n"


def test_the_stores_folder_stays_out_of_followed_trees() -> None:
    """The store and the failure log live in .recovery/, which prepare() has git
    ignore: written after every event, they never enter a followed tree."""
    with fresh_repo() as repo:
        commit_files(repo, {"a.txt": b"a\n"})
        watched = GitWorkspace(repo)
        watched.prepare()
        watched.snapshot(run_id="w", batch_id="b0", attempt=1)
        write(repo, ".recovery/events.sqlite3", b"events\n")
        write(repo, ".recovery/logs/bootstrap_errors.log", b"log\n")
        write(repo, "b.txt", b"the batch's\n")
        followed = watched.snapshot(run_id="w", batch_id="b1", attempt=1)
        scanned = GitWorkspace(repo, monitor=False).snapshot(
            run_id="s", batch_id="b1", attempt=1
        )
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
        )
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
    """Objects and our refs are written in-process in a SHA-1 repository and by
    git itself in a SHA-256 one (which the in-process path cannot write): both
    quarantine a failed change back to the user's state and commit a verified
    one with only its paths, the user's staged work left staged."""
    with tempfile.TemporaryDirectory(prefix="recovery-format-") as folder:
        repo = Path(folder)
        git(repo, "init", "-q", "-b", "main", f"--object-format={object_format}")
        commit_files(repo, {"a.txt": b"one\n", "d/b.txt": b"two\n"})
        write(repo, "a.txt", b"staged by the user\n")
        git(repo, "add", "a.txt")
        write(repo, "notes.txt", b"untracked\n")
        files_before, index_before = working_files(repo), index_entries(repo)
        workspace = GitWorkspace(repo)
        assert workspace._in_process is (object_format == "sha1")

        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=1)
        write(repo, "d/b.txt", b"broken\n")
        write(repo, "d/c.txt", b"new\n")
        kept = workspace.quarantine(
            run_id="r", batch_id="b", attempt=1, baseline=baseline
        )
        assert kept.files == ("d/b.txt", "d/c.txt")
        assert working_files(repo) == files_before
        assert index_entries(repo) == index_before
        faulty = git(repo, "show", f"{kept.ref}:d/b.txt")
        assert faulty == b"broken\n"

        baseline = workspace.snapshot(run_id="r", batch_id="b", attempt=2)
        write(repo, "d/b.txt", b"fixed\n")
        commit = workspace.commit(
            baseline=baseline,
            files=workspace.changed_files(baseline),
            message="b: verified",
            trailers={"Recovery-Batch": "b"},
        )
        assert head(repo)[1] == commit
        assert git(repo, "show", f"{commit}:d/b.txt") == b"fixed\n"
        assert git(repo, "show", f"{commit}:a.txt") == b"one\n"
        assert "Recovery-Batch: b" in git(repo, "log", "-1", "--format=%B").decode()
        status = git(repo, "status", "--porcelain").decode().splitlines()
        assert status == ["M  a.txt", "?? notes.txt"]


def test_the_printed_commands_show_and_bring_back_the_faulty_change(
    tmp_path: Path,
) -> None:
    """`recovery run` of a failing batch prints, under the manual-git analysis,
    a `git diff` that shows the quarantined change and a command that brings it
    back; run from the top of the restored workspace, the latter gives exactly
    the faulty tree again, even where the batch deleted the user's untracked
    file, added a name with spaces and glob characters, or changed a mode."""
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

    hints = done.stderr.split("bring it back, with:\n", 1)[1].split("  decide", 1)[0]
    show, _stat, bring_back = (line.strip() for line in hints.strip().splitlines())
    shown = subprocess.run(
        shlex.split(show), cwd=repo, capture_output=True, check=True
    ).stdout
    assert b"print(broken" in shown and b"user notes.txt" in shown
    left, _, right = bring_back.partition(" | ")
    patch = subprocess.run(
        shlex.split(left), cwd=repo, capture_output=True, check=True
    ).stdout
    subprocess.run(shlex.split(right), cwd=repo, input=patch, check=True)

    quarantine = shlex.split(show)[-1]
    assert tree_entries(repo, quarantine) == as_tree(working_files(repo), set())
    assert not (repo / "user notes.txt").exists()
    assert (repo / "new [*] file.txt").read_bytes() == b"new\n"
