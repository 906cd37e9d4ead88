"""How ``run_process`` waits for its command, on real subprocesses: a pidfd on
Linux, a thread blocked in ``waitpid`` where there is none, and never the
sleep loop of ``Popen.wait(timeout=...)``. Both ways must give the same
results: exit codes, death by a signal, the timeout that kills the whole
process group (SIGTERM, then SIGKILL after the grace), and an interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import FrameType

import pytest

from recovery_adapters.validation.process import end_spare, run_process

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="process groups and signals are POSIX"
)


def _pidfd_works() -> bool:
    try:
        fd = os.pidfd_open(os.getpid())
    except (AttributeError, OSError):
        return False
    os.close(fd)
    return True


PIDFD = _pidfd_works()
#: A shell that leaves a grandchild in the background, writes its own pid and the
#: grandchild's, and hangs.
HANG_WITH_GRANDCHILD = (
    "sleep 30 & echo $! > grandchild.pid; echo $$ > leader.pid; sleep 30"
)


class WaitPath:
    """Which way ``run_process`` waits in a test, and what it used."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: The pids ``os.pidfd_open`` was asked for (whether or not it worked).
        self.pidfd_requests: list[int] = []


@pytest.fixture(params=["pidfd", "thread", "no-pidfd-function"])
def wait_path(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> WaitPath:
    """Runs a test on each way of waiting: the pidfd (skipped where the system
    has none), the thread fallback when ``os.pidfd_open`` fails, and when it does
    not exist at all."""
    path = WaitPath(str(request.param))
    if path.name == "pidfd":
        if not PIDFD:
            pytest.skip("os.pidfd_open is not available here")
        real = os.pidfd_open

        def spy(pid: int, flags: int = 0) -> int:
            path.pidfd_requests.append(pid)
            return real(pid, flags)

        monkeypatch.setattr(os, "pidfd_open", spy)
    elif path.name == "thread":

        def unavailable(pid: int, flags: int = 0) -> int:
            path.pidfd_requests.append(pid)
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", unavailable, raising=False)
    else:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    return path


@pytest.fixture
def no_polling(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[], AbstractContextManager[None]]:
    """A block in which nothing may sleep: ``Popen.wait(timeout=...)`` and
    ``communicate(timeout=...)`` wait by ``time.sleep`` in steps of up to 50 ms,
    so a call of it means a polled wait. Open file descriptors and waiting
    threads must be the same after the block as before (the supervisor
    started ahead for the next command ended)."""

    @contextmanager
    def block() -> Iterator[None]:
        sleeps: list[float] = []
        fds_before = _open_fds()
        with monkeypatch.context() as patch:
            patch.setattr(time, "sleep", sleeps.append)
            yield
        assert sleeps == [], "the wait polled with time.sleep"
        # The supervisor started ahead for the next command holds two pipes;
        # ended, it holds none.
        end_spare()
        # The set is the whole process's: another thread of the test process
        # may hold one for a moment, and a garbage collection in the block may
        # close what earlier tests left. Only a descriptor opened in the block
        # and still open counts; one the wait leaked stays open for good.
        deadline = time.monotonic() + 5
        while _opened_since(fds_before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _opened_since(fds_before), "a file descriptor was left open"
        assert not [t for t in threading.enumerate() if t.name.startswith("recovery-")]

    return block


def _opened_since(before: set[str] | None) -> set[str]:
    """The descriptors open now that were not open at ``before``."""
    now = _open_fds()
    return set() if now is None or before is None else now - before


def _open_fds() -> set[str] | None:
    folder = Path("/proc/self/fd")
    return {fd.name for fd in folder.iterdir()} if folder.is_dir() else None


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether ``pid`` has ended (a zombie waiting for init to reap it counts as
    ended), waiting up to ``within_s`` for it."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = ""
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _check_path(path: WaitPath, expected_pids: int = 1) -> None:
    """The wait went the way the fixture chose."""
    if path.name == "no-pidfd-function":
        assert path.pidfd_requests == []
    else:
        assert len(path.pidfd_requests) == expected_pids


def test_exit_0_is_reported_with_its_output(
    tmp_path: Path,
    wait_path: WaitPath,
    no_polling: Callable[[], AbstractContextManager[None]],
) -> None:
    """A command that exits at once: exit code 0, its output, no polling."""
    with no_polling():
        result = run_process(
            [sys.executable, "-c", "print('\\n'.join(map(str, range(100))))"],
            cwd=tmp_path,
        )
    _check_path(wait_path)
    assert result.exit_code == 0
    assert not result.timed_out and not result.not_found
    assert result.output.splitlines() == [str(n) for n in range(100)]
    assert result.duration_s > 0


def test_exit_3_is_reported(
    tmp_path: Path,
    wait_path: WaitPath,
    no_polling: Callable[[], AbstractContextManager[None]],
) -> None:
    """A non-zero exit code comes back as it is, with the output before it."""
    with no_polling():
        result = run_process(
            [sys.executable, "-c", "import sys; print('bad'); sys.exit(3)"],
            cwd=tmp_path,
        )
    _check_path(wait_path)
    assert result.exit_code == 3
    assert not result.timed_out
    assert result.output.strip() == "bad"


def test_a_command_killed_by_a_signal_reports_the_signal(
    tmp_path: Path,
    wait_path: WaitPath,
    no_polling: Callable[[], AbstractContextManager[None]],
) -> None:
    """A command that dies of a signal (its own SIGKILL) gives ``-signal``, and
    is not a timeout."""
    with no_polling():
        result = run_process(
            [
                sys.executable,
                "-c",
                "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
            ],
            cwd=tmp_path,
        )
    _check_path(wait_path)
    assert result.exit_code == -signal.SIGKILL
    assert not result.timed_out


def test_a_timeout_kills_the_whole_process_group(
    tmp_path: Path,
    wait_path: WaitPath,
    no_polling: Callable[[], AbstractContextManager[None]],
) -> None:
    """At the timeout the command and the grandchild its shell left in the
    background are both killed; the result says it timed out."""
    with no_polling():
        result = run_process(
            ["sh", "-c", HANG_WITH_GRANDCHILD], cwd=tmp_path, timeout_s=0.5
        )
    _check_path(wait_path)
    assert result.timed_out
    assert result.exit_code is None
    assert result.duration_s >= 0.5
    assert _gone(int((tmp_path / "leader.pid").read_text()))
    assert _gone(int((tmp_path / "grandchild.pid").read_text()))


def test_a_group_that_ignores_sigterm_gets_sigkill_after_the_grace(
    tmp_path: Path,
    wait_path: WaitPath,
    no_polling: Callable[[], AbstractContextManager[None]],
) -> None:
    """A shell and grandchild that ignore SIGTERM are given the grace period,
    then killed with SIGKILL."""
    with no_polling():
        result = run_process(
            ["sh", "-c", f"trap '' TERM; {HANG_WITH_GRANDCHILD}"],
            cwd=tmp_path,
            timeout_s=0.5,
        )
    _check_path(wait_path)
    assert result.timed_out
    assert result.exit_code is None
    # The SIGTERM grace (2 s) was waited out before the SIGKILL.
    assert result.duration_s >= 0.5 + 2.0
    assert _gone(int((tmp_path / "leader.pid").read_text()))
    assert _gone(int((tmp_path / "grandchild.pid").read_text()))


class _Interrupted(Exception):
    pass


def test_an_interrupted_wait_kills_the_group_and_raises(
    tmp_path: Path,
    wait_path: WaitPath,
    no_polling: Callable[[], AbstractContextManager[None]],
) -> None:
    """An exception raised into the wait (here by a signal handler, as Ctrl-C
    would) kills the whole group before it propagates."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with no_polling(), pytest.raises(_Interrupted):
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            run_process(["sh", "-c", HANG_WITH_GRANDCHILD], cwd=tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    _check_path(wait_path)
    assert _gone(int((tmp_path / "leader.pid").read_text()))
    assert _gone(int((tmp_path / "grandchild.pid").read_text()))


def test_a_missing_program_is_not_found(tmp_path: Path, wait_path: WaitPath) -> None:
    """A program that does not exist is reported as not found, exit code 127,
    without waiting for anything."""
    result = run_process([str(tmp_path / "no-such-program")], cwd=tmp_path)
    assert result.not_found
    assert result.exit_code == 127
    assert "cannot run" in result.output
    assert wait_path.pidfd_requests == []


def test_the_old_wait_polls_so_the_check_means_something(
    tmp_path: Path, no_polling: Callable[[], AbstractContextManager[None]]
) -> None:
    """The no-polling check catches ``Popen.wait(timeout=...)``: it fails on the
    very call that ``run_process`` used before."""
    process = subprocess.Popen([sys.executable, "-c", "pass"], cwd=tmp_path)
    try:
        with pytest.raises(AssertionError, match="polled"), no_polling():
            process.wait(timeout=600)
    finally:
        process.wait()


def test_a_process_forked_from_ours_does_not_hold_the_next_command_back(
    tmp_path: Path,
) -> None:
    """A host that forks (multiprocessing, a pre-forking server) after a
    command ran: the child holds a copy of everything the parent had open,
    the supervisor started ahead for the next command among it. The parent's
    next command still starts at once (before, the supervisor waited for the
    end of its request, which the child's copy held back, until the
    timeout)."""
    assert run_process(["true"], cwd=tmp_path).exit_code == 0
    child = os.fork()
    if child == 0:  # the host's forked child, busy with its own work
        time.sleep(30)
        os._exit(0)
    try:
        result = run_process(
            [sys.executable, "-c", "print('ran')"], cwd=tmp_path, timeout_s=10
        )
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert not result.timed_out
    assert result.exit_code == 0
    assert result.output.strip() == "ran"
