"""The repository's own state, kept at a baseline and put back first.

A batch is code nobody reviewed, run with the user's repository at hand: it
could plant ``core.fsmonitor``, a hook, a filter driver, a ``core.worktree``
or an attributes file, name object alternates of its own, move HEAD, commit by
itself, move a tag, drop the user's stash or leave a merge in progress, and
the next git command of ours (or the user's) would run its code, write
somewhere else or lose something.
The git folder itself comes first: one a batch renamed at the top of the
work tree is renamed back (:meth:`Guard._put_back_folder`).
So the settings files (``config``, ``config.worktree``), ``info/``,
``hooks/``, ``remotes/`` and ``branches/``, the object alternates,
``shallow``, git's state of an operation in progress (:data:`IN_PROGRESS`),
and the submodules' settings and hooks (under ``modules/``) are kept byte
for byte and written back before any other git command of ours runs; HEAD,
the user's refs (the remote-tracking ones too), the stash's entries and the
other worktrees' HEADs are then put back through git. A replace ref or a
remote-tracking branch the batch made is deleted, and so is a name it gave
that git would take for a branch or a remote-tracking branch (a tag,
``refs/main`` or ``refs/origin/main``, or a file or folder at the top of
the git folder); other new refs are left in place, a new branch named.
The same holds for the files outside the git folder that git reads
settings, ignore rules and attributes from (the user's global settings,
the system's, and the files they include), and for each submodule's
``.git`` file, and for the settings of the repository's other worktrees: a
filter a batch defines there would run inside our own git commands, and on
the user's next one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from recovery_adapters.git.command import WorkspaceError
from recovery_adapters.git.refs import STASH, Refs, RefState
from recovery_core.store import RECOVERY_DIR

__all__ = ["IN_PROGRESS", "Guard", "RepositoryState"]

#: What git keeps in a work tree's git folder while an operation is under
#: way (the files and, for a rebase and the sequencer, folders), each with
#: the operation. Left by a batch, one would take over the user's next git
#: command: MERGE_HEAD makes their next commit a merge with a commit of the
#: batch's choosing, CHERRY_PICK_HEAD gives it another author.
IN_PROGRESS: Final = {
    **dict.fromkeys(
        ("MERGE_HEAD", "MERGE_MODE", "MERGE_MSG", "MERGE_AUTOSTASH", "AUTO_MERGE"),
        "a merge",
    ),
    "SQUASH_MSG": "a squash merge",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
    "sequencer": "a cherry-pick or revert",
    "REBASE_HEAD": "a rebase",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase or am",
    **dict.fromkeys(
        (
            *("BISECT_LOG", "BISECT_START", "BISECT_TERMS", "BISECT_NAMES"),
            *("BISECT_EXPECTED_REV", "BISECT_ANCESTORS_OK", "BISECT_RUN"),
            *("BISECT_FIRST_PARENT", "BISECT_HEAD"),
        ),
        "a bisect",
    ),
}
#: The operations' folders among them.
_IN_PROGRESS_FOLDERS: Final = ("sequencer", "rebase-merge", "rebase-apply")
#: The names git gives refs of its own at the top of a git folder (HEAD,
#: ORIG_HEAD, FETCH_HEAD, ...): never taken for a shadow of a branch.
_PSEUDO_REF: Final = re.compile(r"[A-Z_]+")
#: The folders of git's own (and git-lfs's) at the top of a git folder: never
#: taken for the shadow of a remote's tracking branches.
_GIT_OWN: Final = frozenset(
    (
        *("hooks", "info", "logs", "objects", "refs", "modules", "worktrees"),
        *("branches", "remotes", "rr-cache", "svn", "lfs", *_IN_PROGRESS_FOLDERS),
    )
)
#: A remote's name we look for shadows of.
_REMOTE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: What a file git reads as a ref holds: an object id, or a ref's name.
_REF_LIKE: Final = re.compile(rb"(?:[0-9a-f]{40}|[0-9a-f]{64}|ref: [^\n]+)\n?")


@attrs.frozen
class _File:
    """A file's bytes and mode, or a symlink's target (git follows links)."""

    content: bytes
    mode: int
    link: bool

    def write(self, path: Path) -> None:
        """Puts the file back whole: written beside it and renamed over it, so
        that a kill halfway never leaves the user's settings half written."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.recovery-{os.getpid()}")
        _remove(temporary)
        if self.link:
            temporary.symlink_to(os.fsdecode(self.content))
        else:
            temporary.write_bytes(self.content)
            temporary.chmod(self.mode)
        temporary.replace(path)


