"""The agent protocol: which command answers a failure, running it, and
reading its answer.

The agent runs in the workspace, in a process group of its own, with the
trigger file's path in ``RECOVERY_TRIGGER`` and the trigger's JSON on its
standard input. Exit 0 means it proposes something: a unified diff against
the faulty tree on standard output (as ``git diff`` prints it), or a JSON
object ``{"patch": "...", "analysis": "..."}``. Any other exit means it has no
proposal. At its timeout its whole process group is ended (SIGTERM, then
SIGKILL); whatever it leaves running is ended when it ends (see
:mod:`~recovery_adapters.validation.supervise`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from recovery_adapters.validation.process import (
    end_supervised,
    find_program,
    start_supervised,
)
from recovery_core import RecoveryError
from recovery_core.plan import Batch

__all__ = [
    "AGENT_ENV",
    "AGENT_TIMEOUT_ENV",
    "DEFAULT_AGENT_TIMEOUT_S",
    "AgentAnswer",
    "AgentRun",
    "ChosenAgent",
    "choose_agent",
    "read_answer",
    "run_agent",
]

#: The agent command when neither the strategy nor the plan names one.
AGENT_ENV: Final = "RECOVERY_AGENT_COMMAND"
#: The agent's timeout when neither the strategy nor the plan gives one.
AGENT_TIMEOUT_ENV: Final = "RECOVERY_AGENT_TIMEOUT_S"
DEFAULT_AGENT_TIMEOUT_S: Final = 300.0
#: The most of an agent's standard output that is read.
MAX_ANSWER_BYTES: Final = 8 << 20
_TAIL_CHARS: Final = 4000


class AgentError(RecoveryError, ValueError):
    """An agent's answer that cannot be read, or an agent setting that is
    not valid (the message says why)."""

    exit_code = 2


@attrs.frozen
class ChosenAgent:
    """The agent command that answers a failure, where it was named
    (``--agent``, ``plan``, ``RECOVERY_AGENT_COMMAND``) and its timeout."""

    argv: tuple[str, ...]
    source: str
    timeout_s: float


def choose_agent(
    explicit: Sequence[str] | None,
    explicit_timeout_s: float | None,
    batch: Batch,
    environ: Mapping[str, str] | None = None,
) -> ChosenAgent | None:
    """The agent for ``batch``: the strategy's own (``--agent``), else the
    batch's ``agent`` in the plan, else ``RECOVERY_AGENT_COMMAND``; None when
    none is named. The timeout: the strategy's, else the plan's, else
    ``RECOVERY_AGENT_TIMEOUT_S``, else 300 s."""
    env = os.environ if environ is None else environ
    timeout = _timeout_from(env)
    if explicit_timeout_s is not None:
        timeout = explicit_timeout_s
    elif batch.agent is not None and batch.agent.timeout_s is not None:
        timeout = batch.agent.timeout_s
    if explicit:
        return ChosenAgent(tuple(explicit), "--agent", timeout)
    if batch.agent is not None:
        return ChosenAgent(tuple(batch.agent.run), "plan", timeout)
    command = env.get(AGENT_ENV, "").strip()
    if command:
        return ChosenAgent(tuple(split_command(command)), AGENT_ENV, timeout)
    return None


def split_command(command: str) -> list[str]:
    """A command line split as a shell would split words (no shell runs it)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise AgentError(f"cannot split the agent command {command!r}: {exc}") from None
    if not argv:
        raise AgentError("the agent command is empty")
    return argv


