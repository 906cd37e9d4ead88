"""What the command line shows people: progress lines and tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from recovery_adapters.words import next_commands, recovery_command
from recovery_core import BatchEnd, BatchStart, Hooks, RunView, StepResult, StepStart

__all__ = ["ProgressPrinter", "clip", "format_table", "status_text"]


class ProgressPrinter:
    """Prints which batch, which step and how long, as a run goes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def hooks(self) -> Hooks:
        """The printer as runner hooks."""
        return Hooks(
            on_batch_start=self.batch_started,
            on_step_start=self.step_started,
            on_step_result=self.step_finished,
            on_batch_end=self.batch_finished,
            on_note=self.note,
        )

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def batch_started(self, event: BatchStart) -> None:
        """Announces an attempt."""
        about = f": {event.description}" if event.description else ""
        self._write(
            f"[batch {event.index}/{event.total}] {event.batch_id} "
            f"attempt {event.attempt}{about}"
        )

    def step_started(self, event: StepStart) -> None:
        """Says which step is running, so a long one is not a silent one."""
        self._write(f"  ...  {event.phase}.{event.step}")

    def step_finished(self, event: StepResult) -> None:
        """One line per step: passed or failed, and how long it took."""
        outcome = event.outcome
        mark = "ok  " if outcome.passed else "FAIL"
        line = f"  {mark} {event.phase}.{event.step} ({outcome.duration_s:.2f}s)"
        if not outcome.passed and outcome.error:
            line += f": {outcome.error.splitlines()[0]}"
        self._write(line)

    def batch_finished(self, event: BatchEnd) -> None:
        """The attempt's end."""
        self._write(f"  -> {event.batch_id} {event.status} in {event.duration_s:.2f}s")

    def note(self, message: str) -> None:
        """Anything else worth saying."""
        self._write(f"  note: {message}")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table with aligned columns."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def clip(text: str, width: int = 70) -> str:
    """The first line of ``text`` in at most ``width`` characters; a value cut
    (to fit, or to its first line) ends in an ellipsis."""
    lines = text.strip().splitlines() or [""]
    first, cut = lines[0].rstrip(), len(lines) > 1
    if len(first) > width or (cut and len(first) >= width):
        return first[: width - 1] + "…"
    return first + "…" if cut else first


def status_text(view: RunView, store: str | None = None) -> str:
    """``recovery status`` for people (``store``: the ``--store`` its commands
    name, when they would not find it themselves)."""
    lines = [
        f"run {view.run_id}",
        f"  plan {view.plan_id}   state {view.state}   events {view.version}",
        f"  workspace {view.workspace}",
        f"  store {view.store}",
        "",
    ]
    rows = [
        [
            b.batch_id,
            b.status,
            "yes" if b.verified else "no",
            str(b.attempts),
            (b.commit or "")[:10],
            clip(b.failure_reason or ""),
        ]
        for b in view.batches
    ]
    lines.append(
        format_table(
            ["BATCH", "STATUS", "VERIFIED", "ATTEMPTS", "COMMIT", "FAILURE"], rows
        )
    )
    open_now = view.open_decision
    if open_now is not None:
        failure = view.failure
        commands = next_commands(
            view.run_id, open_now, store, command=recovery_command()
        )
        lines.append("")
        if failure is not None:
            lines.append(
                f"batch {open_now.batch_id} attempt {open_now.attempt} failed at "
                f"{failure.step_id} in {failure.component or '(unknown component)'}:"
            )
            lines.append(f"  {clip(failure.error, 100)}")
        decision = open_now.recorded
        if decision is not None:
            lines.append(
                f"decided: {decision.decision} by {decision.who}"
                + (f" ({decision.reason})" if decision.reason else "")
            )
            lines.append(f"  {commands.resume}")
        else:
            lines.append("awaiting a decision:")
            lines.extend(f"  {c}" for c in commands.all)
    elif view.state == "aborted":
        lines.append("")
        lines.append(f"aborted: {view.abort_reason}")
    return "\n".join(lines)


def print_json(value: Any) -> None:
    """``value`` as indented JSON on standard output (what ``--json`` prints)."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
