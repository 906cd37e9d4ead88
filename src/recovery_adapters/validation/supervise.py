"""Runs one command and, once it has ended, ends whatever it left running.

A step's command is code nobody reviewed. A process it starts and leaves
behind (``cmd &``, a daemon that made a session of its own) would go on after
the step, after the guard had checked the repository: it could plant a
``core.fsmonitor`` that runs on the user's next ``git status``, or change
files that then pass for the user's. So
:func:`~recovery_adapters.validation.process.run_process` runs each command
under this script (``python -I -S supervise.py REQUEST_FD STATUS_FD``),
started in a session of its own ahead of its command (so that its start
costs the command nothing), which reads its command from ``REQUEST_FD`` and:

- makes itself a child subreaper (Linux ``prctl``), so that every process
  below it whose parent ends becomes its child instead of init's, whatever
  session or process group it moved to;
- runs the command in its own process group, as its child, and waits for it;
- then kills (SIGKILL) every process still below it, until none is left;
- exits as the command did (its exit code, or the signal that ended it).

SIGTERM, SIGINT and SIGHUP sent to the supervisor are passed on to the
command's group (the supervisor outlives them, to clean up after it);
SIGUSR1 has it kill the command and everything below it at once. Where the
command cannot be started, the supervisor writes the error's number to
``STATUS_FD`` and exits 127. When ``REQUEST_FD`` ends with no request (its
starter ended), it exits. Where there is no subreaper (not Linux), only
the processes still below the command are found (a daemon re-parented to
init is not).

It imports only C modules (``_signal``, ``_ctypes``) and nothing of the
project, and runs with ``-I -S``: it starts in a few milliseconds.
"""

# ruff: noqa: SIM105 - contextlib costs milliseconds to import, here
from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's enums cost its import
import os
import sys

#: ``prctl`` option: orphans below this process become its children.
_PR_SET_CHILD_SUBREAPER = 36
#: How many rounds of killing are tried before giving up (each round kills
#: the children found; their own children become ours for the next round).
_ROUNDS = 10_000
#: The signals passed on to the command's group.
_ENDING = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)


def _become_subreaper() -> None:
    """``prctl(PR_SET_CHILD_SUBREAPER, 1)``, through ctypes' C module (the
    ``ctypes`` package costs milliseconds to import); nothing where there is
    no such call."""
    try:
        import _ctypes

        libc = _ctypes.dlopen(None, 2)  # type: ignore[arg-type]  # this process
        prctl = _ctypes.dlsym(libc, "prctl")
        _ctypes.call_function(prctl, (_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
    except (ImportError, AttributeError, OSError, TypeError):
        try:
            import ctypes  # the public way, where the other is not

            ctypes.CDLL(None).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (ImportError, AttributeError, OSError):
            pass


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (this single-threaded process):
    from /proc's list of them, else from every process's parent."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as listed:  # noqa: PTH123
            return [int(child) for child in listed.read().split()]
    except OSError:
        pass
    found: list[int] = []
    try:
        names = os.listdir("/proc")  # noqa: PTH208 - pathlib costs its import
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:  # noqa: PTH123
                data = stat.read()
        except OSError:
            continue  # ended meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        if int(data[data.rindex(b")") + 2 :].split()[1]) == pid:
            found.append(int(name))
    return found


def _end_everything_below() -> None:
    """Kills every process below this one, and reaps it."""
    me = os.getpid()
    for _ in range(_ROUNDS):
        children = _children(me)
        if not children:
            return
        for child in children:
            try:
                os.kill(child, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        for child in children:
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass


def _kill_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def _read_request(fd: int) -> list[bytes] | None:
    """The request written to ``fd`` (until its end): NUL-ended fields (see
    :func:`~recovery_adapters.validation.process.start_supervised`); None for
    none (the process that started this one ended without asking)."""
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    data = b"".join(chunks)
    return data.split(b"\0")[:-1] if data else None


def _take_files(stdin: bytes, stdout: bytes, stderr: bytes) -> None:
    """Makes the named files standard input, output and error (an empty
    ``stderr``: the same as the output)."""
    for number, name, flags in (
        (0, stdin, os.O_RDONLY),
        (1, stdout, os.O_WRONLY | os.O_APPEND),
        (2, stderr or stdout, os.O_WRONLY | os.O_APPEND),
    ):
        fd = os.open(name, flags | os.O_CLOEXEC)
        os.dup2(fd, number)  # inheritable, as standard streams are
        os.close(fd)


def main(argv: list[str]) -> int:
    request_fd, status_fd = int(argv[0]), int(argv[1])
    os.set_inheritable(status_fd, False)  # not the command's to keep
    _become_subreaper()  # before the request: started ahead, this costs nothing
    request = _read_request(request_fd)
    if request is None:
        return 0
    program, cwd, stdin, stdout, stderr, count = request[:6]
    command = request[6 : 6 + int(count)]
    env = dict(item.split(b"=", 1) for item in request[6 + int(count) :])
    command_group: list[int] = []  # known once forked

    def forward(signum: int, frame: object) -> None:
        for group in command_group:
            _kill_group(group, signum)

    def end_now(signum: int, frame: object) -> None:
        forward(_signal.SIGKILL, frame)
        _end_everything_below()

    for ending in _ENDING:
        _signal.signal(ending, forward)  # a handler: the default again after exec
    _signal.signal(_signal.SIGUSR1, end_now)
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            _take_files(stdin, stdout, stderr)
            os.chdir(cwd)
            os.execve(program, command, env)  # noqa: S606 - never a shell, on purpose
        except OSError as exc:
            os.write(status_fd, str(exc.errno or 0).encode())
        os._exit(127)
    try:  # as the child does: whichever is first
        os.setpgid(pid, pid)
    except OSError:
        pass
    command_group.append(pid)
    try:
        status = os.waitpid(pid, 0)[1]
    except ChildProcessError:  # reaped by end_now: killed
        status = _signal.SIGKILL
    # What is left of the command's group, then whatever moved away from it.
    _kill_group(pid, _signal.SIGKILL)
    _end_everything_below()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # ends as the command ended: by the same signal
        try:
            _signal.signal(-code, _signal.SIG_DFL)
        except (ValueError, OSError):
            pass
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]) & 0xFF)  # no interpreter shutdown: milliseconds
