"""Running a command for a step: its own process group, under a supervisor
that ends whatever it left running once it ends, a timeout that kills the
whole group, and the tail of its output kept."""

from __future__ import annotations

import atexit
import contextlib
import errno
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from recovery_core.tracebacks import component_from_traceback

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SUPERVISOR",
    "ProcessResult",
    "StartError",
    "component_of",
    "end_spare",
    "end_supervised",
    "find_program",
    "output_tail",
    "run_process",
    "start_supervised",
]

DEFAULT_TIMEOUT_S: Final = 600.0
TAIL_LINES: Final = 40
TAIL_CHARS: Final = 4000
#: How long a timed-out group has after SIGTERM before SIGKILL.
TERM_GRACE_S: Final = 2.0

_LOCATION = re.compile(
    r"^(?P<path>[^\s:\"']+\.[A-Za-z0-9]+):(?P<line>\d+)(?::\d+)?[:\s]", re.M
)


@attrs.frozen
class ProcessResult:
    """How a command ended."""

    argv: tuple[str, ...]
    exit_code: int | None
    output: str
    duration_s: float
    timed_out: bool = False
    not_found: bool = False
    #: The timeout it ran under, in seconds.
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: At a timeout, the signal that ended the group (``SIGTERM``, else
    #: ``SIGKILL`` once :data:`TERM_GRACE_S` had passed).
    ended_by: str = ""

    def timeout_text(self, what: str) -> str:
        """``what timed out after 3 s; ...``: the configured timeout, then how
        the process group was ended."""
        how = (
            f"SIGKILL, {TERM_GRACE_S:g} s after SIGTERM did not end it"
            if self.ended_by == "SIGKILL"
            else "SIGTERM"
        )
        return (
            f"{what} timed out after {self.timeout_s:g} s (timeout_s); its process "
            f"group was ended with {how}"
        )


def output_tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters."""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return tail[-chars:]


def component_of(output: str, root: Path) -> str:
    """Where a failure lies, from a command's output: the innermost traceback frame
    in the workspace, else the last ``path:line`` in the workspace; always a
    file of the workspace (never ``<string>:3`` or a file outside), or empty."""
    from_traceback = component_from_traceback(output, root)
    if from_traceback and (root / from_traceback.rsplit(":", 1)[0]).is_file():
        return from_traceback
    found = ""
    resolved = root.resolve()
    for match in _LOCATION.finditer(output):
        path = Path(match["path"])
        full = path if path.is_absolute() else resolved / path
        try:
            relative = full.resolve().relative_to(resolved)
        except (ValueError, OSError):
            continue
        if full.is_file():
            found = f"{relative.as_posix()}:{match['line']}"
    return found


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Path | None = None,
    supervised: bool = True,
) -> ProcessResult:
    """Runs ``argv`` (never through a shell) in ``cwd`` in a new process group,
    with the file ``stdin`` (if any) as its standard input.

    It runs under :mod:`~recovery_adapters.validation.supervise`: when it
    ends, whatever it left running (a process in the background, a daemon in
    a session of its own) is killed, so that nothing of a step outlives it.
    At the timeout the command's whole group is ended (SIGTERM, then SIGKILL
    a moment later), and everything below it with it. ``supervised=False``
    is for a program of ours that runs none of the workspace's code (ruff):
    it saves the supervisor's start, some milliseconds.
    """
    timeout = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    started = time.monotonic()
    program = find_program(argv[0], cwd=cwd, env=full_env)
    if isinstance(program, OSError):
        return _not_started(argv, program, started)
    with tempfile.NamedTemporaryFile(prefix="recovery-output-") as sink:
        try:
            process, failed = start_supervised(
                argv,
                program,
                cwd=cwd,
                env=full_env,
                stdin=Path(os.devnull) if stdin is None else stdin,
                stdout=Path(sink.name),
                supervised=supervised,
            )
        except OSError as exc:
            return _not_started(argv, exc, started)
        timed_out, ended_by = False, ""
        with failed, _ExitWaiter(process) as waiter:
            try:
                if not waiter.wait(timeout):
                    timed_out = True
                    ended_by = end_supervised(process, waiter.wait, supervised)
            except BaseException:
                end_supervised(process, waiter.wait, supervised)
                raise
            error = failed.error()
        if error is not None:
            return _not_started(argv, error, started)
        duration = time.monotonic() - started
        sink.seek(0)
        output = sink.read().decode("utf-8", errors="replace")
    return ProcessResult(
        argv=tuple(argv),
        exit_code=None if timed_out else process.returncode,
        output=output,
        duration_s=duration,
        timed_out=timed_out,
        timeout_s=timeout,
        ended_by=ended_by,
    )


def find_program(name: str, *, cwd: Path, env: Mapping[str, str]) -> str | OSError:
    """The file ``name`` runs, as ``exec`` finds it (a name with a slash
    relative to ``cwd``, else along ``env``'s ``PATH``); the error where
    there is none."""
    if "/" not in name:
        found = shutil.which(name, path=env.get("PATH", os.defpath))
        if found is None:
            return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        return str(Path(cwd, found))
    path = Path(cwd, name)
    if not path.is_file():
        code = errno.EISDIR if path.is_dir() else errno.ENOENT
        return OSError(code, os.strerror(code))
    if not os.access(path, os.X_OK):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    return str(path)


def _not_started(argv: Sequence[str], exc: OSError, started: float) -> ProcessResult:
    return ProcessResult(
        argv=tuple(argv),
        exit_code=127,
        output=f"cannot run {argv[0]!r}: {exc.strerror or exc}",
        duration_s=time.monotonic() - started,
        not_found=True,
    )


def start_supervised(
    argv: Sequence[str],
    program: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: Path,
    stdout: Path,
    stderr: Path | None = None,
    supervised: bool = True,
) -> tuple[subprocess.Popen[bytes], StartError]:
    """Starts ``argv`` (the file ``program``, see :func:`find_program`) under
    a supervisor (unless not ``supervised``), in a session of its own, with
    the file ``stdin`` as its input and its output appended to ``stdout``
    (its errors to ``stderr``; None: to ``stdout`` too); with what the
    supervisor says when it cannot start it. End it early with
    :func:`end_supervised`. The supervisor was started ahead, when the one
    before it was taken (see :func:`end_spare`)."""
    if not supervised:
        with contextlib.ExitStack() as files:
            process = subprocess.Popen(
                list(argv),
                executable=program,
                cwd=cwd,
                env=env,
                stdin=files.enter_context(stdin.open("rb")),
                stdout=files.enter_context(stdout.open("ab")),
                stderr=files.enter_context(stderr.open("ab"))
                if stderr
                else subprocess.STDOUT,
                start_new_session=True,
            )
        return process, StartError(None)
    # Absolute: the supervisor was started ahead, maybe in another folder.
    named = [Path(program), cwd, stdin, stdout, *([stderr] if stderr else [])]
    fields = [str(path.absolute()) for path in named]
    fields += [] if stderr else [""]
    fields += [str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
    request = b"".join(os.fsencode(field) + b"\0" for field in fields)
    supervisor = _ready_supervisor()
    if not supervisor.ask(request):  # it died meanwhile: a fresh one
        supervisor = _Supervisor()
        if not supervisor.ask(request):
            raise OSError(errno.EPIPE, "the supervisor did not take the command")
    _start_spare()  # while the command runs
    return supervisor.process, supervisor.failed


class _Supervisor:
    """A supervisor process, started ahead of its command: it waits for its
    request (see :mod:`~recovery_adapters.validation.supervise`)."""

    def __init__(self) -> None:
        request_end, request = os.pipe()
        self._request: int | None = request
        status, status_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                [*SUPERVISOR, str(request_end), str(status_end)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=(request_end, status_end),
            )
        except BaseException:
            os.close(request)
            os.close(status)
            raise
        finally:
            os.close(request_end)
            os.close(status_end)
        self.failed = StartError(status)
        self.owner = os.getpid()

    def ask(self, request: bytes) -> bool:
        """Gives it its command; False when it is gone."""
        fd, self._request = self._request, None
        assert fd is not None, "a supervisor is asked once"
        try:
            view = memoryview(request)
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            return False
        finally:
            os.close(fd)
        return True

    def ready(self) -> bool:
        """Whether it waits for a command, for this process."""
        return self.owner == os.getpid() and self.process.poll() is None

    def forget(self) -> None:
        """Closes this process's ends of its pipes, leaving it be."""
        fd, self._request = self._request, None
        if fd is not None:
            os.close(fd)
        self.failed.close()

    def close(self) -> None:
        """Ends it unused: its request ends empty, and it exits."""
        self.forget()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_spare_lock = threading.Lock()
_spare: _Supervisor | None = None


def _ready_supervisor() -> _Supervisor:
    """The supervisor started ahead, else one started now."""
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    if spare is not None and spare.ready():
        return spare
    if spare is not None and spare.owner == os.getpid():
        spare.close()
    return _Supervisor()


def _start_spare() -> None:
    """Starts the supervisor of the next command ahead (its Python starts
    while this command runs)."""
    global _spare
    with _spare_lock:
        if _spare is not None and _spare.ready():
            return
        if _spare is not None and _spare.owner == os.getpid():
            _spare.close()  # it died
        _spare = _Supervisor()


def end_spare() -> None:
    """Ends the supervisor started ahead, if any (done at exit)."""
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    if spare is not None and spare.owner == os.getpid():
        spare.close()


def _forget_spare() -> None:
    """In a process forked from ours: lets go of the parent's supervisor
    started ahead without touching it (its request ends only when every copy
    of its pipe is closed, so a copy kept here would hold the parent's next
    command back), and takes a lock of its own."""
    global _spare, _spare_lock
    spare, _spare, _spare_lock = _spare, None, threading.Lock()
    if spare is not None:
        spare.forget()


atexit.register(end_spare)
os.register_at_fork(after_in_child=_forget_spare)


#: How a supervisor is started: a Python of no site and no user settings
#: (``-I -S``), which starts in milliseconds.
SUPERVISOR: Final = (
    sys.executable,
    "-I",
    "-S",
    str(Path(__file__).with_name("supervise.py")),
)


class StartError:
    """The read end of the supervisor's status pipe: what it wrote when it
    could not start the command (:meth:`error`, once it has ended)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd  # None: no supervisor

    def error(self) -> OSError | None:
        """Why the command could not be started; None when it was."""
        if self._fd is None:
            return None
        number = os.read(self._fd, 64)
        return OSError(int(number), os.strerror(int(number))) if number else None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StartError:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: The longest single ``poll`` (its timeout is a C int of milliseconds) and
#: ``Event.wait``; a longer wait is a loop of these.
_MAX_POLL_MS: Final = 2**31 - 1
_MAX_EVENT_WAIT_S: Final = min(threading.TIMEOUT_MAX, _MAX_POLL_MS / 1000)


class _ExitWaiter:
    """Waits for a child to end without polling, and reaps it.

    ``Popen.wait(timeout=...)`` sleeps in steps of up to 50 ms between checks,
    so a command that ends at once is seen up to 50 ms late. On Linux a pidfd
    becomes readable the moment the child ends, and ``poll`` on it blocks for
    exactly the remaining time. Where there is no pidfd (other systems, Linux
    before 5.3, a seccomp filter) a thread blocks in ``Popen.wait()`` (no
    timeout, so ``waitpid`` without polling) and sets an event that the
    caller waits on with its timeout.

    One waiter serves every wait on its child (the timeout, then each grace
    period of the kill), so the fallback starts one thread only.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._pidfd: int | None = None
        self._poller: select.poll | None = None
        self._reaped: threading.Event | None = None
        self._reaper: threading.Thread | None = None
        if process.returncode is not None:
            return
        try:
            self._pidfd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            self._start_reaper()
            return
        try:
            self._poller = select.poll()
            self._poller.register(self._pidfd, select.POLLIN)
        except (AttributeError, OSError):
            self._close_pidfd()
            self._start_reaper()

    def _start_reaper(self) -> None:
        reaped = threading.Event()
        process = self._process

        def reap() -> None:
            try:
                process.wait()
            finally:
                reaped.set()

        self._reaped = reaped
        self._reaper = threading.Thread(
            target=reap, name=f"recovery-wait-{process.pid}", daemon=True
        )
        self._reaper.start()

    def wait(self, timeout: float) -> bool:
        """True once the child has ended and been reaped (its ``returncode``
        set), False if ``timeout`` seconds passed first."""
        if self._process.returncode is not None:
            return True
        if self._reaped is not None:
            return self._wait_for_reaper(timeout)
        assert self._poller is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            milliseconds = math.ceil(min(max(remaining, 0.0) * 1000, _MAX_POLL_MS))
            if self._poller.poll(milliseconds):
                # The child has ended: this wait only collects its status.
                self._process.wait()
                return True
            if remaining <= 0:
                return False

    def _wait_for_reaper(self, timeout: float) -> bool:
        assert self._reaped is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if self._reaped.wait(min(max(remaining, 0.0), _MAX_EVENT_WAIT_S)):
                return True
            if remaining <= 0:
                return False

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._poller = None

    def close(self) -> None:
        """Releases the pidfd; joins the reaper thread if it is done (one left
        blocked on a child that would not die stays, as a daemon)."""
        self._close_pidfd()
        if self._reaper is not None and self._reaped is not None:
            if self._reaped.is_set():
                self._reaper.join()
            self._reaper = None

    def __enter__(self) -> _ExitWaiter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def end_supervised(
    process: subprocess.Popen[bytes],
    wait: Callable[[float], bool],
    supervised: bool = True,
) -> str:
    """Ends a command started by :func:`start_supervised`: SIGTERM, which the
    supervisor passes on to the command's group, then (after the grace)
    SIGUSR1, on which the supervisor kills it and everything below it (not
    ``supervised``: SIGKILL to the group); ``wait(seconds)`` says whether the
    process ended within that time. Returns the name of the signal that ended
    the command."""
    last = signal.SIGUSR1 if supervised else signal.SIGKILL
    for sig, grace in ((signal.SIGTERM, TERM_GRACE_S), (last, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return _ENDED_BY[sig]
        if not wait(grace):
            continue
        # The leader is gone; make sure nothing else of the group is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return _ENDED_BY[sig]
    with contextlib.suppress(ProcessLookupError):  # the supervisor, stuck
        os.killpg(process.pid, signal.SIGKILL)
    return signal.SIGKILL.name


#: What ended the command, by the signal sent to its supervisor.
_ENDED_BY: Final = {
    signal.SIGTERM: "SIGTERM",
    signal.SIGUSR1: "SIGKILL",
    signal.SIGKILL: "SIGKILL",
}
