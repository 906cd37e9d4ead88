"""``recovery prune``: retiring the git refs of finished runs.

Which runs: the finished ones (completed or aborted; never a running or
halted one, which still needs its baselines and quarantines) that
``--keep N`` and ``--older-than AGE`` both allow. What: every ref under
``refs/recovery/<run>/`` in the run's workspace.

The order is crash-safe: ``RefsRetired`` (each ref with the object it points
at) is recorded first, then the refs are deleted, each only if it still
points there. A prune cut off between the two leaves refs that the run's
events say are retired: the next prune deletes them without recording
anything again. A run whose refs are all gone records nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from recovery_adapters.git.bundle import RunRefs
from recovery_adapters.git.command import WorkspaceError
from recovery_adapters.usage import UsageError
from recovery_core import RecoveryApp, RunView
from recovery_core.run import Run

__all__ = ["Retirement", "carry_out", "parse_age", "plan_prune"]

_AGE: Final = re.compile(r"(\d+)([smhdw])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """An age such as ``30d``, ``12h``, ``90m``, ``2w`` or ``45s`` (one
    number, one unit); :class:`UsageError` for anything else."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"--older-than {text!r}: give a number and a unit, one of s, m, h, d, "
            "w (such as 30d, 12h, 90m or 2w)"
        )
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@attrs.frozen
class Retirement:
    """One finished run that prune retires the refs of: the refs recorded
    anew (``new``), those recorded before and still there (``pending``),
    and, once carried out, those deleted (``removed``). ``note`` says why
    nothing could be done (a workspace that is not there)."""

    view: RunView
    finished_at: datetime
    new: tuple[tuple[str, str], ...] = ()
    pending: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    note: str | None = None

    @property
    def refs(self) -> tuple[tuple[str, str], ...]:
        """Every ref to delete, recorded now or before."""
        return tuple(sorted((*self.pending, *self.new)))

    def as_json(self, *, dry_run: bool) -> dict[str, Any]:
        shown = self.refs if dry_run else self.removed
        return {
            "run_id": self.view.run_id,
            "state": self.view.state,
            "plan_id": self.view.plan_id,
            "workspace": self.view.workspace,
            "finished_at": self.finished_at.isoformat(),
            "refs": [{"ref": ref, "target": target} for ref, target in shown],
            "recorded": bool(self.new) and not dry_run,
            "note": self.note,
        }


def _finished(app: RecoveryApp) -> dict[str, datetime]:
    """When each finished run of the store ended, by run id."""
    topics = [Run.RunCompleted.TOPIC, Run.RunAborted.TOPIC]
    return {str(e.originator_id): e.timestamp for e in app.notifications(topics)}


def plan_prune(
    app: RecoveryApp,
    *,
    keep: int | None,
    older_than: timedelta | None,
    now: datetime,
) -> list[Retirement]:
    """The finished runs that ``keep`` (the most recently finished ones
    kept) and ``older_than`` (finished before ``now`` less it) both allow to
    prune, newest first, each with the refs to delete; writes nothing."""
    ended = sorted(_finished(app).items(), key=lambda item: item[1], reverse=True)
    if keep is not None:
        ended = ended[keep:]
    if older_than is not None:
        ended = [(run, at) for run, at in ended if at < now - older_than]
    planned = []
    for run_id, finished_at in ended:
        view = app.view(run_id)
        if view.state not in ("completed", "aborted"):  # never: defensive
            continue
        planned.append(_plan_one(view, finished_at))
    return planned


def _plan_one(view: RunView, finished_at: datetime) -> Retirement:
    try:
        present = RunRefs(view.workspace).refs(view.run_id)
    except WorkspaceError as exc:
        return Retirement(
            view, finished_at, note=f"skipped: its workspace cannot be read ({exc})"
        )
    retired = set(view.retired_refs)
    pending = tuple(r for r in present if r in retired)
    new = tuple(r for r in present if r not in retired)
    note = None if present else "no refs left"
    return Retirement(view, finished_at, new=new, pending=pending, note=note)


def _retire(
    refs: list[dict[str, str]], operator: str, reason: str
) -> Callable[[Run], None]:
    def command(run: Run) -> None:
        run.retire_refs(refs, operator=operator, reason=reason)

    return command


def carry_out(
    app: RecoveryApp, planned: Sequence[Retirement], *, operator: str, reason: str
) -> list[Retirement]:
    """Records ``RefsRetired`` for each run's new refs, then deletes every
    ref to delete (each only where it still points at the recorded object);
    returns what was done."""
    done = []
    for retirement in planned:
        if not retirement.refs:
            done.append(retirement)
            continue
        run_id = retirement.view.run_id
        if retirement.new:
            new = [{"ref": ref, "target": target} for ref, target in retirement.new]
            app.check_chain(run_id)
            app.update(run_id, _retire(new, operator, reason))
        run_refs = RunRefs(retirement.view.workspace)
        removed = tuple(r for r in retirement.refs if run_refs.retire(*r))
        note = retirement.note
        if len(removed) < len(retirement.refs):
            left = [ref for ref, _ in retirement.refs if (ref, _) not in removed]
            note = "not removed (moved or gone meanwhile): " + ", ".join(left)
        done.append(attrs.evolve(retirement, removed=removed, note=note))
    return done
