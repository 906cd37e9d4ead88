"""``recovery show`` and ``recovery restore``: a failed attempt's quarantined
change, shown as a diff or brought back into the working tree.

Where the change is comes from the run's events (the attempt's baseline, and
``ChangesQuarantined``: its ref and files); the git part is the workspace's
(:meth:`~recovery_adapters.git.kept.KeptChanges.diff`,
:meth:`~recovery_adapters.git.kept.KeptChanges.bring_back`). Neither command
records anything: the run stays as it was.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import attrs

from recovery_adapters.cli.output import print_json
from recovery_adapters.cli.wiring import UsageError
from recovery_adapters.git import GitWorkspace, WorkspaceError
from recovery_adapters.stores import find_store, store_to_name
from recovery_adapters.words import recovery_command
from recovery_core import RecoveryApp, RunView
from recovery_core.rules import batch_of
from recovery_core.run import Run

__all__ = ["KeptChange", "add_arguments", "cmd_restore", "cmd_show", "kept_change"]


@attrs.frozen
class KeptChange:
    """Where one failed attempt's change is kept: its quarantine ref, the
    snapshot it started from, and the paths it changed."""

    run_id: str
    batch_id: str
    attempt: int
    quarantine_ref: str
    baseline: str
    files: tuple[str, ...]
    workspace: str

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "batch_id": self.batch_id,
            "attempt": self.attempt,
            "quarantine_ref": self.quarantine_ref,
            "baseline": self.baseline,
            "files": list(self.files),
        }


def kept_change(
    app: RecoveryApp, view: RunView, batch_id: str, attempt: int | None
) -> KeptChange:
    """The kept change of ``attempt`` of the batch (default: its latest failed
    attempt); :class:`UsageError` (exit 2) when that attempt did not fail or
    its change was not quarantined."""
    batch_of(view, batch_id)  # UnknownBatch, naming the batches there are
    started: dict[int, str | None] = {}
    failed: dict[int, str | None] = {}
    kept: dict[int, Run.ChangesQuarantined] = {}
    for event in app.events_of(view.run_id):
        if getattr(event, "batch_id", None) != batch_id:
            continue
        if isinstance(event, Run.BatchStarted):
            started[event.attempt] = event.baseline
        elif isinstance(event, Run.StepFailed):
            failed[event.attempt] = event.record.baseline
        elif isinstance(event, Run.ChangesQuarantined):
            kept[event.attempt] = event
    where = f"batch {batch_id} of run {view.run_id}"
    if attempt is None:
        if not failed:
            raise UsageError(f"{where} has no failed attempt ({_attempts(started)})")
        attempt = max(failed)
    elif attempt not in started:
        raise UsageError(f"{where} has no attempt {attempt} ({_attempts(started)})")
    elif attempt not in failed:
        raise UsageError(
            f"attempt {attempt} of {where} did not fail: it has no quarantined change"
        )
    quarantined = kept.get(attempt)
    baseline = failed[attempt] or started.get(attempt)
    if quarantined is None or baseline is None:
        raise UsageError(
            f"attempt {attempt} of {where} failed, but its change was not "
            "quarantined (a strategy such as noop leaves it in the working tree)"
        )
    return KeptChange(
        run_id=view.run_id,
        batch_id=batch_id,
        attempt=attempt,
        quarantine_ref=quarantined.quarantine_ref,
        baseline=baseline,
        files=tuple(quarantined.files),
        workspace=view.workspace,
    )


def _attempts(started: dict[int, str | None]) -> str:
    if not started:
        return "it has not started"
    return f"its attempts are {', '.join(map(str, sorted(started)))}"


def _kept_commit(workspace: GitWorkspace, kept: KeptChange) -> str:
    """The quarantine's commit; :class:`WorkspaceError` naming the ref when it
    is gone from the repository."""
    commit = workspace.kept.commit(kept.quarantine_ref)
    if commit is None:
        raise WorkspaceError(
            f"the quarantine ref {kept.quarantine_ref} is gone from the repository "
            f"at {workspace.root} (deleted, or pruned): the change of attempt "
            f"{kept.attempt} of batch {kept.batch_id} cannot be read"
        )
    return commit


def _find(args: argparse.Namespace) -> tuple[RecoveryApp, RunView, KeptChange]:
    app = find_store(Path.cwd(), args.store)
    view = app.view(app.resolve(args.run))
    return app, view, kept_change(app, view, args.batch, args.attempt)


# -- the commands --------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    """``recovery show RUN BATCH [--attempt N]``: the quarantined diff."""
    _, _, kept = _find(args)
    with GitWorkspace(kept.workspace, tracker=False) as workspace:
        commit = _kept_commit(workspace, kept)
        binary = bool(args.json)
        diff = workspace.kept.diff(kept.baseline, commit, kept.files, binary=binary)
    if args.json:
        print_json({**kept.as_json(), "diff": diff.decode("utf-8", "replace")})
        return 0
    head = (
        f"run {kept.run_id} batch {kept.batch_id} attempt {kept.attempt}: "
        f"quarantined under {kept.quarantine_ref} (baseline {kept.baseline[:12]})\n"
    )
    if not diff:
        head += "the attempt changed no file\n"
    sys.stdout.write(head)
    sys.stdout.flush()
    sys.stdout.buffer.write(diff)
    sys.stdout.buffer.flush()
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """``recovery restore RUN BATCH [--attempt N]``: the quarantined change
    back in the working tree, as ``git apply`` would bring it."""
    app, view, kept = _find(args)
    holder = {
        "run": kept.run_id,
        "plan": view.plan_id,
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
    }
    with GitWorkspace(kept.workspace, tracker=False) as workspace:
        commit = _kept_commit(workspace, kept)
        # Held, so that no runner starts in the workspace meanwhile; a runner
        # holding it (working, or waiting for a decision) refuses this (exit 5).
        with workspace.locked(holder):
            files = workspace.kept.bring_back(kept.baseline, commit, kept.files)
    hints = _next_steps(app, view, kept.batch_id)
    if args.json:
        print_json({**kept.as_json(), "restored": list(files), "run_state": view.state})
        return 0
    if files:
        sys.stdout.write(
            f"brought back the change of batch {kept.batch_id} attempt {kept.attempt} "
            f"into {kept.workspace} ({len(files)} file(s), not staged):\n"
            + "".join(f"  {path}\n" for path in files)
        )
    elif kept.files:
        sys.stdout.write(
            f"nothing to bring back: the change of batch {kept.batch_id} attempt "
            f"{kept.attempt} is in the working tree already\n"
        )
    else:
        sys.stdout.write(
            f"nothing to bring back: attempt {kept.attempt} changed no file\n"
        )
    sys.stdout.write("".join(f"{line}\n" for line in hints))
    return 0


def _next_steps(app: RecoveryApp, view: RunView, batch_id: str) -> list[str]:
    """What to do next, as the run stands (restore records nothing), with the
    ``recovery`` command as the user types it here."""
    hint = store_to_name(app.store_hint(view.workspace), view.workspace)
    store = f" --store {shlex.quote(hint)}" if hint else ""
    command = recovery_command()
    open_now = view.open_decision
    if open_now is None or open_now.batch_id != batch_id:
        return [f"run {view.run_id} is {view.state}; nothing was recorded"]
    if open_now.recorded is not None:
        return [
            f"the run stays halted at batch {batch_id} (nothing was recorded); "
            f"{open_now.recorded.decision} is decided already, carried out by: "
            f"{command} resume{store} {view.run_id}"
        ]
    decide = f"{command} decide{store} {view.run_id} {batch_id}"
    return [
        f"the run stays halted at batch {batch_id} (nothing was recorded). "
        "Edit the change as needed, then either:",
        f"  {decide} retry   # its actions and steps run again, on the files as "
        "they are now",
        f"  {decide} skip    # the run goes on without it; the change stays in the "
        "working tree, yours to commit",
    ]


def add_arguments(sub: argparse.ArgumentParser) -> None:
    """The arguments ``show`` and ``restore`` share."""
    sub.add_argument("run", help="run id, unique prefix (6+ characters) or 'latest'")
    sub.add_argument("batch", help="the failed batch's id")
    sub.add_argument(
        "--attempt",
        type=int,
        metavar="N",
        help="which failed attempt (default: the batch's latest failed attempt)",
    )