def _timeout_from(env: Mapping[str, str]) -> float:
    text = env.get(AGENT_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_AGENT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise AgentError(
            f"{AGENT_TIMEOUT_ENV}={text!r} is not a positive number of seconds"
        )
    return value


@attrs.frozen
class AgentRun:
    """How the agent ended: its exit code (None when it could not start or
    was killed at its timeout), its standard output, the end of its standard
    error."""

    exit_code: int | None
    stdout: bytes
    stderr_tail: str
    duration_s: float
    timed_out: bool = False
    start_error: str = ""

    def as_data(self, agent: ChosenAgent) -> dict[str, object]:
        """What the events record of the run."""
        return {
            "command": list(agent.argv),
            "source": agent.source,
            "timeout_s": agent.timeout_s,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "duration_s": round(self.duration_s, 3),
            "stderr_tail": self.stderr_tail,
            "start_error": self.start_error,
        }


def run_agent(
    agent: ChosenAgent, *, cwd: Path, trigger: Path, env: Mapping[str, str]
) -> AgentRun:
    """Runs ``agent`` in ``cwd`` with the file ``trigger`` on its standard
    input and ``env`` added to ours; ends its process group at its timeout."""
    started = time.monotonic()
    full_env = {**os.environ, **env, "RECOVERY_TRIGGER": str(trigger)}
    with (
        tempfile.NamedTemporaryFile(prefix="recovery-agent-") as out,
        tempfile.NamedTemporaryFile(prefix="recovery-agent-") as err,
    ):
        program = find_program(agent.argv[0], cwd=cwd, env=full_env)
        try:
            if isinstance(program, OSError):
                raise program
            process, failed = start_supervised(
                agent.argv,
                program,
                cwd=cwd,
                env=full_env,
                stdin=trigger,
                stdout=Path(out.name),
                stderr=Path(err.name),
            )
        except OSError as exc:
            return _not_started(agent, exc, started)
        timed_out = False
        with failed:
            try:
                process.wait(timeout=agent.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                end_supervised(process, _waiting(process))
            except BaseException:
                end_supervised(process, _waiting(process))
                raise
            error = failed.error()
        if error is not None:
            return _not_started(agent, error, started)
        out.seek(0)
        stdout = out.read(MAX_ANSWER_BYTES + 1)
        err.seek(0)
        stderr = err.read()[-_TAIL_CHARS * 4 :].decode("utf-8", "replace")
    return AgentRun(
        exit_code=None if timed_out else process.returncode,
        stdout=stdout,
        stderr_tail=stderr[-_TAIL_CHARS:],
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
    )


def _not_started(agent: ChosenAgent, exc: OSError, started: float) -> AgentRun:
    return AgentRun(
        exit_code=None,
        stdout=b"",
        stderr_tail="",
        duration_s=time.monotonic() - started,
        start_error=f"cannot run {agent.argv[0]!r}: {exc.strerror or exc}",
    )


def _waiting(process: subprocess.Popen[bytes]) -> Callable[[float], bool]:
    """Whether ``process`` ends within so many seconds."""

    def wait(seconds: float) -> bool:
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    return wait


@attrs.frozen
class AgentAnswer:
    """What an agent proposes: a patch against the faulty tree, and its own
    analysis (empty when it gave none)."""

    patch: bytes
    analysis: str


def read_answer(stdout: bytes) -> AgentAnswer:
    """The agent's answer from its standard output: a JSON object with a
    string ``patch`` (and optionally ``analysis``), or a unified diff."""
    if len(stdout) > MAX_ANSWER_BYTES:
        raise AgentError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    text = stdout.strip()
    if not text.startswith(b"{"):
        return AgentAnswer(patch=_ending(stdout.lstrip(b"\n")), analysis="")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AgentError(
            f"the answer starts with '{{' but is not JSON: {exc}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("patch"), str):
        raise AgentError('a JSON answer needs "patch": a string holding a unified diff')
    analysis = data.get("analysis", "")
    if not isinstance(analysis, str):
        raise AgentError('"analysis" in a JSON answer must be a string')
    return AgentAnswer(patch=_ending(data["patch"].encode()), analysis=analysis)


def _ending(patch: bytes) -> bytes:
    """``git apply`` wants the last line ended."""
    return patch if not patch.strip() or patch.endswith(b"\n") else patch + b"\n"
