"""The machine a runner runs on (the :class:`~recovery_core.ports.RunnerHost`
port): its host name and process id, whether a runner recorded on this host is
still alive, and waiting."""

from __future__ import annotations

import os
import socket
import time

__all__ = ["LocalHost"]


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
        if host != self.host:
            return True
        try:
            os.kill(pid, 0)  # signal 0: does it exist? (nothing is sent)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, as another user's
        return True

    def sleep(self, seconds: float) -> None:
        """Waits ``seconds``."""
        time.sleep(max(0.0, seconds))