@attrs.frozen
class RepositoryState:
    """What a batch must not change in the repository: each file (or symlink)
    of ours by its path (of those ``outside`` its git folder too, with what is
    said when one changed), the refs, the locks that were there, the
    folders of ours that were there, and the HEADs of the other worktrees
    (by the name git gives each from here, see :meth:`Guard.heads`)."""

    files: Mapping[Path, _File]
    refs: RefState
    outside: Mapping[Path, str] = attrs.field(factory=dict)
    locks: frozenset[Path] = frozenset()
    folders: frozenset[Path] = frozenset()
    heads: Mapping[str, str] = attrs.field(factory=dict)
    shadows: frozenset[Path] = frozenset()
    remotes: tuple[str, ...] = ()
    folder: tuple[int, int] | None = None


def _folder_key(path: Path) -> tuple[int, int] | None:
    """Which folder ``path`` is (never through a link), or None."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _read_file(path: Path) -> _File | None:
    """The file or symlink at ``path``, else None. Read every time: a stat
    cache could miss a same-size rewrite within the file system's time tick."""
    with contextlib.suppress(OSError):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            return _File(os.fsencode(path.readlink()), 0, True)
        if stat.S_ISREG(mode):
            return _File(path.read_bytes(), stat.S_IMODE(mode), False)
    return None


def _read_modules(modules: Path) -> dict[Path, _File]:
    """The settings files and hooks of the submodules' repositories below
    ``modules`` (nested ones too; a folder that is a symlink, as the link):
    their objects, refs and logs are not read."""
    link = _read_file(modules)
    if link is not None:
        return {modules: link}
    found: dict[Path, _File] = {}
    for current, folders, files in os.walk(modules):
        here = Path(current)
        for name in ("config", "config.worktree"):
            if name in files and (content := _read_file(here / name)):
                found[here / name] = content
        if "hooks" in folders:
            hooks = here / "hooks"
            link = _read_file(hooks)
            found |= {hooks: link} if link else _read_folder(hooks)
        if (here / "HEAD").is_file():  # a repository: only its modules/ below
            folders[:] = [name for name in folders if name == "modules"]
    return found


def _read_folder(folder: Path) -> dict[Path, _File]:
    """Every file and symlink below ``folder``; a symlink, to a folder too, is
    kept as the link and never followed."""
    try:
        entries = list(os.scandir(folder))
    except (NotADirectoryError, FileNotFoundError):
        return {}
    found: dict[Path, _File] = {}
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            found |= _read_folder(path)
        elif (content := _read_file(path)) is not None:
            found[path] = content
    return found


