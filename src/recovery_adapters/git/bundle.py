"""A run's refs as git keeps them, for ``recovery export`` and ``recovery
prune``: listed (``for-each-ref``), bundled (``git bundle create``), retired
(``update-ref -d``, only from where they were seen pointing); and a bundle
read back on another machine, in a temporary repository of its own that is
always removed (:class:`BundleReader`).

Every git process starts through :mod:`recovery_adapters.git.command`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import attrs

from recovery_adapters.git.command import (
    OBJECT_ID,
    Git,
    GitError,
    WorkspaceError,
    discover,
    object_id,
)
from recovery_adapters.git.objects import Objects, name_of
from recovery_adapters.git.refs import recovery_ref, ref_part

__all__ = [
    "BundleHeader",
    "BundleReader",
    "RunRefs",
    "read_bundle_header",
    "run_refs_prefix",
]

_PRUNED: Final = "recovery: prune"
#: The header lines a bundle starts with, by its version.
_SIGNATURES: Final = {b"# v2 git bundle\n": 2, b"# v3 git bundle\n": 3}
#: A bundle's header is a few lines per ref; more than this is no header.
_HEADER_LIMIT: Final = 1 << 22


def run_refs_prefix(run_id: str) -> str:
    """``refs/recovery/<run>/``: where every ref of the run is."""
    return f"refs/recovery/{ref_part(run_id)}/"


class RunRefs:
    """The refs of runs in the repository whose work tree holds ``path``."""

    def __init__(self, path: str | Path) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise WorkspaceError(f"{folder} is not a folder")
        root, git_dir, _common, object_format = discover(folder)
        self.root = root
        self.object_format = object_format
        self._git = Git(root, git_dir)

    def refs(self, run_id: str) -> list[tuple[str, str]]:
        """The run's refs and the object each points at, sorted by name."""
        prefix = run_refs_prefix(run_id)
        out = self._git.text(
            "for-each-ref", "--format=%(refname) %(objectname)", prefix
        )
        found = [tuple(line.split(" ", 1)) for line in out.splitlines() if line]
        return sorted((ref, sha) for ref, sha in found)

    def commits(self, shas: Sequence[str]) -> set[str]:
        """Those of ``shas`` that are commits in the repository (one ``git
        cat-file --batch-check`` for all)."""
        ids = [sha for sha in shas if OBJECT_ID.fullmatch(sha)]
        if not ids:
            return set()
        check = "--batch-check=%(objectname) %(objecttype)"
        out = self._git.run(
            "cat-file", check, stdin="".join(f"{i}\n" for i in ids).encode()
        )
        found = (line.split(" ") for line in out.decode().splitlines())
        return {fields[0] for fields in found if fields[1:] == ["commit"]}

    def bundle(
        self, path: Path, refs: Sequence[str], objects: Sequence[str] = ()
    ) -> None:
        """Writes a bundle of ``refs`` (full names under ``refs/recovery/``)
        to ``path``, with the commits ``objects`` and their history too (a
        bundle carries objects that no ref of it names; unbundled, they are
        stored). At least one ref is needed: git refuses an empty bundle."""
        if not refs:
            raise WorkspaceError("a bundle needs at least one ref")
        args = [*map(recovery_ref, refs), *map(object_id, objects)]
        self._git.run("bundle", "create", "-q", str(path), *args)

    def retire(self, ref: str, target: str) -> bool:
        """Deletes ``ref`` (under ``refs/recovery/``) if it still points at
        ``target``; whether it did (False: it is gone, or points elsewhere)."""
        args = (recovery_ref(ref), object_id(target))
        try:
            self._git.run("update-ref", "-m", _PRUNED, "-d", *args)
        except GitError:
            return False
        return True


@attrs.frozen
class BundleHeader:
    """What a bundle's header says: its version, object format, the refs it
    carries (name and object id) and the commits it needs (prerequisites)."""

    version: int
    object_format: str
    refs: tuple[tuple[str, str], ...]
    prerequisites: tuple[str, ...]


def read_bundle_header(path: Path) -> BundleHeader:
    """The header of the bundle at ``path``; :class:`ValueError` saying what
    is wrong when it is not one."""
    with path.open("rb") as stream:
        signature = stream.readline()
        version = _SIGNATURES.get(signature)
        if version is None:
            raise ValueError("it does not start as a git bundle (v2 or v3)")
        object_format = "sha1"
        refs: list[tuple[str, str]] = []
        prerequisites: list[str] = []
        read = len(signature)
        while True:
            line = stream.readline()
            read += len(line)
            if not line.endswith(b"\n") or read > _HEADER_LIMIT:
                raise ValueError("its header has no end")
            text = line[:-1].decode("utf-8", "surrogateescape")
            if not text:
                break
            if text.startswith("@"):
                key, _, value = text[1:].partition("=")
                if key == "object-format":
                    object_format = value
                continue
            if text.startswith("-"):
                prerequisites.append(text[1:].split(" ", 1)[0])
                continue
            sha, _, name = text.partition(" ")
            if not OBJECT_ID.fullmatch(sha) or not name:
                raise ValueError(f"its header has a line that is no ref: {text!r}")
            refs.append((name, sha))
    return BundleHeader(version, object_format, tuple(refs), tuple(prerequisites))


class BundleReader:
    """A bundle's objects, unbundled into a temporary repository of their own
    (see :meth:`open`) and read through one ``git cat-file --batch``: nothing
    of the user's repository is read or written."""

    def __init__(self, objects: Objects) -> None:
        self._objects = objects

    @classmethod
    @contextmanager
    def open(cls, bundle: Path, object_format: str) -> Iterator[BundleReader]:
        """Unbundles ``bundle`` into a new repository in the temporary folder
        (removed at the end, whatever happens); :class:`GitError` when git
        finds the bundle damaged (its pack is checked object by object)."""
        if object_format not in ("sha1", "sha256"):
            raise GitError(f"unknown object format {object_format!r}")
        folder = Path(tempfile.mkdtemp(prefix="recovery-bundle-"))
        try:
            root = folder / "repository"
            root.mkdir()
            git = Git(root, root / ".git")
            git.run("init", "-q", f"--object-format={object_format}")
            git.run("bundle", "unbundle", str(bundle.resolve()))
            width = 32 if object_format == "sha256" else 20
            with contextlib.closing(Objects(git, folder, id_bytes=width)) as objects:
                yield cls(objects)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def kind(self, sha: str) -> str | None:
        """The type of the object ``sha``, or None when it is not there."""
        found = self._read(sha)
        return found[0] if found else None

    def commit_tree(self, sha: str) -> str | None:
        """The tree of the commit ``sha``, or None when there is no such commit."""
        found = self._read(sha)
        if found is None or found[0] != "commit":
            return None
        return self._objects.commit_tree(sha)

    def commit_message(self, sha: str) -> str | None:
        """The message of the commit ``sha``, or None when it is not there."""
        found = self._read(sha)
        if found is None or found[0] != "commit":
            return None
        return name_of(found[1].partition(b"\n\n")[2])

    def _read(self, sha: str) -> tuple[str, bytes] | None:
        return self._objects.read(sha) if OBJECT_ID.fullmatch(sha) else None
