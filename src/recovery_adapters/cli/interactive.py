"""``--interactive``: the operator at the terminal decides right at the halt,
having seen the failure (the console notification) and the attempt's diff."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from recovery_adapters.git import GitWorkspace
from recovery_core import ConflictError, RecoveryApp, RecoveryError
from recovery_core.records import Failure, RunView

__all__ = ["terminal_asker"]

#: How long a diff shown at the prompt may be (lines); the rest is left out.
DIFF_LINES = 200


def terminal_asker(
    app: RecoveryApp,
    workspace: GitWorkspace,
    operator: str,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> Callable[[RunView], None]:
    """What a runner asks at each halt (``Runner.run(ask=...)``): shows the
    attempt's diff, then asks for a decision and records it as ``operator``.
    An empty answer, ``wait`` or the end of input records none: the runner
    then waits for a decision from elsewhere."""

    def ask(view: RunView) -> None:
        read, write = stdin or sys.stdin, stdout or sys.stderr
        awaiting = view.open_decision
        if awaiting is None or awaiting.recorded is not None:
            return
        failure = view.batch(awaiting.batch_id).failure
        if failure is not None and failure.baseline and failure.quarantine_ref:
            write.write(_diff(workspace, failure))
        choices = "/".join(awaiting.choices)
        while True:
            write.write(
                f"decide batch {awaiting.batch_id} attempt {awaiting.attempt} "
                f"[{choices}], or press Enter to wait for a decision from "
                "elsewhere: "
            )
            write.flush()
            answer = read.readline().strip().lower()
            if answer in ("", "wait"):
                write.write("\n")
                return
            chosen = [c for c in awaiting.choices if c.startswith(answer)]
            if len(chosen) != 1:
                write.write(f"{answer!r} is not one of {choices}\n")
                continue
            write.write("reason (optional): ")
            write.flush()
            reason = read.readline().strip()
            try:
                app.decide(
                    view.run_id,
                    awaiting.batch_id,
                    chosen[0],
                    operator=operator,
                    reason=reason,
                    attempt=awaiting.attempt,
                )
            except ConflictError as exc:  # decided elsewhere meanwhile
                write.write(f"not recorded: {exc}\n")
                return
            except RecoveryError as exc:
                write.write(f"not recorded: {exc}\n")
                continue
            write.write(f"recorded: {chosen[0]} by {operator}\n")
            return

    return ask


def _diff(workspace: GitWorkspace, failure: Failure) -> str:
    """The attempt's change as ``recovery show`` prints it, cut at
    :data:`DIFF_LINES`."""
    assert failure.baseline is not None and failure.quarantine_ref is not None
    title = f"the attempt's change ({failure.quarantine_ref}):"
    try:
        commit = workspace.kept.commit(failure.quarantine_ref)
        if commit is None:
            return f"{title} its ref is gone\n"
        raw = workspace.kept.diff(
            failure.baseline, commit, failure.changed_files, binary=False
        )
    except RecoveryError as exc:
        return f"(the attempt's diff cannot be shown: {exc})\n"
    lines = raw.decode("utf-8", "replace").splitlines()
    if len(lines) > DIFF_LINES:
        left = len(lines) - DIFF_LINES
        lines = [*lines[:DIFF_LINES], f"... ({left} more lines)"]
    return "\n".join([title, *lines, ""]) if lines else f"{title} none\n"