class Guard:
    """Keeps and puts back one repository's state. ``git_dir`` is the work
    tree's own git folder, ``common_dir`` the repository's (they differ in a
    linked worktree); ``outside`` gives the other files kept, as they are
    named now, each with what is said when it changed (those outside the
    repository that git reads settings from, a submodule's ``.git`` file)."""

    def __init__(
        self,
        refs: Refs,
        *,
        root: Path,
        git_dir: Path,
        common_dir: Path,
        outside: Callable[[], Mapping[Path, str]] = dict,
        remotes: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self._refs = refs
        self._outside, self._remotes = outside, remotes
        # Each file and folder kept, with what is reported when it changed.
        ours, info = "the repository's", "info/ files (exclude, attributes)"
        objects = common_dir / "objects" / "info"
        self._files = {
            common_dir / "config": f"{ours} git config was changed",
            git_dir / "config.worktree": f"{ours} git config.worktree was changed",
            root / ".git": "the work tree's .git file was changed",  # linked worktree
            git_dir / "commondir": "the work tree's commondir file was changed",
            # Objects found elsewhere are not written here (and are lost with
            # that folder); commits a shallow file names hide their history.
            objects / "alternates": f"{ours} object alternates were changed",
            objects / "http-alternates": f"{ours} object alternates were changed",
            common_dir / "shallow": f"{ours} shallow file was changed",
            # Keeps the library's own folder (the store, the log) out of git.
            root
            / RECOVERY_DIR
            / ".gitignore": f"{RECOVERY_DIR}/.gitignore was changed",
        }
        # remotes/ and branches/ name remotes as the settings do (git's older
        # way, still read): a remote planted there gets the user's next push.
        legacy = f"{ours} remotes named in remotes/ or branches/ were changed"
        self._folders = {
            common_dir / "info": f"{ours} {info} were changed",
            common_dir / "hooks": f"{ours} hooks were changed",
            common_dir / "remotes": legacy,
            common_dir / "branches": legacy,
        }
        for name, what in IN_PROGRESS.items():
            said = f"git's state of {what} in progress was made or changed (put back)"
            kept = self._folders if name in _IN_PROGRESS_FOLDERS else self._files
            kept[git_dir / name] = said
        # Locks a batch may leave behind that would stop every later write of
        # the index, HEAD, the settings or HEAD's branch (ours and the
        # user's). Git has no command that clears one; one that was there
        # before is never touched.
        self._locks = [git_dir / "index.lock", git_dir / "HEAD.lock"]
        self._locks.append(common_dir / "config.lock")
        self._root, self._git_dir, self._common_dir = root, git_dir, common_dir
        # The submodules' repositories: their settings and hooks run in the
        # user's next `git status`, which looks into each submodule.
        self._modules = common_dir / "modules"
        # The refs that git would take for a branch, listed with the user's
        # (``refs/<branch>``, ``refs/<remote>/``), for the branches and
        # remotes the last state had.
        self._shadowing: tuple[str, ...] = ()

    def _lock_paths(self, refs: RefState) -> list[Path]:
        """The locks kept: ours, and that of the branch HEAD names."""
        branch = refs.head_ref
        if branch is None or not branch.startswith("refs/heads/"):
            return self._locks
        return [*self._locks, self._common_dir / (branch + ".lock")]

    def state(self) -> RepositoryState:
        outside = dict(self._outside()) | self._worktree_files()
        files, refs = self._read(outside), self._refs.state(also=self._shadowing)
        remotes = tuple(r for r in self._remotes() if _REMOTE_NAME.fullmatch(r))
        shadowing = tuple(f"refs/{name}" for name in (*_branches(refs), *remotes))
        if shadowing != self._shadowing:  # the first state, or new names
            self._shadowing = shadowing
            refs = self._refs.state(also=shadowing)
        locks = frozenset(
            p for p in self._lock_paths(refs) if _read_file(p) is not None
        )
        folders = frozenset(p for p in self._folders if os.path.lexists(p))
        tops = self._tops(refs, remotes)
        return RepositoryState(
            files,
            refs,
            outside,
            locks,
            folders,
            self.heads(),
            shadows=frozenset(p for p in tops if os.path.lexists(p)),
            remotes=remotes,
            folder=self._own_folder(),
        )

    def _own_folder(self) -> tuple[int, int] | None:
        """The git folder, when it is the work tree's ``.git`` folder (not a
        linked worktree's, whose ``.git`` file is kept as a file)."""
        if self._git_dir != self._root / ".git" or self._git_dir != self._common_dir:
            return None
        return _folder_key(self._git_dir)

    def _tops(self, refs: RefState, remotes: Iterable[str]) -> dict[Path, str]:
        """What git would take, at the top of the git folders, for a branch of
        ``refs`` (the file ``.git/main``, before ``refs/heads/main``) or for
        a remote's tracking branches (files in the folder ``.git/origin``,
        before ``refs/remotes/origin/``), each with what it would be taken
        for. Git's own names are never among them."""
        names = {
            branch: f"the branch {branch}"
            for branch in _branches(refs)
            if not _PSEUDO_REF.fullmatch(branch)
        }
        names |= {
            remote: f"the remote-tracking branches of {remote}"
            for remote in remotes
            if remote not in _GIT_OWN and not _PSEUDO_REF.fullmatch(remote)
        }
        folders = (self._git_dir, self._common_dir)
        return {
            folder / name: what for name, what in names.items() for folder in folders
        }

    def _linked(self) -> Iterator[tuple[Path, str]]:
        """Each linked worktree's folder in the repository's git folder, and
        the path of its ``.git`` file as that folder's ``gitdir`` names it."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self._common_dir / "worktrees"):
                if entry.is_dir(follow_symlinks=False):
                    named = _read_file(Path(entry.path, "gitdir"))
                    dotgit = "" if named is None or named.link else named.content
                    yield Path(entry.path), os.fsdecode(dotgit).strip()

    def heads(self) -> dict[str, str]:
        """The HEAD of each of the repository's other worktrees (see
        :meth:`Refs.worktrees`), by the name git gives it from here
        (``main-worktree/HEAD``, ``worktrees/<id>/HEAD``): a batch that
        moved one would send the user's next commit there to another branch.
        No git command is run where the repository has no linked worktree."""
        names = {
            (admin / dotgit).parent.resolve(): f"worktrees/{admin.name}/HEAD"
            for admin, dotgit in self._linked()
            if dotgit
        }
        if not names and self._git_dir == self._common_dir:
            return {}
        listed = [(Path(p).resolve(), head) for p, head in self._refs.worktrees()]
        if listed:
            names.setdefault(listed[0][0], "main-worktree/HEAD")
        here = self._root.resolve()
        return {
            names[path]: head
            for path, head in listed
            if head and path in names and path != here
        }

    def _worktree_files(self) -> dict[Path, str]:
        """The files that say where the repository's other worktrees find
        their settings (and run them, on the user's next git command there):
        the main worktree's ``config.worktree``, and each linked worktree's
        ``config.worktree``, ``commondir``, ``gitdir`` and ``.git`` file, as
        they are named now (never as a batch renames them later)."""
        common = self._common_dir
        said = "the git settings of the main worktree were changed"
        found = {common / "config.worktree": said}
        for admin, dotgit in self._linked():
            said = f"the git settings of the worktree {admin.name} were changed"
            for name in ("config.worktree", "commondir", "gitdir"):
                found[admin / name] = said
            if dotgit:
                found[admin / dotgit] = said
        return {p: said for p, said in found.items() if p not in self._files}

    def _read(self, outside: Iterable[Path]) -> dict[Path, _File]:
        """Our files, those ``outside``, and the files below our folders. A
        folder of ours that is a symlink (or a file) is kept as that, never
        followed: one a batch puts there is taken away like any other change."""
        found = {p: f for p in (*self._files, *outside) if (f := _read_file(p))}
        for folder in self._folders:
            link = _read_file(folder)
            found |= {folder: link} if link else _read_folder(folder)
        return found | _read_modules(self._modules)

    def put_back(self, before: RepositoryState, *, refs: bool = True) -> list[str]:
        """Writes back what differs from ``before`` (the files first, so that
        git reads the refs with the settings as they were; then, with
        ``refs``, HEAD and the branches); returns what was found changed.
        The git folder itself comes first (see :meth:`_put_back_folder`)."""
        moved = self._put_back_folder(before.folder)
        now, kept = self._read(before.outside), before.files
        changed = {p for p in kept.keys() | now.keys() if kept.get(p) != now.get(p)}
        problems = moved + [said for p, said in self._files.items() if p in changed]
        problems += [said for path, said in before.outside.items() if path in changed]
        # A folder of ours the batch made (an empty rebase-merge/ too says a
        # rebase is under way) goes, with all in it.
        made = [
            f for f in self._folders if f not in before.folders and os.path.lexists(f)
        ]
        problems += [
            said
            for folder, said in self._folders.items()
            if folder in made
            or any(p == folder or folder in p.parents for p in changed)
        ]
        modules = self._modules
        if any(p == modules or modules in p.parents for p in changed):
            problems.append("a submodule's git settings or hooks were changed")
        # What the batch made goes first: a file where a folder of ours was,
        # or a link that would send what is put back elsewhere.
        for path in sorted(changed - kept.keys()):
            _remove(path)
        for path in sorted(changed & kept.keys()):
            kept[path].write(path)
        for folder in made:
            _remove(folder)
        for lock in self._lock_paths(before.refs):
            if lock not in before.locks and _read_file(lock) is not None:
                _remove(lock)
                problems.append(f"a lock file left behind ({lock.name}) was removed")
        problems += self._remove_shadows(before)
        if refs:
            problems += self._put_back_refs(before.refs, before.remotes)
            problems += self._put_back_heads(before.heads)
        return list(dict.fromkeys(problems))  # one line for a merge's three files

    def _put_back_folder(self, folder: tuple[int, int] | None) -> list[str]:
        """Puts the work tree's ``.git`` folder back where a batch renamed it
        at the top of the work tree (``mv .git .git-old``), found by what it
        is; what the batch put in its place (``git init`` anew) is moved to
        ``.recovery/repositories/``. Raises :class:`WorkspaceError`, writing
        nothing, when it is gone: nothing of ours may make a git folder of
        its own there, which git would take for the user's repository."""
        if folder is None or _folder_key(self._git_dir) == folder:
            return []
        found = next(
            (
                Path(entry.path)
                for entry in os.scandir(self._root)
                if _folder_key(Path(entry.path)) == folder
            ),
            None,
        )
        if found is None:
            raise WorkspaceError(
                f"the repository's git folder was removed ({self._git_dir}), or "
                "moved out of the top of the work tree: nothing of the attempt "
                "could be put back or quarantined, and the history, the "
                "branches and the snapshots went with it"
            )
        said = f"the repository's git folder was moved to {found.name} (put back"
        if os.path.lexists(self._git_dir):
            aside = self._root / RECOVERY_DIR / "repositories"
            again = 1
            while os.path.lexists(aside / f"git-folder-{again}"):
                again += 1
            (aside / f"git-folder-{again}").mkdir(parents=True)
            shutil.move(self._git_dir, aside / f"git-folder-{again}" / ".git")
            where = f"{RECOVERY_DIR}/repositories/git-folder-{again}"
            said += f"; what the batch made at .git was moved to {where}"
        found.rename(self._git_dir)
        return [f"{said})"]

    def _remove_shadows(self, before: RepositoryState) -> list[str]:
        """Removes what a batch made at the top of a git folder that git would
        take for a branch or a remote's tracking branches: the user's next
        `git merge main` or `git rebase origin/main` would take the batch's
        commit (git only warns that the name is ambiguous). A file is removed
        if it holds what a ref does (or is a link), a remote's folder whole."""
        problems: list[str] = []
        for path, what in sorted(self._tops(before.refs, before.remotes).items()):
            if path in before.shadows:
                continue  # the user's
            found = _read_file(path)
            folder = path.is_dir() and path.name in before.remotes
            if folder or (found and (found.link or _REF_LIKE.fullmatch(found.content))):
                _remove(path)
                problems.append(
                    f"{path.name} was made in the git folder, which git would "
                    f"take for {what} (removed)"
                )
        return problems

    def _put_back_refs(self, before: RefState, remotes: Iterable[str]) -> list[str]:
        now = self._refs.state(also=self._shadowing)
        branches, remotes = set(_branches(before)), tuple(remotes)
        problems: list[str] = []
        # HEAD is the branch it names, or the commit when detached: a branch
        # that moved under an unchanged HEAD is reported below, as that branch.
        head_was, head_now = before.head_ref or before.head, now.head_ref or now.head
        if head_was != head_now:
            problems.append(f"HEAD moved from {head_was} to {head_now}")
            self._refs.put_head(before)
        old, new = dict(before.refs), dict(now.refs)
        for name, sha in old.items():
            if name != STASH and new.get(name) != sha:
                problems.append(f"{_kind(name)} {name} was rewritten or deleted")
                self._refs.put_ref(name, sha)
        # A new tag or notes ref changes nothing the user had (and a fetch
        # while the batch ran may have made it); a new branch is named. A new
        # remote-tracking branch goes: the user's `git switch <name>` would
        # start a branch of theirs from it.
        for name in sorted(new.keys() - old.keys() - {STASH}):
            if name.startswith(("refs/replace/", "refs/remotes/")):
                self._refs.delete(name, new[name])
                problems.append(f"{_kind(name)} {name} was created (removed)")
            elif what := _shadowed(name, branches, remotes):
                self._refs.delete(name, new[name])
                problems.append(
                    f"{_kind(name)} {name} was created, which git would take "
                    f"for {what} (removed)"
                )
            elif name.startswith("refs/heads/"):
                problems.append(f"branch {name} was created (left in place)")
        return problems + self._put_back_stash(before.stash, now.stash)

    def _put_back_heads(self, before: Mapping[str, str]) -> list[str]:
        """The other worktrees' HEADs, put back where one moved (one whose
        worktree is gone is not made again)."""
        if not before:
            return []
        problems: list[str] = []
        for name, head in self.heads().items():
            if name in before and head != before[name]:
                problems.append(f"the HEAD of another worktree ({name}) moved")
                self._refs.put_worktree_head(name, before[name])
        return problems

    def _put_back_stash(
        self, before: tuple[tuple[str, str], ...], now: tuple[tuple[str, str], ...]
    ) -> list[str]:
        """The user's stash entries, put back where one is gone; entries the
        batch added stay, newest."""
        added = [entry for entry in now if entry not in before]
        if now[len(added) :] != before:
            self._refs.put_stash([*added, *before])
            return ["the stash was changed (its entries were put back)"]
        if added:
            return [f"the stash has {len(added)} new entry(ies) (left in place)"]
        return []


def _branches(refs: RefState) -> list[str]:
    """The names of the branches of ``refs``, as the user types them."""
    return [
        name.removeprefix("refs/heads/")
        for name, _ in refs.refs
        if name.startswith("refs/heads/")
    ]


def _shadowed(ref: str, branches: set[str], remotes: Sequence[str]) -> str:
    """What git would take the new ref ``ref`` for (``refs/main`` or the tag
    ``main`` for the branch ``main``; ``refs/origin/x`` or the tag
    ``origin/x`` for the remote-tracking branch ``origin/x``), or ``""``."""
    for prefix in ("refs/tags/", "refs/"):
        name = ref.removeprefix(prefix)
        if name in branches:
            return f"the branch {name}"
        if any(name.startswith(f"{remote}/") for remote in remotes):
            return f"the remote-tracking branch {name}"
    return ""


def _kind(ref: str) -> str:
    """What the ref ``ref`` is, in a message."""
    kinds = {
        "refs/heads/": "branch",
        "refs/remotes/": "remote-tracking branch",
        "refs/tags/": "tag",
        "refs/notes/": "notes",
        "refs/replace/": "replace ref",
    }
    return next(
        (kind for prefix, kind in kinds.items() if ref.startswith(prefix)), "ref"
    )
