"""How every git process of ours is started: one place for the safety rules.

Each runs for the workspace's own repository and work tree (``GIT_DIR`` and
``GIT_WORK_TREE`` given, so that a ``core.worktree`` or a ``.git`` file a batch
wrote cannot send it elsewhere), with no fsmonitor, hooks, replace objects or
terminal prompt, and in a session of its own: a terminal's Ctrl-C goes to the
whole foreground process group, and would kill git halfway through a
quarantine. A :class:`Server` keeps one git process for many requests
(``cat-file --batch``, ``mktree --batch``, ``update-ref --stdin``, ...).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Final, TypeVar

from recovery_core import RecoveryError

__all__ = [
    "BINARY_DIFF",
    "OBJECT_ID",
    "Git",
    "GitError",
    "GitKilled",
    "Server",
    "WorkspaceError",
    "deferred_signals",
    "discover",
    "git_reason",
    "object_id",
]

_R = TypeVar("_R")

#: How every git command of ours starts, whatever the repository's settings say.
_SAFE: Final = f"core.fsmonitor=false core.hooksPath={os.devnull} core.quotepath=false"
_ARGV: Final = ("git", *(part for pair in _SAFE.split() for part in ("-c", pair)))
#: How our diffs are printed, whatever the repository's settings say: no
#: colour, external diff, text conversion or rename detection (and git's own
#: prefixes, ``diff.noprefix`` aside: see :meth:`Git.diff`).
_DIFF: Final = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")
#: A diff as ``git apply`` takes it, binary files too.
BINARY_DIFF: Final = ("--binary", "--full-index")
#: Environment variables that would point git at another repository, index,
#: object store or settings than the workspace's own.
_REDIRECTING_NAMES: Final = (
    "GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_COMMON_DIR "
    "GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_NAMESPACE GIT_CONFIG_PARAMETERS "
    "GIT_CONFIG_COUNT GIT_EXTERNAL_DIFF GIT_REPLACE_REF_BASE GIT_SHALLOW_FILE "
    "GIT_GRAFT_FILE"
)
_REDIRECTING: Final = frozenset(_REDIRECTING_NAMES.split())
#: A git object id (SHA-1 or SHA-256) as git prints it.
OBJECT_ID: Final = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
#: How long one request to a long-lived git process may take.
_TIMEOUT_S: Final = 120.0


class WorkspaceError(RecoveryError):
    """The workspace cannot be used as it is (not a repository, an operation in
    progress, git failed, ...); nothing was changed."""

    exit_code = 2


class GitError(WorkspaceError):
    """A git command failed, or could not be started."""


class GitKilled(GitError):
    """A long-lived git process was killed by a signal (not by its own
    error): a fresh one may be asked again."""


#: The signals that end a runner; they wait while git writes.
_ENDING: Final = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Holds back SIGINT, SIGTERM and SIGHUP (for this thread) until the block
    is done, then delivers them: a git command, a request to a long-lived git
    process or a write of the repository's settings is never cut off halfway
    (leaving a lock file or half a file behind); nor is a whole quarantine,
    restore or commit (``@deferred_signals()``), which would keep the faulty
    change but not take it out, or move the branch but not the user's index."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _environment() -> dict[str, str]:
    """Our environment less what would point git elsewhere, with git's
    messages untranslated (``LC_MESSAGES=C``; a ``LC_ALL`` of the user's
    still sets the other categories, as ``LANG``): a few are read (a ref that
    moved, an index git cannot read, a repository with no commit)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _REDIRECTING
        and not key.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    if everything := env.pop("LC_ALL", ""):
        env["LANG"] = everything
    env.pop("LANGUAGE", None)
    return env | {"LC_MESSAGES": "C"}


def _run(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdin: bytes | None
) -> subprocess.CompletedProcess[bytes]:
    try:
        with deferred_signals():
            return subprocess.run(
                [*_ARGV, *args],
                cwd=cwd,
                input=stdin,
                capture_output=True,
                env=env,
                start_new_session=True,
                check=False,
            )
    except OSError as exc:
        raise GitError(f"cannot run git {args[0]} in {cwd}: {exc}") from None


