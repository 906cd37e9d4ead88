"""The machine a runner runs on (the :class:`~recovery_core.ports.RunnerHost`
port): its host name and process id, whether a runner recorded on this host is
still alive, waiting, its heartbeat, and ending the processes a killed runner
left running."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

__all__ = ["LocalHost", "process_alive"]

#: The signals that end a runner: never taken by a thread of ours.
_ENDING = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def process_alive(pid: int) -> bool:
    """Whether the process ``pid`` of this host exists and has not ended: a
    zombie (ended, not yet reaped by its parent) is dead, as its claim is."""
    try:
        os.kill(pid, 0)  # signal 0: does it exist? (nothing is sent)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's
    try:  # Linux: the state follows the command's name, in parentheses
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return not Path("/proc/self/stat").exists()  # gone meanwhile, or no /proc
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class LocalHost:
    """This process on this machine."""

    @property
    def host(self) -> str:
        """The host name, as ``RunnerClaimed`` records it."""
        return socket.gethostname()

    @property
    def pid(self) -> int:
        """This process's id."""
        return os.getpid()

    def alive(self, host: str, pid: int) -> bool:
        """Whether the runner ``pid`` on ``host`` may still be alive: False only
        for a process of this host that is gone (another host's cannot be told
        from here)."""
        return host != self.host or process_alive(pid)

    def sleep(self, seconds: float) -> None:
        """Waits ``seconds``."""
        time.sleep(max(0.0, seconds))

    @contextlib.contextmanager
    def keep_alive(self, beat: Callable[[], None], every_s: float) -> Iterator[None]:
        """Calls ``beat`` every ``every_s`` seconds (the first time after one
        interval) from a thread of its own while the block runs. The thread
        never takes the signals that end a runner (SIGINT, SIGTERM, SIGHUP):
        they stay the main thread's, held back while git writes. A beat that
        fails (the store unreachable for a while) is tried again next time."""
        stop = threading.Event()

        def loop() -> None:
            signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING)
            while not stop.wait(every_s):
                with contextlib.suppress(Exception):
                    beat()

        thread = threading.Thread(target=loop, name="recovery-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)

    def end_processes(self, marks: Mapping[str, str]) -> list[int]:
        """Ends, with their process groups, the processes of this host whose
        environment has every one of ``marks`` (the run, batch and attempt a
        runner gives its actions and steps), and waits until they are gone;
        returns their pids. Processes of other users are not seen, this
        process is never one."""
        wanted = {f"{k}={v}".encode() for k, v in marks.items()}
        found: list[int] = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                environ = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue  # gone, or another user's
            pid = int(entry.name)
            if wanted <= environ and pid != os.getpid():
                found.append(pid)
        for pid in found:
            try:
                group = os.getpgid(pid)
                if group != os.getpgrp():  # never this process's own group
                    os.killpg(group, signal.SIGKILL)
            except OSError:
                continue  # gone meanwhile
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(_lives(pid) for pid in found):
            time.sleep(0.01)
        return sorted(found)


def _lives(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
