"""The inotify tracker of a working tree on real folders: what it reports after
files and folders are edited, made, moved in, moved out and deleted, where it
refuses to start, when it stops vouching (for once or for good), and how it
reads /proc/self/mountinfo."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from recovery_adapters.watch import (
    MAX_FOLDERS,
    InotifyTracker,
    Tracker,
    is_remote_mount,
    start_tracker,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="inotify is Linux only"
)

Start = Callable[..., InotifyTracker]

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /remote/nfs rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
31 22 0:41 / /remote/sshfs rw,nosuid,nodev - fuse.sshfs me@host:/home rw
32 22 0:42 / /remote/share rw - 9p hostshare rw,trans=virtio
33 30 8:2 / /remote/nfs/local rw - ext4 /dev/sda2 rw
34 22 0:43 / /remote/with\\040space rw - cifs //server/x rw
35 22 0:44 / /stacked rw - nfs server:/a rw
36 35 8:3 / /stacked rw - ext4 /dev/sda3 rw
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A working tree: ``a.txt``, ``sub/b.txt`` and a ``.git`` at the top."""
    top = tmp_path / "tree"
    (top / "sub").mkdir(parents=True)
    (top / "a.txt").write_text("a\n")
    (top / "sub" / "b.txt").write_text("b\n")
    (top / ".git" / "objects").mkdir(parents=True)
    (top / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return top


@pytest.fixture
def start() -> Iterator[Start]:
    """Starts trackers that must start, and closes them after the test."""
    started: list[InotifyTracker] = []

    def run(top: Path, max_folders: int = MAX_FOLDERS) -> InotifyTracker:
        tracker = InotifyTracker.start(top, max_folders=max_folders)
        assert tracker is not None
        started.append(tracker)
        return tracker

    yield run
    for tracker in started:
        tracker.close()


def test_start_tracker_gives_a_usable_tracker(root: Path) -> None:
    """start_tracker watches a local tree, and reports nothing before anything
    changed."""
    tracker: Tracker | None = start_tracker(root)
    assert isinstance(tracker, InotifyTracker)
    try:
        assert tracker.usable
        assert tracker.changes() == set()
    finally:
        tracker.close()


def test_file_edited_created_deleted(root: Path, start: Start) -> None:
    """An edited, a new and a deleted file are each reported by their path."""
    tracker = start(root)
    (root / "a.txt").write_text("edited\n")
    assert tracker.changes() == {"a.txt"}
    (root / "sub" / "c.txt").write_text("c\n")
    assert tracker.changes() == {"sub/c.txt"}
    (root / "sub" / "b.txt").unlink()
    assert tracker.changes() == {"sub/b.txt"}


def test_changes_empty_after_each_call(root: Path, start: Start) -> None:
    """A call reports only what changed since the previous one."""
    tracker = start(root)
    (root / "a.txt").write_text("edited\n")
    assert tracker.changes() == {"a.txt"}
    assert tracker.changes() == set()


def test_folder_made_right_after_start(root: Path, start: Start) -> None:
    """A folder made with files in it before the tracker was asked is reported
    whole, and is watched from then on."""
    tracker = start(root)
    (root / "new" / "deep").mkdir(parents=True)
    (root / "new" / "deep" / "x.txt").write_text("x\n")
    assert tracker.changes() == {"new"}
    (root / "new" / "deep" / "x.txt").write_text("edited\n")
    assert tracker.changes() == {"new/deep/x.txt"}


def test_tree_moved_in_is_reported_and_watched(
    root: Path, tmp_path: Path, start: Start
) -> None:
    """A folder tree moved in from outside is reported as the folder, and edits
    inside it afterwards are reported too."""
    outside = tmp_path / "outside" / "tree2"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "f.txt").write_text("f\n")
    tracker = start(root)
    outside.rename(root / "moved")
    assert tracker.changes() == {"moved"}
    (root / "moved" / "deep" / "f.txt").write_text("edited\n")
    (root / "moved" / "deep" / "g.txt").write_text("g\n")
    assert tracker.changes() == {"moved/deep/f.txt", "moved/deep/g.txt"}


def test_folder_moved_out_is_reported_and_unwatched(
    root: Path, tmp_path: Path, start: Start
) -> None:
    """A folder moved out of the tree is reported, and edits in it afterwards,
    outside the tree, are not."""
    tracker = start(root)
    away = tmp_path / "away"
    (root / "sub").rename(away)
    assert tracker.changes() == {"sub"}
    (away / "b.txt").write_text("edited\n")
    (away / "more").mkdir()
    assert tracker.changes() == set()
    assert tracker.usable


def test_folder_moved_inside_the_tree(root: Path, start: Start) -> None:
    """A folder renamed within the tree is reported under both names, and is
    watched under its new one."""
    tracker = start(root)
    (root / "sub").rename(root / "renamed")
    assert tracker.changes() == {"sub", "renamed"}
    (root / "renamed" / "b.txt").write_text("edited\n")
    assert tracker.changes() == {"renamed/b.txt"}


def test_git_at_top_never_reported(root: Path, start: Start) -> None:
    """Nothing done to or under ``.git`` at the top is reported."""
    tracker = start(root)
    git_dir = root / ".git"
    (git_dir / "index").write_bytes(b"DIRC")
    (git_dir / "HEAD").unlink()
    (git_dir / "objects" / "ab").mkdir()
    (git_dir / "objects" / "ab" / "cdef").write_bytes(b"x")
    os.utime(git_dir)
    assert tracker.changes() == set()
    assert tracker.usable


