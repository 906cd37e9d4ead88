"""Git objects, read and written through git's own plumbing.

Reads go through one long-lived ``git cat-file --batch`` per workspace (the
snapshots, the diffs and the validation steps' baseline contents alike);
trees are written by one ``git mktree --batch``, commits by one
``git hash-object -t commit --stdin-paths``, and the blobs of working files by
``git hash-object -w --stdin-paths`` (which applies the path's content filters,
as staging does). Git writes and checks every object; trees are immutable, so
what was read once is kept.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from recovery_adapters.git.command import Git, GitError, Server

__all__ = ["GITLINK", "OUR_NAME", "TREE_MODE", "Entry", "ObjectError", "Objects", "nul"]

#: Who writes the commits of snapshots and quarantines (and of a verified
#: batch, when git has no identity for the user).
OUR_NAME: Final = "recovery-core <recovery-core@localhost>"
#: The mode of a subtree in a tree object (``ls-tree`` prints it as 040000).
TREE_MODE: Final = "40000"
#: How many trees are kept once read (a tree is a few hundred bytes).
_TREES_KEPT: Final = 20_000
#: How many commits are kept once read or written (a commit is a few hundred bytes).
_COMMITS_KEPT: Final = 1_000
_HEX: Final = re.compile(r"[0-9a-f]+")
#: The entries that are not blobs (every other mode is a file's).
#: The mode of a commit of another repository in a tree (a submodule).
GITLINK: Final = "160000"
_KINDS: Final = {TREE_MODE: "tree", GITLINK: "commit"}


class ObjectError(GitError):
    """A git object that should be there cannot be read."""


@attrs.frozen
class Entry:
    """One entry of a tree: its mode as git writes it and its object id."""

    mode: str
    sha: str

    @property
    def is_tree(self) -> bool:
        return self.mode == TREE_MODE


def name_of(raw: bytes) -> str:
    """A path as git stores it, as text (undecodable bytes kept)."""
    return raw.decode("utf-8", "surrogateescape")


def raw_of(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def nul(items: Sequence[str]) -> bytes:
    """``items`` as git's ``-z`` input: each ended by NUL, so no path is read
    as an option or split at a newline."""
    return b"".join(raw_of(item) + b"\0" for item in items)


class Objects:
    """The objects of one repository: read, compared, rebuilt and written."""

    def __init__(self, git: Git, scratch: Path, *, id_bytes: int = 20) -> None:
        self._git = git
        self._scratch = scratch
        self._id_bytes = id_bytes  # 20 for SHA-1 repositories, 32 for SHA-256
        self.null = "0" * (2 * id_bytes)  # the id that means "no object"
        self._reader = Server(git, "cat-file", "--batch")
        # --missing: mktree would otherwise look each entry up with a quick
        # lookup that never rescans packs, and miss an object that a repack
        # (a background `gc --auto`) moved since it started. Every entry we
        # write comes from git, so it exists.
        self._tree_writer = Server(git, "mktree", "--batch", "-z", "--missing")
        self._commit_writer = Server(
            git, "hash-object", "-w", "-t", "commit", "--no-filters", "--stdin-paths"
        )
        # Reads the attributes (content filters) once per directory and keeps
        # them: restarted by forget_filters() whenever they may have changed.
        self._hasher = Server(git, "hash-object", "-w", "--stdin-paths")
        self._trees: dict[str, dict[str, Entry]] = {}
        # Commits are immutable too: those read, and those written (git
        # returns the id of exactly the bytes it was given), are kept.
        self._commits: dict[str, bytes] = {}
        self._serial = 0

    def close(self) -> None:
        """Ends the long-lived git processes."""
        for server in self._reader, self._tree_writer, self._commit_writer:
            server.close()
        self._hasher.close()

    def forget_filters(self) -> None:
        """The next hash reads the attributes and settings anew."""
        self._hasher.close()

    # -- reading ------------------------------------------------------------

    def read(self, name: str) -> tuple[str, bytes] | None:
        """The type and content of the object ``name`` (an id, or
        ``commit:path``), or None when there is no such object."""
        if "\n" in name:
            raise ObjectError(f"cannot ask git for an object named {name!r}")
        try:
            return self._reader.talk(functools.partial(_read_object, raw_of(name)))
        except ObjectError:
            raise
        except GitError as exc:
            raise ObjectError(f"cannot read git object {name}: {exc}") from None

    def tree(self, sha: str) -> dict[str, Entry]:
        """The entries of the tree (or a commit's tree) ``sha`` by name."""
        found = self._trees.get(sha)
        if found is not None:
            return found
        answer = self.read(sha)
        if answer is None:
            raise ObjectError(f"git object {sha} is missing in {self._git.root}")
        kind, data = answer
        if kind == "commit":
            return self.tree(self.commit_tree(sha))
        found = {}
        position, size = 0, len(data)
        while position < size:
            space = data.index(b" ", position)
            nul = data.index(b"\0", space)
            end = nul + 1 + self._id_bytes
            found[name_of(data[space + 1 : nul])] = Entry(
                data[position:space].decode(), data[nul + 1 : end].hex()
            )
            position = end
        if len(self._trees) >= _TREES_KEPT:
            self._trees.clear()
        self._trees[sha] = found
        return found

    def commit_parts(self, commit: str) -> tuple[tuple[str, ...], str]:
        """The parents and the message of the commit ``commit``."""
        head, _, message = self._commit(commit).partition(b"\n\n")
        parents = tuple(
            line[7:].decode() for line in head.split(b"\n") if line[:7] == b"parent "
        )
        return parents, message.decode("utf-8", "replace")

    def commit_tree(self, commit: str) -> str:
        """The tree of the commit ``commit``."""
        data = self._commit(commit)
        return data[5 : data.index(b"\n")].decode()

    def _commit(self, commit: str) -> bytes:
        found = self._commits.get(commit)
        if found is not None:
            return found
        answer = self.read(commit)
        if answer is None or answer[0] != "commit" or answer[1][:5] != b"tree ":
            raise ObjectError(f"{commit} is not a commit in {self._git.root}")
        if self._is_id(commit):  # never a name (HEAD, a ref) that moves
            self._keep_commit(commit, answer[1])
        return answer[1]

    def _is_id(self, name: str) -> bool:
        """Whether ``name`` is a whole object id (not a ref, not abbreviated)."""
        return len(name) == len(self.null) and _HEX.fullmatch(name) is not None

    def _keep_commit(self, commit: str, data: bytes) -> None:
        if len(self._commits) >= _COMMITS_KEPT:
            self._commits.clear()
        self._commits[commit] = data

    def blobs(self, commit: str, paths: Sequence[str]) -> dict[str, bytes | None]:
        """The content of each of ``paths`` in ``commit`` (None: no file)."""
        tree = self.commit_tree(commit)
        found: dict[str, bytes | None] = {}
        for path in paths:
            entry = self.entry(tree, path)
            blob = self.read(entry.sha) if entry and entry.mode not in _KINDS else None
            found[path] = blob[1] if blob else None
        return found

    def entry(self, tree: str, path: str) -> Entry | None:
        """The entry at ``path`` in ``tree`` (a file's or a folder's), or None."""
        current: Entry | None = Entry(TREE_MODE, tree)
        for part in path.split("/"):
            if current is None or not current.is_tree:
                return None
            current = self.tree(current.sha).get(part)
        return current

    def files(self, tree: str, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """Every file below ``tree`` (recursively), with its path."""
        for name, entry in sorted(self.tree(tree).items()):
            if entry.is_tree:
                yield from self.files(entry.sha, f"{prefix}{name}/")
            else:
                yield f"{prefix}{name}", entry

    def entries(self, tree: str, paths: Iterable[str]) -> dict[str, Entry]:
        """The file entries of ``paths`` in ``tree`` (a folder's: all below it),
        as ``git ls-tree -r`` gives them."""
        found: dict[str, Entry] = {}
        for path in paths:
            entry = self.entry(tree, path)
            if entry is not None and entry.is_tree:
                found.update(self.files(entry.sha, f"{path}/"))
            elif entry is not None:
                found[path] = entry
        return found

    def diff(self, old: str | None, new: str | None) -> tuple[str, ...]:
        """The file paths that differ between two trees, sorted, as
        ``git diff-tree -r --name-only`` lists them."""
        return tuple(sorted(self._diff(old, new, "")))

    def _diff(self, old: str | None, new: str | None, prefix: str) -> Iterator[str]:
        if old == new:
            return
        before = self.tree(old) if old else {}
        after = self.tree(new) if new else {}
        for name in before.keys() | after.keys():
            was, now = before.get(name), after.get(name)
            if was == now:
                continue
            old_folder = was.sha if was and was.is_tree else None
            new_folder = now.sha if now and now.is_tree else None
            if old_folder or new_folder:
                yield from self._diff(old_folder, new_folder, f"{prefix}{name}/")
            if (was and not was.is_tree) or (now and not now.is_tree):
                yield f"{prefix}{name}"

    # -- writing ------------------------------------------------------------

    def write_tree(self, entries: Mapping[str, Entry]) -> str:
        """Writes a tree of ``entries`` (names to entries); returns its id."""
        request = b"".join(
            f"{e.mode} {_KINDS.get(e.mode, 'blob')} {e.sha}\t".encode()
            + raw_of(name)
            + b"\0"
            for name, e in entries.items()
        )
        sha = self._tree_writer.ask(request + b"\0")[0].decode().strip()
        self._trees.setdefault(sha, dict(entries))
        return sha

    def with_changes(
        self, tree: str | None, changes: Mapping[str, Entry | None]
    ) -> str:
        """The tree ``tree`` with each path of ``changes`` set to its file entry
        or, for None, removed, as ``git update-index --replace`` would: a file
        takes the place of a folder (and all below it) and the other way round;
        folders left empty go. Returns the new tree's id."""
        nested: dict[str, dict[str, Entry | None]] = {}
        for path, entry in changes.items():
            head, _, rest = path.partition("/")
            nested.setdefault(head, {})[rest] = entry
        current = dict(self.tree(tree)) if tree else {}
        for name, below in nested.items():
            existing = current.get(name)
            if "" in below:
                # The path names this entry itself: a file set or removed here.
                entry = below.pop("")
                if entry is not None:
                    current[name] = entry
                elif existing is not None and not existing.is_tree:
                    del current[name]
                existing = current.get(name)
            if not below:
                continue
            base = existing.sha if existing is not None and existing.is_tree else None
            if base is None and all(e is None for e in below.values()):
                continue  # removing what is not there (or below a file)
            subtree = self.with_changes(base, below)
            if self.tree(subtree):
                current[name] = Entry(TREE_MODE, subtree)
            else:
                current.pop(name, None)
        if tree is not None and current == self.tree(tree):
            return tree
        return self.write_tree(current)

    def write_commit(
        self,
        tree: str,
        parents: Sequence[str],
        message: str,
        *,
        author: str = OUR_NAME,
        committer: str = OUR_NAME,
    ) -> str:
        """Writes a commit; ``author`` and ``committer`` are ``Name <email>``."""
        stamp = _timestamp()
        lines = [f"tree {tree}", *(f"parent {parent}" for parent in parents)]
        lines += [f"author {author} {stamp}", f"committer {committer} {stamp}"]
        self._serial += 1
        source = self._scratch / f"commit-{self._serial}"
        body = message if message.endswith("\n") else f"{message}\n"
        data = ("\n".join(lines) + "\n\n" + body).encode()
        source.write_bytes(data)
        try:
            commit = self._commit_writer.ask(raw_of(str(source)) + b"\n")[0].decode()
        finally:
            source.unlink(missing_ok=True)
        if self._is_id(commit):
            self._keep_commit(commit, data)
        return commit

    def write_blob(self, data: bytes) -> str:
        """Writes ``data`` as a blob, as it is (no content filters)."""
        out = self._git.run("hash-object", "-w", "--no-filters", "--stdin", stdin=data)
        return out.decode().strip()

    def hash_files(self, paths: Sequence[str]) -> dict[str, str]:
        """The blob ids of working files (written to the repository), through
        the content filters their paths have, as staging does. A name with a
        newline or a leading quote cannot be asked for (its caller stages it)."""
        if not paths:
            return {}
        request = b"".join(raw_of(p) + b"\n" for p in paths)
        shas = self._hasher.ask(request, answers=len(paths))
        return dict(zip(paths, (sha.decode() for sha in shas), strict=True))


def _read_object(request: bytes, pipe: Server) -> tuple[str, bytes] | None:
    """One ``cat-file --batch`` exchange: the object's type and content."""
    pipe.send(request + b"\n")
    header = pipe.until(b"\n")
    if header == request + b" missing" or header.endswith(b" ambiguous"):
        return None
    parts = header.split(b" ")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ObjectError(f"git cat-file answered {header[:200]!r}")
    size = int(parts[2])
    return parts[1].decode(), pipe.exact(size + 1)[:size]


def _timestamp() -> str:
    now = time.time()
    return f"{int(now)} {time.strftime('%z', time.localtime(now))}"
