"""Reading files as a snapshot commit has them, for the validation steps.

A long-lived ``git cat-file --batch`` per repository answers for any number of
paths, so that looking at the baseline costs a round trip per changed file, not
a process per step nor anything that grows with the repository. Starting git
costs several times more than reading a few blobs, and a run validates many
batches of the same workspace from one process, so the process is kept (as
GitPython keeps its own) for the few workspaces used last, and ended at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import select
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final

__all__ = ["BlobReader", "GitReadError", "blob_id", "read_at"]

# The same protections as the git workspace's own calls: no fsmonitor daemon and
# no hooks run on behalf of a validation step.
_SAFE_CONFIG: Final = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    f"core.hooksPath={os.devnull}",
)
_DEFAULT_TIMEOUT_S: Final = 120.0
#: How many workspaces keep a reader alive at once.
_MAX_READERS: Final = 4


class GitReadError(RuntimeError):
    """Git could not be asked (not installed, not a repository, timed out)."""


def blob_id(content: bytes) -> str:
    """The id git gives ``content`` as a blob: what ``git hash-object --no-filters``
    prints, computed here so that hashing a working file costs no process."""
    header = b"blob %d\0" % len(content)
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


def _git_env() -> dict[str, str]:
    return {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}


class BlobReader:
    """One ``git cat-file --batch`` process for the repository at ``root``,
    started on first use and restarted if it dies. Safe to share between
    threads; each request has a deadline after which the process is killed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._process: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None
        self._buffer = bytearray()
        self._lock = threading.Lock()

    def read(
        self, commit: str, paths: Sequence[str], *, timeout_s: float | None = None
    ) -> dict[str, bytes | None]:
        """The content of each of ``paths`` (relative to the top of the working
        tree, posix) in ``commit``; None for a path that is not a file there."""
        if any("\n" in p for p in paths):
            # The line protocol cannot carry such a name; -z (git >= 2.38) can.
            return _read_once(self.root, commit, paths, timeout_s=timeout_s)
        deadline = time.monotonic() + (
            _DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        )
        with self._lock:
            for retry in (True, False):
                try:
                    # The commit first: a process that outlived its repository (a
                    # workspace made anew at the same path) or a wrong id would
                    # answer "missing" for every path, which reads as "all new".
                    if self._request(commit, deadline)[0] != b"commit":
                        raise GitReadError(f"{commit} is not a commit in {self.root}")
                    return {
                        p: _blob(self._request(f"{commit}:{p}", deadline))
                        for p in paths
                    }
                except (OSError, GitReadError) as exc:
                    # A process that died (killed, or its repository moved) is
                    # replaced once; a second failure, or a timeout, is reported.
                    self._stop()
                    if not retry or isinstance(exc, _Timeout):
                        if isinstance(exc, GitReadError):
                            raise
                        raise GitReadError(f"git cat-file failed: {exc}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Ends the git process, if any."""
        with self._lock:
            self._stop()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            # A file rather than a pipe: git's warnings can never fill it and
            # stall the process, and its last words are there when it stops.
            self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - kept open
            try:
                self._process = subprocess.Popen(
                    ["git", *_SAFE_CONFIG, "cat-file", "--batch"],
                    cwd=self.root,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._errors,
                    env=_git_env(),
                )
            except FileNotFoundError:
                self._stop()
                raise GitReadError("git is not installed") from None
            except OSError as exc:
                self._stop()
                raise GitReadError(f"cannot run git in {self.root}: {exc}") from None
        return self._process

    def _stop(self) -> None:
        process, self._process = self._process, None
        errors, self._errors = self._errors, None
        self._buffer.clear()
        if errors is not None:
            errors.close()
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                # A pipe whose other end is gone has nothing left to flush.
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _request(self, name: str, deadline: float) -> tuple[bytes, bytes]:
        """The type and content of the object ``name``; ``(b"missing", b"")``."""
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        request = name.encode()
        process.stdin.write(request + b"\n")
        process.stdin.flush()
        header = self._line(process, deadline)
        if header == request + b" missing":
            return (b"missing", b"")
        parts = header.split(b" ")
        if len(parts) != 3 or not parts[2].isdigit():
            raise GitReadError(f"git cat-file answered {bytes(header[:200])!r}")
        size = int(parts[2])
        return (parts[1], self._exact(process, size + 1, deadline)[:size])

    def _fill(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        stdout: IO[bytes] | None = process.stdout
        assert stdout is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stdout], [], [], remaining)[0]:
            raise _Timeout("git cat-file did not answer in time")
        chunk = os.read(stdout.fileno(), 1 << 16)
        if not chunk:
            process.wait()
            message = ""
            if self._errors is not None:
                self._errors.seek(0)
                message = self._errors.read().decode(errors="replace").strip()
            raise GitReadError(
                f"git cat-file stopped in {self.root}: {message or 'no message'}"
            )
        self._buffer += chunk

    def _line(self, process: subprocess.Popen[bytes], deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill(process, deadline)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _exact(
        self, process: subprocess.Popen[bytes], size: int, deadline: float
    ) -> bytes:
        while len(self._buffer) < size:
            self._fill(process, deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def _blob(answer: tuple[bytes, bytes]) -> bytes | None:
    kind, content = answer
    return content if kind == b"blob" else None


class _Timeout(GitReadError):
    """A request passed its deadline."""


_READERS: OrderedDict[Path, BlobReader] = OrderedDict()
_READERS_LOCK = threading.Lock()
_READERS_PID = os.getpid()


def _reader(root: Path) -> BlobReader:
    global _READERS_PID
    with _READERS_LOCK:
        if os.getpid() != _READERS_PID:
            # A forked child shares its parent's pipes: it must neither use nor
            # end the parent's processes, only forget them.
            _READERS.clear()
            _READERS_PID = os.getpid()
        reader = _READERS.get(root)
        if reader is None:
            reader = _READERS[root] = BlobReader(root)
            while len(_READERS) > _MAX_READERS:
                _READERS.popitem(last=False)[1].close()
        _READERS.move_to_end(root)
        return reader


@atexit.register
def _close_all() -> None:
    with _READERS_LOCK:
        if os.getpid() == _READERS_PID:
            for reader in _READERS.values():
                reader.close()
        _READERS.clear()


def read_at(
    root: Path,
    commit: str,
    paths: Sequence[str],
    *,
    timeout_s: float | None = None,
) -> dict[str, bytes | None]:
    """The content of each of ``paths`` (relative to the top of the working tree
    ``root``, posix) in ``commit``; None for a path that is not a file there.

    Raises :class:`GitReadError` when git cannot answer at all.
    """
    if not paths:
        return {}
    return _reader(root.resolve()).read(commit, paths, timeout_s=timeout_s)


def _read_once(
    root: Path, commit: str, paths: Sequence[str], *, timeout_s: float | None
) -> dict[str, bytes | None]:
    """:func:`read_at` with a process of its own, NUL-separated requests."""
    requests = [commit.encode(), *(f"{commit}:{p}".encode() for p in paths)]
    try:
        done = subprocess.run(
            ["git", *_SAFE_CONFIG, "cat-file", "--batch", "-z"],
            cwd=root,
            input=b"".join(r + b"\0" for r in requests),
            capture_output=True,
            timeout=_DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
            env=_git_env(),
            check=False,
        )
    except FileNotFoundError:
        raise GitReadError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitReadError("git cat-file did not answer in time") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or "no message"
        raise GitReadError(f"git cat-file failed in {root}: {message}")
    (kind, _), *answers = _parse_batch(done.stdout, requests)
    if kind != b"commit":
        raise GitReadError(f"{commit} is not a commit in {root}")
    return {p: _blob(a) for p, a in zip(paths, answers, strict=True)}


def _parse_batch(out: bytes, requests: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    """Splits ``git cat-file --batch`` output into one (type, content) per
    request."""
    answers: list[tuple[bytes, bytes]] = []
    position = 0
    for request in requests:
        # The "missing" line echoes the request, which may hold spaces or even a
        # newline: match it whole rather than splitting the header on spaces.
        missing = request + b" missing\n"
        if out.startswith(missing, position):
            answers.append((b"missing", b""))
            position += len(missing)
            continue
        end = out.find(b"\n", position)
        if end < 0:
            raise GitReadError("git cat-file ended its output early")
        header = out[position:end].split(b" ")
        if len(header) != 3 or not header[2].isdigit():
            raise GitReadError(
                f"git cat-file answered {out[position:end][:200]!r} for "
                f"{request.decode(errors='replace')!r}"
            )
        size = int(header[2])
        answers.append((header[1], out[end + 1 : end + 1 + size]))
        position = end + 1 + size + 1
    return answers