def test_nested_repository_at_start_refused(root: Path) -> None:
    """A ``.git`` below the top (a nested repository) means no tracker."""
    (root / "sub" / ".git").mkdir()
    assert InotifyTracker.start(root) is None


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_repository_made_in_a_watched_folder_makes_it_unusable(
    root: Path, start: Start, kind: str
) -> None:
    """A ``.git`` (a folder, or a file naming a repository elsewhere) that
    appears in a folder already watched turns that folder into a nested
    repository, of which git sees one entry: the tracker can never vouch for
    the files below it again."""
    tracker = start(root)
    nested = root / "sub" / ".git"
    nested.mkdir() if kind == "folder" else nested.write_text("gitdir: ../x\n")
    assert tracker.changes() is None
    assert not tracker.usable


def test_hard_linked_file_at_start_refused(root: Path) -> None:
    """A regular file with several names means no tracker."""
    os.link(root / "sub" / "b.txt", root / "b-again.txt")
    assert InotifyTracker.start(root) is None


def test_root_not_a_folder_refused(root: Path, tmp_path: Path) -> None:
    """A root that does not exist, is a file, a symbolic link (never followed)
    or a loop of them means no tracker, rather than one watching nothing."""
    assert InotifyTracker.start(tmp_path / "missing") is None
    assert InotifyTracker.start(root / "a.txt") is None
    (tmp_path / "link").symlink_to(root)
    assert InotifyTracker.start(tmp_path / "link") is None
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert InotifyTracker.start(tmp_path / "loop") is None


def test_too_many_folders_at_start_refused(root: Path, start: Start) -> None:
    """More folders than max_folders (``.git`` not counted) means no tracker;
    exactly as many is fine."""
    assert InotifyTracker.start(root, max_folders=1) is None
    assert start(root, max_folders=2).usable


def test_too_many_folders_later_makes_it_unusable(root: Path, start: Start) -> None:
    """Going over max_folders by making folders turns the tracker unusable for
    good: changes() answers None from then on."""
    tracker = start(root, max_folders=3)
    (root / "x").mkdir()
    assert tracker.changes() == {"x"}
    (root / "y").mkdir()
    assert tracker.changes() is None
    assert not tracker.usable
    (root / "a.txt").write_text("edited\n")
    assert tracker.changes() is None


def test_removing_root_makes_it_unusable(root: Path, start: Start) -> None:
    """Deleting the top of the tree turns the tracker unusable."""
    tracker = start(root)
    shutil.rmtree(root)
    assert tracker.changes() is None
    assert not tracker.usable


def test_moving_root_makes_it_unusable(
    root: Path, tmp_path: Path, start: Start
) -> None:
    """Moving the top of the tree elsewhere turns the tracker unusable."""
    tracker = start(root)
    root.rename(tmp_path / "elsewhere")
    assert tracker.changes() is None
    assert not tracker.usable


def test_queue_overflow_is_uncertain_once(root: Path, start: Start) -> None:
    """When the kernel's queue overflows, changes() answers None once and the
    tracker stays usable."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 200_000:
        pytest.skip(f"max_queued_events is {limit}: too slow to overflow")
    tracker = start(root)
    files = [root / "a.txt", root / "sub" / "b.txt"]
    for count in range(limit + 10):
        # Alternating files: the kernel merges an event equal to the last one.
        os.utime(files[count % 2])
    assert tracker.changes() is None
    assert tracker.usable
    (root / "a.txt").write_text("edited\n")
    assert tracker.changes() == {"a.txt"}


def test_start_refuses_what_mountinfo_calls_remote(root: Path, tmp_path: Path) -> None:
    """start reads the mounts (/proc/self/mountinfo unless told another
    file): a tree on NFS, or with an NFS mount inside it, gets no tracker;
    unreadable mountinfo counts as local."""
    fake = tmp_path / "mountinfo"
    top = root.resolve()
    local = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
    fake.write_text(f"{local}2 1 0:40 / {top} rw - nfs4 srv:/x rw\n")
    assert InotifyTracker.start(root, mountinfo=fake) is None
    fake.write_text(f"{local}2 1 0:40 / {top}/sub rw - nfs srv:/x rw\n")
    assert InotifyTracker.start(root, mountinfo=fake) is None
    fake.unlink()
    started = InotifyTracker.start(root, mountinfo=fake)
    assert started is not None
    started.close()


@pytest.mark.parametrize(
    ("path", "remote"),
    [
        ("/remote/nfs/repo", True),
        ("/remote/nfs", True),
        ("/remote/sshfs/work/repo", True),
        ("/remote/share/repo", True),
        ("/remote/nfs/local/repo", False),
        ("/remote/nfsish/repo", False),
        ("/remote/with space/repo", True),
        ("/remote/with", False),
        ("/stacked/repo", False),
        ("/home/me/repo", False),
    ],
)
def test_is_remote_mount(path: str, remote: bool) -> None:
    """The longest mount point that is a whole-component prefix of the path
    decides (the last listed when stacked), with escaped spaces read back:
    nfs4, fuse.sshfs, 9p and cifs are remote, ext4 is not."""
    assert is_remote_mount(MOUNTINFO, Path(path)) is remote


def test_is_remote_mount_without_mounts() -> None:
    """No mountinfo at all says local."""
    assert not is_remote_mount("", Path("/anything"))


def test_close_twice(root: Path) -> None:
    """close() may be called again; a closed tracker is unusable and cannot
    vouch."""
    tracker = InotifyTracker.start(root)
    assert tracker is not None
    tracker.close()
    tracker.close()
    assert not tracker.usable
    assert tracker.changes() is None
