"""The working tree as git sees it (its tree now, the entries its files would
be staged as) and the user's index, read without touching what the user has.

A tree of the whole working tree is ``git add -A`` into a temporary index (a
second name for the user's, so git's stat cache spares re-hashing unchanged
files, with the flags that would make git take an entry as staged cleared)
and ``write-tree``: always right, at the cost of what the repository holds.
A :class:`~recovery_adapters.watch.Tracker` may say which paths changed
since the last tree; the new tree is then the last one with those paths
hashed again, at the cost of the change. The tracker only narrows what
is looked at: whenever it cannot vouch, or something else a tree depends on
changed (ignore rules, attributes, settings, the user's index), a full scan
runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from recovery_adapters.git.command import Git, GitError, Server
from recovery_adapters.git.objects import Entry, Objects, name_of, nul
from recovery_adapters.watch import Tracker

__all__ = ["IGNORE_ALL", "Flags", "WorkingTree", "beyond_link", "is_file"]

#: The ``.gitignore`` in ``.recovery/``: everything in it, itself too, is ignored.
IGNORE_ALL: Final = "*\n"

#: What git says of an index it cannot read at all.
_CORRUPT: Final = ("index file", "bad signature", "bad index")
#: What git says of a repository with no commit inside the work tree, which it
#: cannot stage (it names each, then stops).
_UNBORN: Final = re.compile(r"error: '(.+)' does not have a commit checked out$", re.M)
#: What git says of a repository with a commit inside the work tree that the
#: user's index does not have (it stages it as one gitlink).
_EMBEDDED: Final = re.compile(r"^warning: adding embedded git repository: (.+)$", re.M)
#: A setting of a remote: ``remote.<name>.url`` (git lists ``<name>`` as written).
_REMOTE_KEY: Final = re.compile(r"remote\.(.+)\.(?:url|pushurl|fetch)")
#: What tells a file's versions apart (None: no file), as :func:`_stat_key` reads it.
_StatKey = tuple[int, int, int] | None
#: Index entries git takes as they are without looking at their files, as
#: (path, flag) pairs, the flag ``assume-unchanged`` or ``skip-worktree``.
Flags = frozenset[tuple[str, str]]


def beyond_link(root: Path, path: str) -> bool:
    """Whether a folder on the way from ``root`` to ``path`` is a symbolic
    link: git has no such path in the working tree then (what lies there is
    the link's target's, maybe outside the repository), and never reads or
    writes through it."""
    folder = root
    for part in path.split("/")[:-1]:
        folder = folder / part
        if folder.is_symlink():
            return True
    return False


def is_file(root: Path, path: str) -> bool:
    """Whether the working tree at ``root`` has a file or a symlink (as git
    tracks them) at ``path``: not a folder, nothing, or beyond a link."""
    full = root / path
    return (full.is_symlink() or full.is_file()) and not beyond_link(root, path)


class WorkingTree:
    """The working tree at ``root`` and the user's index, read through git."""

    def __init__(
        self,
        git: Git,
        objects: Objects,
        *,
        common_dir: Path,
        scratch: Path,
        exclude: Sequence[str],
        tracker: Callable[[Path], Tracker | None] | None,
    ) -> None:
        self._git, self._objects = git, objects
        self.root = git.root
        self._index_file = git.git_dir / "index"
        self._common_dir, self._scratch = common_dir, scratch
        self.exclude = tuple(exclude)
        self._start_tracker = tracker
        self._tracker: Tracker | None = None
        # The last tree made while a tracker watched, with what it depends on.
        self._followed: tuple[str, tuple[object, ...]] | None = None
        # The user's index file as last seen, its tree, and whether git could
        # not read it at all.
        self._index_state: tuple[_StatKey, str | None, bool] | None = None
        # The flags and the gitlinks of the user's index, as last listed.
        self._listed: tuple[_StatKey, Flags, frozenset[str]] | None = None
        self._settings: dict[str, str] | None = None
        self._remotes: tuple[str, ...] = ()
        self._setting_files: set[Path] = set()
        self._user_files: list[Path] | None = None
        self._serial = 0
        #: The repositories with no commit that the last full scan left out,
        #: and those with a commit it found that the user's index has not.
        self.unborn: tuple[str, ...] = ()
        self.embedded: tuple[str, ...] = ()
        # Keeps each folder's ignore rules once read: restarted with each full
        # scan, which is what any change of those rules brings.
        asks = ["--no-index", "-z", "--stdin", "--non-matching", "--verbose"]
        self._ignorer = Server(git, "check-ignore", *asks)

    @property
    def tracking(self) -> bool:
        return self._tracker is not None

    def close(self) -> None:
        self._ignorer.close()
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None

    # -- settings -----------------------------------------------------------

    def settings(self) -> dict[str, str]:
        """The repository's git settings (lower-case keys), read once and kept
        until :meth:`forget_settings` (which every full scan calls)."""
        if self._settings is None:
            records = self._git.text("config", "--list", "--show-origin", "-z")
            fields = records.split("\0")
            settings: dict[str, str] = {}
            origins: set[Path] = set()
            remotes: dict[str, None] = {}
            for origin, record in zip(fields[::2], fields[1::2], strict=False):
                key, _, value = record.partition("\n")
                settings[key.lower()] = value
                if found := _REMOTE_KEY.fullmatch(key):  # its name as written
                    remotes[found[1]] = None
                if not origin.startswith("file:"):
                    continue  # our own -c settings
                origins.add(source := self.root / origin[5:])  # relative: to the top
                if key.lower() == "include.path" or (
                    key.lower().startswith("includeif.") and key.endswith(".path")
                ):  # read only under some condition, or not there (yet)
                    origins.add(source.parent / Path(value).expanduser())
            self._settings, self._user_files = settings, None
            self._setting_files, self._remotes = origins, tuple(remotes)
        return self._settings

    def remotes(self) -> tuple[str, ...]:
        """The names of the remotes the settings define."""
        self.settings()
        return self._remotes

    def user_setting_files(self) -> list[Path]:
        """The files outside the repository that git reads settings, ignore
        rules or attributes from (those of the user and of the system, and the
        files they include), whether they exist or not."""
        settings = self.settings()
        if self._user_files is not None:
            return self._user_files
        home = Path.home()
        xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "git"
        files = [Path(os.environ.get("GIT_CONFIG_GLOBAL") or home / ".gitconfig")]
        files += [xdg / "config", xdg / "ignore", xdg / "attributes"]
        if not os.environ.get("GIT_CONFIG_NOSYSTEM"):
            files.append(Path(os.environ.get("GIT_CONFIG_SYSTEM") or "/etc/gitconfig"))
        files.append(Path("/etc/gitattributes"))
        named = ("core.excludesfile", "core.attributesfile")
        files += [Path(settings[key]).expanduser() for key in named if key in settings]
        files += sorted(self._setting_files)
        inside = (self._git.git_dir.resolve(), self._common_dir.resolve())
        found = dict.fromkeys(self.root / path for path in files)
        self._user_files = [
            path
            for path in found
            if not any(d in path.resolve().parents for d in inside)
        ]
        return self._user_files

    def kept_files(self) -> dict[Path, str]:
        """The files beyond the repository's git folder that a batch must not
        change, each with what is said when one did: those git reads settings,
        ignore rules or attributes from (:meth:`user_setting_files`), and each
        submodule's ``.git`` file, which names the repository that the user's
        ``git status`` looks into (and whose settings it runs)."""
        said = "the git settings file {} (outside the repository) was changed"
        kept = {path: said.format(path) for path in self.user_setting_files()}
        for path in self.submodule_paths():
            said = f"the .git file of the repository at {path} was changed"
            kept[self.root / path / ".git"] = said
        return kept

    def submodule_paths(self) -> list[str]:
        """The submodules' paths as ``.gitmodules`` names them now, the other
        gitlinks of the user's index (a repository embedded without a
        ``.gitmodules`` entry: the user's `git status` looks into it all the
        same), and the other repositories the last full scan found (with no
        commit, or not in the user's index: no snapshot of ours would hold
        their files); one that leads out of the work tree or into ``.git``
        left out."""
        paths = [*sorted(self._listing()[2]), *self.unborn, *self.embedded]
        gitmodules = self.root / ".gitmodules"
        if gitmodules.is_file():
            asked = ("config", "--file", str(gitmodules), "-z", "--get-regexp")
            out = self._git.run(*asked, r"^submodule\..*\.path$", codes=(0, 1, 128))
            paths += [name_of(r).partition("\n")[2] for r in out.split(b"\0") if r]
        return [
            path
            for path in dict.fromkeys(paths)
            if path
            and not path.startswith("/")
            and not {"..", ".git", ""} & set(path.split("/"))
        ]

    def forget_settings(self) -> None:
        """Forgets the settings, ignore rules and attributes read so far."""
        self._settings = None
        self._ignorer.close()
        self._objects.forget_filters()

    def _modes_from_files(self) -> bool:
        """Whether git takes modes and links from the files themselves."""
        settings = self.settings()
        return not any(  # a git boolean is true unless it says no (a bare key too)
            settings.get(key, "").strip().lower() in ("false", "no", "off", "0")
            for key in ("core.filemode", "core.symlinks")
        )

    # -- trees --------------------------------------------------------------

    def tree(self) -> str:
        """The tree of the working tree now (less ignored and excluded paths)."""
        followed = self._follow()
        if followed is not None:
            return followed
        if self._tracker is not None:
            self._tracker.changes()  # what the scan is about to see anyway
        elif self._start_tracker is not None:
            self._tracker = self._start_tracker(self.root)
        if self._tracker is None or not self._tracker.usable:
            self._drop_tracker()  # none, or one that can never vouch again
        # Ignore rules, attributes or settings may have changed: read them anew.
        self.forget_settings()
        context = self._context()
        tree = self._write_tree(add=True)
        tree = self._without_excluded(tree)
        self._followed = (tree, context) if self._tracker is not None else None
        return tree

    def _follow(self) -> str | None:
        """The tree now, from the last one and the tracker's changed paths, or
        None where that cannot be vouched for. Then nothing is followed until
        the next full scan: the changes the tracker gave (or its one "cannot
        vouch") are not given again, and a tree made without them is wrong."""
        if self._tracker is None or self._followed is None:
            return None
        tree, context = self._followed
        changed = self._tracker.changes() if self._context() == context else None
        if changed is not None and not changed:
            return tree
        new = None if changed is None else self._with_changed(tree, changed)
        self._followed = None if new is None else (new, context)
        return new

    def _drop_tracker(self) -> None:
        """Full scans from now on."""
        self.close()
        self._start_tracker, self._followed = None, None

    def _context(self) -> tuple[object, ...]:
        """What a tree depends on besides the files: the user's index, ignore
        rules, attributes and settings outside it, and the paths left out."""
        common = self._common_dir
        files = [common / "info" / "exclude", common / "info" / "attributes"]
        files += [common / "config", self._git.git_dir / "config.worktree"]
        files += self.user_setting_files()
        return (_stat_key(self._index_file), self.exclude, *map(_stat_key, files))

    def _without_excluded(self, tree: str) -> str:
        """``tree`` less the excluded paths (a folder with all below it),
        whatever ignore rules or the user's index say of them."""
        below = self._objects.entries(tree, self.exclude)
        return self._objects.with_changes(tree, dict.fromkeys([*self.exclude, *below]))

    def _excluded(self, path: str) -> bool:
        return any(path == e or path.startswith(f"{e}/") for e in self.exclude)

    def _with_changed(self, tree: str, changed: set[str]) -> str | None:
        """``tree`` with the ``changed`` paths (a folder standing for all below
        it) as ``git add -A`` would take them now; None where it cannot say."""
        changed = {path for path in changed if not self._excluded(path)}
        special = {".git", ".gitignore", ".gitattributes"}
        if any(special.intersection(path.split("/")) for path in changed):
            return None  # what is tracked, or how, may have changed: scan
        found = self._modes_from_files() and self._present_and_gone(tree, changed)
        if not found:
            return None
        present, gone = found
        paths = sorted(present)
        index_tree = self.index_tree()
        known = self._objects.entries(index_tree, paths) if index_tree else {}
        known |= self._objects.entries(tree, paths)
        try:
            ignored = self.ignored([p for p in paths if p not in known])
            entries = self._hash_entries([p for p in paths if p not in ignored])
        except (GitError, OSError):
            return None  # a file went again while it was read: scan instead
        changes: dict[str, Entry | None] = {**dict.fromkeys(gone), **entries}
        return self._objects.with_changes(tree, changes)

    def _present_and_gone(
        self, tree: str, changed: set[str]
    ) -> tuple[set[str], set[str]] | None:
        present: set[str] = set()
        gone: set[str] = set()
        for path in changed:
            full = self.root / path
            if is_file(self.root, path):
                present.add(path)
                continue
            gone.add(path)  # for a folder, a file it replaced, if any
            if full.is_dir() and not beyond_link(self.root, path):
                below = _files_below(full, path)
                if below is None:
                    return None  # a nested repository
                present.update(below)
        if any(_has_other_names(self.root / path) for path in present):
            # A second name for a file: a change made through one is reported
            # for that one only, so the tracker cannot vouch for changes again.
            self._drop_tracker()
            return None
        gone.update(self._objects.entries(tree, list(gone)))  # files below folders
        return present, gone - present

    # -- files --------------------------------------------------------------

    def entries_of(self, files: Sequence[str]) -> dict[str, Entry]:
        """The entries those of ``files`` that exist would be staged as: from
        the tree the tracker follows where it vouches for them, else hashed."""
        present = [p for p in files if is_file(self.root, p)]
        if not present:
            return {}
        followed = self._follow()
        known = self._objects.entries(followed, present) if followed else {}
        found = {p: known[p] for p in present if p in known}
        return found | self._hash_entries([p for p in present if p not in found])

    def _hash_entries(self, present: Sequence[str]) -> dict[str, Entry]:
        """The entries of existing files, hashed (and written) by git."""
        if not present:
            return {}
        odd = any("\n" in p or p.startswith('"') for p in present)
        if odd or not self._modes_from_files():
            return self._staged_entries(present)
        found: dict[str, Entry] = {}
        for path in present:
            if (target := self.root / path).is_symlink():
                link = os.fsencode(target.readlink())
                found[path] = Entry("120000", self._objects.write_blob(link))
        regular = [p for p in present if p not in found]
        for path, sha in self._objects.hash_files(regular).items():
            executable = (self.root / path).stat().st_mode & stat.S_IXUSR
            found[path] = Entry("100755" if executable else "100644", sha)
        return found

    def _staged_entries(self, present: Sequence[str]) -> dict[str, Entry]:
        """Entries as staging makes them: where git takes modes from the index
        (core.fileMode or core.symlinks off), or a name cannot go on a line."""
        with self.temporary_index(from_user=False) as index:
            stage = ["update-index", "--add", "-z", "--stdin"]
            self._git.run(*stage, index=index, stdin=nul(present))
            out = self._git.run("ls-files", "-s", "-z", index=index)
        found: dict[str, Entry] = {}
        for record in filter(None, out.split(b"\0")):
            meta, _, path = record.partition(b"\t")
            mode, sha, _stage = meta.decode().split()
            found[name_of(path)] = Entry(mode, sha)
        return found

    def ignored(self, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` that the ignore rules cover now, tracked or not."""
        if not paths:
            return set()
        # Four fields a path: the rule's source, line and pattern (empty when
        # none matches), then the path; a rule ``!pattern`` matches to un-ignore.
        fields = self._ignorer.ask(nul(paths), answers=4 * len(paths), end=b"\0")
        found = zip(fields[::4], fields[2::4], fields[3::4], strict=True)
        return {
            name_of(path)
            for source, rule, path in found
            if source and not rule.startswith(b"!")
        }

    # -- the user's index ---------------------------------------------------

    @contextmanager
    def temporary_index(self, *, from_user: bool) -> Iterator[Path]:
        """A temporary index, empty or a second name for the user's. Git writes
        an index anew and renames it into place, so the user's stays as it is;
        and the link keeps the index's timestamp, which matters: git trusts an
        entry's stat data only when the file is older than the index, so a copy
        stamped now would hide a same-size edit made in the second the entry
        was staged."""
        self._serial += 1
        index = self._scratch / f"temporary-{self._serial}.index"
        if from_user and self._index_file.exists():
            try:
                os.link(self._index_file, index)
            except OSError:  # a file system without hard links
                shutil.copy2(self._index_file, index)
        try:
            yield index
        finally:
            for leftover in self._scratch.glob(f"{index.name}*"):
                leftover.unlink(missing_ok=True)

    def index_tree(self) -> str | None:
        """The tree of what the user has staged (None when it cannot be written
        as a tree, e.g. unmerged paths); the user's index is not touched. Known
        without git while the index file is as last seen: git replaces the
        file on every write, so its inode, size and times change."""
        return self._index()[1]

    def index_corrupt(self) -> bool:
        """Whether git cannot read the user's index at all (a batch wrote it
        by hand, or cut it short)."""
        return self._index()[2]

    def _index(self) -> tuple[_StatKey, str | None, bool]:
        key = _stat_key(self._index_file)
        if self._index_state is not None and self._index_state[0] == key:
            return self._index_state
        tree, corrupt = None, not _checksum_holds(self._index_file)
        try:
            tree = None if corrupt else self._write_tree(add=False)
        except GitError as exc:
            corrupt = any(word in str(exc) for word in _CORRUPT)
        state = (key, tree, corrupt)
        if _stat_key(self._index_file) == key:  # not rewritten while it was read
            self._index_state = state
        return state

    def reset_index(self, tree: str) -> None:
        """Makes the user's index anew from ``tree`` (its stat data is lost:
        the next ``git status`` hashes the files again)."""
        self._git.run("read-tree", tree)

    def _write_tree(self, *, add: bool) -> str:
        """The tree of the user's index, with (``add``) the working tree added
        as ``git add -A`` would, whatever flags say to take an entry as it is
        (see :meth:`index_flags`); the user's index is not touched."""
        with self.temporary_index(from_user=True) as index:
            if add:
                # An entry marked assume-unchanged, or skip-worktree with its
                # file there, would be taken as staged: a change a batch hid
                # that way would never be quarantined, and a user's edit in
                # such a file never snapshotted (and lost by a restore).
                hidden = [
                    (path, flag)
                    for path, flag in self.index_flags()
                    if flag == "assume-unchanged" or is_file(self.root, path)
                ]
                self.set_flags(hidden, on=False, index=index)
                self._add_all(index)
            return self._git.text("write-tree", index=index)

    def _add_all(self, index: Path) -> None:
        """``git add -A`` into ``index``, less each repository with no commit
        inside the work tree (``git init`` alone, ``cargo new``): git cannot
        stage one, names it and stops, so it is left out like an ignored
        folder (no snapshot holds it) rather than no tree being made."""
        unborn: list[str] = []
        while True:
            left_out = [f":(exclude,literal){path}" for path in unborn]
            said: list[str] = []
            try:
                add = ("add", "-A", "--", ".", *left_out)
                self._git.run(*add, index=index, said=said)
                self.unborn = tuple(path.rstrip("/") for path in unborn)
                self.embedded = tuple(_EMBEDDED.findall("".join(said)))
                return
            except GitError as exc:
                found = [p for p in _UNBORN.findall(str(exc)) if p not in unborn]
                if not found:
                    raise
                unborn += found

    def index_flags(self) -> Flags:
        """The entries of the user's index that git takes as they are without
        looking at their files (``git update-index --assume-unchanged`` or
        ``--skip-worktree``), as (path, flag) pairs."""
        return self._listing()[1]

    def _listing(self) -> tuple[_StatKey, Flags, frozenset[str]]:
        """The index's flags and its gitlinks' paths; ``git ls-files -s -v``
        is asked only when the index changed since it was last asked."""
        key = _stat_key(self._index_file)
        if self._listed is not None and self._listed[0] == key:
            return self._listed
        out = self._git.run("ls-files", "-s", "-v", "-z")
        found: set[tuple[str, str]] = set()
        links: set[str] = set()
        for record in filter(None, out.split(b"\0")):
            meta, _, raw = record.partition(b"\t")
            tag, path = meta[:1], name_of(raw)
            if tag.islower():  # lower case: assume unchanged
                found.add((path, "assume-unchanged"))
            if tag in (b"S", b"s"):
                found.add((path, "skip-worktree"))
            if meta[2:9] == b"160000 ":
                links.add(path)
        listed = (key, frozenset(found), frozenset(links))
        if _stat_key(self._index_file) == key:  # not rewritten while it was read
            self._listed = listed
        return listed

    def index_paths(self) -> set[str]:
        """The paths the user's index has entries for."""
        out = self._git.run("ls-files", "-z")
        return {name_of(record) for record in out.split(b"\0") if record}

    def set_flags(
        self,
        flags: Iterable[tuple[str, str]],
        *,
        on: bool,
        index: Path | None = None,
    ) -> None:
        """Sets (``on``) or clears the ``flags`` of entries of the user's
        index (or of ``index``); each entry must be there."""
        by_flag: dict[str, list[str]] = {}
        for path, flag in flags:
            by_flag.setdefault(flag, []).append(path)
        for flag, paths in sorted(by_flag.items()):
            option = f"--{flag}" if on else f"--no-{flag}"
            self._git.run(
                "update-index", option, "-z", "--stdin", index=index, stdin=nul(paths)
            )

    def set_index_entries(
        self, entries: Mapping[str, Entry | None], *, index: Path | None = None
    ) -> None:
        """Sets (None: removes) entries of the user's index, or of ``index``."""
        lines = [
            f"{e.mode} {e.sha}\t{p}" if e else f"0 {self._objects.null}\t{p}"
            for p, e in entries.items()
        ]
        info = ["update-index", "-z", "--index-info"]
        self._git.run(*info, index=index, stdin=nul(lines))

    def stage_from_files(self, paths: Sequence[str], *, tree: str) -> None:
        """Stages ``paths`` from the working tree (fresh stat data, so that
        ``git status`` need not hash them again); the index's tree is ``tree``."""
        followed = self._followed
        if followed is not None and followed[1] != self._context():
            followed = None
        listed = self._listed
        if listed is not None and listed[0] != _stat_key(self._index_file):
            listed = None
        stage = ["update-index", "--add", "--remove", "--replace", "-z", "--stdin"]
        self._git.run(*stage, stdin=nul(paths))
        # Staged entries carry no flags (unless core.ignoreStat marks every
        # entry it stages): with none before, there are none now. Nor is a
        # gitlink made (a verified batch made no repository); one staged away
        # stays listed, harmless: no repository is there to look into.
        ignore_stat = self.settings().get("core.ignorestat", "").lower()
        if listed and not listed[1] and ignore_stat in ("", "false"):
            self._listed = (_stat_key(self._index_file), *listed[1:])
        if followed is not None:
            # What the tracker follows was in the tree already: it still holds,
            # under the index as it is now.
            self._followed = (followed[0], self._context())
        self._index_state = (_stat_key(self._index_file), tree, False)


def _checksum_holds(index: Path) -> bool:
    """Whether the index file ends with the hash of all before it, as git
    writes it (or with zeros, as ``index.skipHash`` does): git itself reads
    an index without checking that, so one a batch cut short would pass for
    a small index. Read only when the index changed since last seen."""
    try:
        data = index.read_bytes()
    except FileNotFoundError:
        return True  # no index yet: nothing staged
    except OSError:
        return False
    for algorithm in (hashlib.sha1, hashlib.sha256):
        size = algorithm().digest_size
        trailer = data[-size:]
        if len(data) > size and trailer in (
            bytes(size),
            algorithm(data[:-size]).digest(),
        ):
            return True
    return False


def _stat_key(path: Path) -> _StatKey:
    try:
        info = path.stat()
    except OSError:
        return None
    # Not the change time: our own hard links to the index change it.
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _has_other_names(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink > 1


def _files_below(folder: Path, relative: str) -> list[str] | None:
    """The files (and symlinks) below ``folder``, as paths below ``relative``;
    None when a nested repository is among them."""
    found: list[str] = []
    for current, folders, files in os.walk(folder):
        if ".git" in folders or ".git" in files:
            return None
        inside = Path(current).relative_to(folder).as_posix()
        prefix = relative if inside == "." else f"{relative}/{inside}"
        # A link to a folder is kept as the link itself (os.walk does not follow it).
        links = [name for name in folders if (Path(current) / name).is_symlink()]
        found.extend(f"{prefix}/{name}" for name in [*files, *links])
    return found
