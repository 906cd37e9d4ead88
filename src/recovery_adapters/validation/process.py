"""Running a command for a step: its own process group, a timeout that kills the
whole group, and the tail of its output kept."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from recovery_core.runner import component_from_traceback

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ProcessResult",
    "component_of",
    "output_tail",
    "run_process",
]

DEFAULT_TIMEOUT_S: Final = 600.0
TAIL_LINES: Final = 40
TAIL_CHARS: Final = 4000

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


def output_tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters."""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return tail[-chars:]


def component_of(output: str, root: Path) -> str:
    """Where a failure lies, from a command's output: the innermost traceback frame
    in the workspace, else the last ``path:line`` in the workspace."""
    from_traceback = component_from_traceback(output, root)
    if from_traceback:
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
        if full.exists():
            found = f"{relative.as_posix()}:{match['line']}"
    return found


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> ProcessResult:
    """Runs ``argv`` (never through a shell) in ``cwd`` in a new process group.

    At the timeout the whole group is killed (SIGTERM, then SIGKILL a moment
    later), so that children a step spawned do not linger.
    """
    timeout = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            return ProcessResult(
                argv=tuple(argv),
                exit_code=127,
                output=f"cannot run {argv[0]!r}: {exc.strerror or exc}",
                duration_s=time.monotonic() - started,
                not_found=True,
            )
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
        except BaseException:
            _kill_group(process)
            raise
        duration = time.monotonic() - started
        sink.seek(0)
        output = sink.read().decode("utf-8", errors="replace")
    return ProcessResult(
        argv=tuple(argv),
        exit_code=None if timed_out else process.returncode,
        output=output,
        duration_s=duration,
        timed_out=timed_out,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
            # The leader is gone; make sure nothing else of the group is left.
            os.killpg(process.pid, signal.SIGKILL)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            pass
        break
