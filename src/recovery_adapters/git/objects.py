"""Git objects read and written in-process: trees walked, compared and rebuilt,
commits and loose refs written, without starting a git process for each.

A batch's snapshot, diff and commit once took a score of git processes, each
costing more than the work it did. Here reads go through GitPython's object
database (one long-lived ``git cat-file --batch``), writes are loose objects
(zlib-compressed, as git writes them; one already there is not written again),
and trees are immutable, so what was read once is kept. Only SHA-1
repositories with files refs take this path; :class:`GitWorkspace` asks git
itself otherwise.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs
import git

from recovery_core import RecoveryError

__all__ = ["TREE_MODE", "Entry", "ObjectError", "ObjectStore", "RefMoved"]

#: The mode of a subtree in a tree object (``ls-tree`` prints it as 040000).
TREE_MODE: Final = "40000"

#: "Whatever the ref points at now" for a ref write that checks nothing.
_ANY: Final = object()

#: How many trees are kept once read (a tree is a few hundred bytes).
_TREES_KEPT: Final = 20_000


@attrs.frozen
class Entry:
    """One entry of a tree: its mode as git writes it and its object id."""

    mode: str
    sha: str

    @property
    def is_tree(self) -> bool:
        return self.mode == TREE_MODE


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _raw(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


class ObjectStore:
    """Trees and commits of one repository, read and written in-process."""

    def __init__(self, repo: git.Repo, common_dir: Path) -> None:
        self._repo = repo
        self._common_dir = common_dir
        self._trees: dict[str, dict[str, Entry]] = {}
        self._objects_dir = common_dir / "objects"
        self._written: set[str] = set()

    # -- reading ------------------------------------------------------------

    def read(self, sha: str) -> tuple[str, bytes]:
        """The type and content of the object ``sha``."""
        try:
            stream = self._repo.odb.stream(bytes.fromhex(sha))
        except Exception as exc:  # gitdb's BadObject, a bad id, a dead cat-file
            raise ObjectError(
                f"cannot read git object {sha} in {self._common_dir}: {exc}"
            ) from None
        kind = stream.type
        return (kind.decode() if isinstance(kind, bytes) else str(kind)), stream.read()

    def tree(self, sha: str) -> dict[str, Entry]:
        """The entries of the tree ``sha`` by name."""
        found = self._trees.get(sha)
        if found is not None:
            return found
        kind, data = self.read(sha)
        if kind == "commit":
            return self.tree(self.commit_tree(sha))
        found = {}
        position, size = 0, len(data)
        while position < size:
            space = data.index(b" ", position)
            nul = data.index(b"\0", space)
            found[_name(data[space + 1 : nul])] = Entry(
                data[position:space].decode(), data[nul + 1 : nul + 21].hex()
            )
            position = nul + 21
        if len(self._trees) >= _TREES_KEPT:
            self._trees.clear()
        self._trees[sha] = found
        return found

    def commit_tree(self, commit: str) -> str:
        """The tree of the commit ``commit``."""
        kind, data = self.read(commit)
        if kind != "commit" or not data.startswith(b"tree "):
            raise ValueError(f"{commit} is not a commit")
        return data[5:45].decode()

    def entry(self, tree: str, path: str) -> Entry | None:
        """The entry at ``path`` in ``tree`` (a file's or a folder's), or None."""
        current = Entry(TREE_MODE, tree)
        for part in path.split("/"):
            if not current.is_tree:
                return None
            found = self.tree(current.sha).get(part)
            if found is None:
                return None
            current = found
        return current

    def files(self, tree: str, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """Every file below ``tree`` (recursively), with its path."""
        for name, entry in sorted(self.tree(tree).items()):
            if entry.is_tree:
                yield from self.files(entry.sha, f"{prefix}{name}/")
            else:
                yield f"{prefix}{name}", entry

    def entries(self, tree: str, paths: Iterable[str]) -> dict[str, Entry]:
        """The file entries of ``paths`` in ``tree``, as ``git ls-tree -r`` gives
        them: a path that is a folder there gives every file below it; missing
        paths are left out."""
        found: dict[str, Entry] = {}
        for path in paths:
            entry = self.entry(tree, path)
            if entry is None:
                continue
            if entry.is_tree:
                found.update(self.files(entry.sha, f"{path}/"))
            else:
                found[path] = entry
        return found

    def diff(self, old: str | None, new: str | None) -> tuple[str, ...]:
        """The file paths that differ between two trees (added, modified, deleted,
        mode changes), as ``git diff-tree -r --name-only`` lists them, sorted."""
        found: list[str] = []
        self._diff(old, new, "", found)
        return tuple(sorted(found))

    def _diff(
        self, old: str | None, new: str | None, prefix: str, out: list[str]
    ) -> None:
        if old == new:
            return
        before = self.tree(old) if old else {}
        after = self.tree(new) if new else {}
        for name in before.keys() | after.keys():
            was, now = before.get(name), after.get(name)
            if was == now:
                continue
            path = f"{prefix}{name}"
            was_tree = was is not None and was.is_tree
            now_tree = now is not None and now.is_tree
            if was_tree or now_tree:
                self._diff(
                    was.sha if was is not None and was_tree else None,
                    now.sha if now is not None and now_tree else None,
                    f"{path}/",
                    out,
                )
            if (was is not None and not was_tree) or (now is not None and not now_tree):
                out.append(path)

    # -- writing ------------------------------------------------------------

    def write(self, kind: str, data: bytes) -> str:
        """Stores an object as a loose object (unless it is one already);
        returns its id."""
        raw = f"{kind} {len(data)}\0".encode() + data
        sha = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
        if sha in self._written:
            return sha
        folder = self._objects_dir / sha[:2]
        target = folder / sha[2:]
        if not target.exists():
            folder.mkdir(exist_ok=True)
            descriptor, name = tempfile.mkstemp(prefix="tmp_obj_", dir=folder)
            temporary = Path(name)
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(zlib.compress(raw))
                    os.fchmod(handle.fileno(), 0o444)  # as git leaves objects
                temporary.replace(target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
        if len(self._written) >= _TREES_KEPT:
            self._written.clear()
        self._written.add(sha)
        return sha

    def write_tree(self, entries: Mapping[str, Entry]) -> str:
        """Writes a tree of ``entries`` (names to entries); returns its id."""

        def order(name: str) -> bytes:
            # Git sorts a subtree as if its name ended with a slash.
            return _raw(name) + (b"/" if entries[name].is_tree else b"")

        data = b"".join(
            entries[name].mode.encode()
            + b" "
            + _raw(name)
            + b"\0"
            + bytes.fromhex(entries[name].sha)
            for name in sorted(entries, key=order)
        )
        sha = self.write("tree", data)
        self._trees.setdefault(sha, dict(entries))
        return sha

    def with_changes(
        self, tree: str | None, changes: Mapping[str, Entry | None]
    ) -> str:
        """The tree ``tree`` with each path of ``changes`` set to its file entry or,
        for None, removed, written as ``git update-index --replace`` would: a file
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
        return self.write_tree(current)

    def write_commit(
        self,
        tree: str,
        parents: Sequence[str],
        message: str,
        *,
        author: str,
        committer: str,
    ) -> str:
        """Writes a commit; ``author`` and ``committer`` are ``Name <email>``."""
        stamp = _timestamp()
        lines = [f"tree {tree}"]
        lines += [f"parent {parent}" for parent in parents]
        lines += [f"author {author} {stamp}", f"committer {committer} {stamp}"]
        body = message if message.endswith("\n") else f"{message}\n"
        return self.write("commit", ("\n".join(lines) + "\n\n" + body).encode())

    def set_ref(self, ref: str, sha: str) -> bool:
        """Points the loose ref ``ref`` at ``sha`` (creating or replacing it, no
        reflog, as ``git update-ref`` does for refs outside ``refs/heads``);
        returns False where it cannot be written this way, for git to do it."""
        return self._write_ref(ref, sha, old=_ANY, logs=(), line="")

    def move_branch(
        self,
        ref: str,
        new: str,
        old: str | None,
        *,
        message: str,
        committer: str,
        head_log: Path | None,
        log_all: bool,
    ) -> bool:
        """Moves the branch ``ref`` from ``old`` (None: it does not exist yet) to
        ``new`` as ``git update-ref -m MESSAGE REF NEW OLD`` does in a files
        repository: under the ref's lock, only if it still points at ``old``,
        with a line in the branch's reflog and, when HEAD is on it, in HEAD's
        (``head_log``). Returns False, having changed nothing, where git must
        do it instead (a lock held, a symbolic or odd ref); raises
        :class:`RefMoved` when the branch no longer points at ``old``."""
        logs = [
            log
            for log in (self._common_dir / "logs" / ref, head_log)
            if log is not None and (log_all or log.is_file())
        ]
        line = f"{old or '0' * 40} {new} {committer} {_timestamp()}\t{message}\n"
        return self._write_ref(ref, new, old=old, logs=logs, line=line)

    def _write_ref(
        self,
        ref: str,
        new: str,
        *,
        old: object,
        logs: Sequence[Path],
        line: str,
    ) -> bool:
        path = self._common_dir / ref
        if path.is_symlink() or path.is_dir():
            return False
        lock = path.with_name(f"{path.name}.lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError:
            return False
        written = False
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                if old is not _ANY:
                    current = self._branch_value(path, ref)
                    if current is False:
                        return False
                    if current != old:
                        raise RefMoved(
                            f"{ref} points at {current or 'nothing'}, not {old}"
                        )
                handle.write(f"{new}\n")
            for log in logs:
                log.parent.mkdir(parents=True, exist_ok=True)
                with log.open("a", encoding="utf-8") as journal:
                    journal.write(line)
            lock.replace(path)
            written = True
        except OSError:
            return False
        finally:
            if not written:
                lock.unlink(missing_ok=True)
        return True

    def _branch_value(self, path: Path, ref: str) -> str | bool | None:
        """What the branch points at (None: no such branch; False: a value this
        does not read, such as a symbolic ref)."""
        if path.is_file():
            text = path.read_text(encoding="ascii", errors="replace").strip()
            return text if _is_sha(text) else False
        packed = self._common_dir / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                sha, _, name = line.partition(" ")
                if name == ref and _is_sha(sha):
                    return sha
        return None


class RefMoved(Exception):
    """A branch no longer points where it was expected to."""


class ObjectError(RecoveryError):
    """A git object that should be there cannot be read."""

    exit_code = 2


def _is_sha(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


def _timestamp() -> str:
    now = time.time()
    offset = time.localtime(now).tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset), 60)
    return f"{int(now)} {sign}{hours:02d}{minutes:02d}"