def discover(path: Path) -> tuple[Path, Path, Path, str]:
    """The work tree's top, its git folder, the repository's common folder and
    its object format (``sha1`` or ``sha256``) for a folder inside it."""
    asked = "rev-parse --is-bare-repository --absolute-git-dir --git-common-dir"
    argv = [*asked.split(), "--show-object-format", "--show-toplevel"]
    done = _run(argv, cwd=path, env=_environment(), stdin=None)
    lines = done.stdout.decode("utf-8", "surrogateescape").splitlines()
    if lines[:1] == ["true"] or (done.returncode == 0 and len(lines) < 5):
        raise WorkspaceError(f"{path} is a bare repository: it has no working tree")
    if done.returncode != 0 or len(lines) < 5:
        raise WorkspaceError(f"{path.resolve()} is not inside a git repository")
    common = path / lines[2]  # relative to path, unless absolute
    return Path(lines[4]).resolve(), Path(lines[1]), common.resolve(), lines[3]


class Git:
    """Starts git for one repository (``git_dir``) and its work tree (``root``)."""

    def __init__(self, root: Path, git_dir: Path) -> None:
        self.root = root
        self.git_dir = git_dir
        self.calls = 0  # git processes started, for the benchmarks
        self.env: Mapping[str, str] = {
            **_environment(),
            "GIT_DIR": str(git_dir),
            "GIT_WORK_TREE": str(root),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_FLUSH": "1",
        }

    def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        index: Path | None = None,
        codes: tuple[int, ...] = (0,),
        said: list[str] | None = None,
    ) -> bytes:
        """Runs one git command to its end; its standard output (what it
        said on its standard error appended to ``said``), or
        :class:`GitError` when its exit code is not one of ``codes``."""
        self.calls += 1
        env = self.env if index is None else {**self.env, "GIT_INDEX_FILE": str(index)}
        done = _run(args, cwd=self.root, env=env, stdin=stdin)
        if done.returncode not in codes:
            message = done.stderr.decode(errors="replace").strip() or "no message"
            raise GitError(f"git {args[0]} failed in {self.root}: {message}")
        if said is not None:
            said.append(done.stderr.decode("utf-8", "surrogateescape"))
        return done.stdout

    def text(
        self, *args: str, index: Path | None = None, codes: tuple[int, ...] = (0,)
    ) -> str:
        """:meth:`run`, decoded (undecodable bytes kept), less the ending newline."""
        out = self.run(*args, index=index, codes=codes)
        return out.decode("utf-8", "surrogateescape").rstrip()

    def target(self, ref: str) -> str | None:
        """The object the ref ``ref`` points at; None when there is none."""
        found = self.text("for-each-ref", "--format=%(objectname)", ref)
        return found if OBJECT_ID.fullmatch(found) else None

    def diff(self, before: str, after: str, *options: str, below: str = "") -> bytes:
        """The change from ``before`` to ``after`` (commits or trees), as
        ``git diff`` prints it with ``options`` (such as :data:`BINARY_DIFF`),
        whatever the repository's diff settings say; its paths ``a/<below>...``
        and ``b/<below>...`` (``below``: a submodule's path and a slash)."""
        prefixes = f"--src-prefix=a/{below}", f"--dst-prefix=b/{below}"
        return self.run("diff", *_DIFF, *prefixes, *options, before, after)

    def apply(self, patch: bytes, refused: str, *, check_only: bool = False) -> None:
        """Applies ``patch`` (as ``git diff --binary`` prints it) to the work
        tree only, after ``git apply --check`` (with ``check_only``, only
        that); when it does not apply, nothing is written and
        :class:`WorkspaceError` says ``refused``, git's reason and so."""
        apply = ("apply", "--whitespace=nowarn")
        try:
            self.run(*apply, "--check", "-", stdin=patch)
        except GitError as exc:
            message = f"{refused} ({git_reason(exc)}); nothing was changed"
            raise WorkspaceError(message) from None
        if not check_only:
            self.run(*apply, "-", stdin=patch)


