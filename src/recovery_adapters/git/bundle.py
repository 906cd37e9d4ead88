"""A run's refs as git keeps them, for ``recovery export`` and ``recovery
prune``: listed (``for-each-ref``), bundled (``git bundle create``), retired
(``update-ref -d``, only from where they were seen pointing); and a bundle
read back on another machine, in a temporary repository of its own that is
always removed (:class:`BundleReader`).

Every git process starts through :mod:`recovery_adapters.git.command`.
"""

from __future__ import annotations

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
)
from recovery_adapters.git.refs import ref_part

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


def _checked_ref(ref: str, prefix: str) -> str:
    if not ref.startswith(prefix):
        raise WorkspaceError(f"{ref!r} is not under {prefix}")
    for part in ref.removeprefix("refs/").split("/"):
        ref_part(part)
    return ref


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

    def has_commit(self, sha: str) -> bool:
        """Whether the commit ``sha`` is in the repository."""
        if not OBJECT_ID.fullmatch(sha):
            return False
        return self._git.text("cat-file", "-t", sha, codes=(0, 128)) == "commit"

    def bundle(
        self, path: Path, refs: Sequence[str], objects: Sequence[str] = ()
    ) -> None:
        """Writes a bundle of ``refs`` (full names under ``refs/recovery/``)
        to ``path``, with the commits ``objects`` and their history too (a
        bundle carries objects that no ref of it names; unbundled, they are
        stored). At least one ref is needed: git refuses an empty bundle."""
        if not refs:
            raise WorkspaceError("a bundle needs at least one ref")
        args = [_checked_ref(ref, "refs/recovery/") for ref in refs]
        for sha in objects:
            if not OBJECT_ID.fullmatch(sha):
                raise WorkspaceError(f"{sha!r} is not an object id")
            args.append(sha)
        self._git.run("bundle", "create", "-q", str(path), *args)

    def retire(self, ref: str, target: str) -> bool:
        """Deletes ``ref`` (under ``refs/recovery/``) if it still points at
        ``target``; whether it did (False: it is gone, or points elsewhere)."""
        _checked_ref(ref, "refs/recovery/")
        if not OBJECT_ID.fullmatch(target):
            raise WorkspaceError(f"{target!r} is not an object id")
        try:
            self._git.run("update-ref", "-m", _PRUNED, "-d", ref, target)
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
    (see :meth:`open`): nothing of the user's repository is read or written."""

    def __init__(self, git: Git) -> None:
        self._git = git

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
            yield cls(git)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def kind(self, sha: str) -> str | None:
        """The type of the object ``sha``, or None when it is not there."""
        if not OBJECT_ID.fullmatch(sha):
            return None
        found = self._git.text("cat-file", "-t", sha, codes=(0, 1, 128))
        return found or None

    def commit_tree(self, sha: str) -> str | None:
        """The tree of the commit ``sha``, or None when there is no such commit."""
        if self.kind(sha) != "commit":
            return None
        return self._git.text("rev-parse", "--verify", f"{sha}^{{tree}}")

    def commit_message(self, sha: str) -> str | None:
        """The message of the commit ``sha``, or None when it is not there."""
        if self.kind(sha) != "commit":
            return None
        raw = self._git.run("cat-file", "commit", sha)
        _, _, message = raw.partition(b"\n\n")
        return message.decode("utf-8", "surrogateescape")