def object_id(value: str) -> str:
    """``value``, refused with :class:`WorkspaceError` unless an object id."""
    if not OBJECT_ID.fullmatch(value):
        raise WorkspaceError(f"{value!r} is not an object id")
    return value


def git_reason(exc: GitError) -> str:
    """What git said in ``exc``, on one line."""
    text = str(exc).split(": ", 1)[-1]
    return " ".join(text.split())[:500]


class Server:
    """A long-lived git process for one kind of request, started on first use
    and again after it died; a request cut off halfway (an error, a signal)
    ends it, since its answers would be out of step from then on. Its errors
    go to a file (they can never fill a pipe and stall it), and every read has
    a deadline after which the process is ended."""

    def __init__(self, git: Git, *args: str) -> None:
        self._git, self._args = git, args
        self._process: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None
        self._buffer = bytearray()
        self.close: Callable[[], object] = lambda: None

    def ask(
        self,
        request: bytes,
        *,
        answers: int = 1,
        end: bytes = b"\n",
        again: bool = True,
    ) -> list[bytes]:
        """Sends ``request``; returns the ``answers`` records (each up to
        ``end``) it is answered with (see :meth:`talk` for ``again``)."""

        def exchange(server: Server) -> list[bytes]:
            server.send(request)
            return [server.until(end) for _ in range(answers)]

        return self.talk(exchange, again=again)

    def talk(self, exchange: Callable[[Server], _R], *, again: bool = True) -> _R:
        """Runs one ``exchange`` (a request and its answer) with the process,
        never cut off by a signal. With ``again`` (requests that can be
        repeated), a process found killed is replaced and asked once more."""
        try:
            with deferred_signals():
                if self._process is None or self._process.poll() is not None:
                    self._start()
                return exchange(self)
        except GitKilled:
            self.close()
            if not again:
                raise
            return self.talk(exchange, again=False)
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self.close()
        self._git.calls += 1
        self._buffer.clear()
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - kept open
        try:
            process = subprocess.Popen(
                [*_ARGV, *self._args],
                cwd=self._git.root,
                env=dict(self._git.env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,
            )
        except OSError as exc:
            errors.close()
            raise GitError(f"cannot run git {self._args[0]}: {exc}") from None
        self._process, self._errors = process, errors
        # close() ends it, and so does dropping it or exiting: a Popen left to
        # the garbage collector keeps its pipes open, and git waits for ever.
        self.close = weakref.finalize(self, _end, process, errors)

    def send(self, data: bytes) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(data)
            self._process.stdin.flush()
        except OSError:
            raise self._died() from None

    def until(self, end: bytes) -> bytes:
        """What the process writes up to the next ``end`` (left out)."""
        deadline = time.monotonic() + _TIMEOUT_S
        while (found := self._buffer.find(end)) < 0:
            self._fill(deadline)
        return self._take(found, len(end))

    def exact(self, size: int) -> bytes:
        """The next ``size`` bytes the process writes."""
        deadline = time.monotonic() + _TIMEOUT_S
        while len(self._buffer) < size:
            self._fill(deadline)
        return self._take(size, 0)

    def _take(self, size: int, skipped: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[: size + skipped]
        return data

    def _fill(self, deadline: float) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stdout], [], [], remaining)[0]:
            self._process.kill()
            raise GitError(f"git {self._args[0]} did not answer in time")
        chunk = os.read(stdout.fileno(), 1 << 16)
        if not chunk:
            raise self._died()
        self._buffer += chunk

    def _died(self) -> GitError:
        assert self._process is not None and self._errors is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=2)
        self._errors.seek(0)
        message = self._errors.read().decode(errors="replace").strip()
        code = self._process.returncode
        kind = GitKilled if code is not None and code < 0 else GitError
        return kind(f"git {self._args[0]} stopped: {message or f'exit {code}'}")


def _end(process: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
    """Closes the process's standard input first, so that it ends on its own;
    kills it if it does not."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    errors.close()
