"""The ports: what the core asks of the outside world, as Protocols.

Adapters in ``recovery_adapters`` implement them (git, subprocesses, consoles,
webhooks); an integrator may implement any of them with a plain class, no base
class needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import attrs

from recovery_core.plan import Batch, Step
from recovery_core.projections import FailureLogEntry
from recovery_core.records import Failure, OpenDecision, RunView, failure_json

__all__ = [
    "CheckedPatch",
    "Committed",
    "FailureContext",
    "Notification",
    "Notifier",
    "Projection",
    "ProjectionUpdate",
    "Quarantine",
    "RecoveryOutcome",
    "RecoveryStrategy",
    "RunnerHost",
    "Sandbox",
    "StepContext",
    "StepOutcome",
    "StepRunner",
    "Workspace",
    "prevalidation_passed",
    "runs_no_workspace_code",
    "runs_workspace_code",
]


@attrs.frozen
class StepContext:
    """What a step runner knows of the attempt it validates.

    ``baseline`` is the workspace's snapshot (for git: a commit id) that the
    batch's changes are measured against, and ``changed_files`` the paths that
    differ from it (relative, posix), the plan file aside. ``workspace`` reads
    files as the baseline had them (:meth:`Workspace.read`)."""

    root: Path
    run_id: str
    batch: Batch
    attempt: int
    baseline: str | None
    changed_files: tuple[str, ...]
    phase: str
    workspace: Workspace | None = None


@attrs.frozen
class StepOutcome:
    """The result of one step or action.

    ``component`` names where a failure lies (a file, a module, ``file:line``);
    ``output_tail`` keeps the end of the step's output.
    """

    passed: bool
    duration_s: float
    error: str = ""
    component: str = ""
    traceback: str = ""
    output_tail: str = ""
    exit_code: int | None = None
    timed_out: bool = False


class StepRunner(Protocol):
    """Runs one step (or action) of a batch's attempt in the workspace."""

    def __call__(self, step: Step, context: StepContext) -> StepOutcome:
        """Runs ``step`` and reports how it went; never raises for a failing step."""
        ...


_Runner = TypeVar("_Runner")
#: The attribute :func:`runs_no_workspace_code` sets on a step runner.
_CONTAINED: Final = "recovery_runs_no_workspace_code"


def runs_no_workspace_code(runner: _Runner) -> _Runner:
    """Marks a step runner that runs none of the workspace's code when it
    passes: it starts no program of the workspace and imports none of its
    modules (the syntax step, which parses files in our own process). After
    the build's guard check, a batch whose validation steps are all such
    steps ran no code of its own since that check, so the check is not made
    again; a runner without the mark always gets one."""
    setattr(runner, _CONTAINED, True)
    return runner


def runs_workspace_code(runner: object) -> bool:
    """Whether ``runner`` may run the workspace's code (unless it is marked
    by :func:`runs_no_workspace_code`, it may)."""
    return getattr(runner, _CONTAINED, False) is not True


@attrs.frozen
class Quarantine:
    """Where a failed attempt's change was kept (recorded as
    ``ChangesQuarantined``): the ref, the files it changed, the faulty tree and
    the commit that holds it."""

    ref: str
    files: tuple[str, ...]
    tree_id: str
    commit: str = ""


@attrs.frozen
class Committed:
    """What became of a verified batch's change: its ``commit``, or None with a
    ``note`` saying why it was left uncommitted in the working tree."""

    commit: str | None
    note: str = ""


@runtime_checkable
class Workspace(Protocol):
    """The working tree a plan changes: everything a runner and a strategy ask
    of it, so that neither needs to know it is git."""

    @property
    def root(self) -> Path:
        """The workspace's top folder."""
        ...

    def ignore(self, path: Path) -> None:
        """Never counts changes to ``path`` as a batch's change (the library's own
        writes, such as the plan file's status keys)."""
        ...

    def locked(self, holder: Mapping[str, str]) -> AbstractContextManager[None]:
        """Holds the workspace for one runner in the block (``holder`` says who:
        ``run``, ``plan``, ``host``, ``pid``); raises a ConflictError naming the
        holder while another live runner holds it. Re-entrant for its holder."""
        ...

    def prepare(self, *, commits: bool = False) -> None:
        """Checks that a run may start here (``commits``: batches will be
        committed) and sets up what it needs (such as keeping ``.recovery/`` out
        of version control); raises a RecoveryError subclass with a clear message
        when it may not."""
        ...

    def check(self, baseline: str | None) -> tuple[str, ...]:
        """What the attempt since ``baseline`` changed that no batch may change
        (for git: HEAD, branches, settings, hooks), each put back; empty when
        nothing was."""
        ...

    def snapshot(self, *, run_id: str, batch_id: str, attempt: int) -> str | None:
        """Records the tree before an attempt; returns an id for it, or None when
        the workspace cannot snapshot."""
        ...

    def changed_files(self, baseline: str | None) -> tuple[str, ...]:
        """The paths (relative, posix) that differ from the snapshot ``baseline``."""
        ...

    def read(self, snapshot: str, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        """Each of ``paths`` as the snapshot (or the commit a quarantine kept)
        had it; None for a path that was no file there."""
        ...

    def quarantine(
        self, *, run_id: str, batch_id: str, attempt: int, baseline: str
    ) -> Quarantine:
        """Keeps the tree as the failed attempt left it, then puts back exactly
        the paths it changed since ``baseline``; the user's own work stays.
        Called again for the same attempt (the runner was killed before the
        quarantine was recorded), it keeps what the first call kept and finishes
        the restore."""
        ...

    def restore(self, baseline: str, files: Sequence[str]) -> None:
        """Puts ``files`` back as they were in the snapshot ``baseline``."""
        ...

    def commit(
        self,
        *,
        baseline: str | None,
        files: Sequence[str],
        message: str,
        trailers: Mapping[str, str],
    ) -> Committed:
        """Makes one commit of the batch's own change to ``files`` (since
        ``baseline``) on top of the current branch, the user's uncommitted edits
        left out; or says why it cannot. When the branch has a commit since
        ``baseline`` with the same run and batch trailers (made by a runner
        killed before it was recorded), that commit is returned and the index
        brought in step with it: a batch is committed once."""
        ...

    def sandbox(self) -> Sandbox | None:
        """Where a strategy tries a proposed fix out away from the user's tree;
        None when this workspace has no such place."""
        ...


@attrs.frozen
class CheckedPatch:
    """A patch that passed every check: the paths it touches and the tree
    (an id, as snapshots have) it makes of the faulty one."""

    paths: tuple[str, ...]
    tree: str


@runtime_checkable
class Sandbox(Protocol):
    """What a strategy that proposes fixes asks of the workspace
    (:meth:`Workspace.sandbox`): a fix checked against the faulty tree, kept,
    tried out in a copy outside the user's tree, and applied on a ``recover``
    decision. Its ids are those of the snapshots and quarantines; files are
    read through :meth:`Workspace.read`."""

    def diff(self, before: str, after: str, *, binary: bool = False) -> bytes:
        """The change from ``before`` to ``after`` as a unified diff (with
        ``binary``: one that :meth:`apply` takes, binary files too)."""
        ...

    def changed(self, before: str, after: str) -> tuple[str, ...]:
        """The paths that differ between ``before`` and ``after``, sorted."""
        ...

    def check_patch(self, tree: str, patch: bytes) -> CheckedPatch:
        """Checks ``patch`` against the faulty ``tree`` (or commit); raises
        :class:`~recovery_core.errors.PatchRefused` naming the failed check."""
        ...

    def proposal_ref(self, run_id: str, batch_id: str, attempt: int) -> str:
        """Where the proposal for this failed attempt is kept."""
        ...

    def keep(self, ref: str, tree: str, parent: str, message: str) -> str:
        """Keeps ``tree`` on ``parent`` under ``ref``; the kept commit's id."""
        ...

    def kept(self, ref: str) -> str | None:
        """What ``ref`` keeps; None when it is gone."""
        ...

    def worktree(
        self, commit: str, name: str = "sandbox"
    ) -> AbstractContextManager[Path]:
        """``commit`` checked out in a new folder outside the user's tree,
        removed after the block, whatever happens in it."""
        ...

    def worktrees(self) -> list[Path]:
        """Every checked-out folder of the repository (the workspace first)."""
        ...

    def apply(self, patch: bytes) -> None:
        """Applies ``patch`` (from :meth:`diff` with ``binary``) to the working
        tree only; nothing is written when it does not apply."""
        ...


@attrs.frozen
class FailureContext:
    """What a recovery strategy is told about a failure. ``baseline`` is the
    snapshot taken before the failed attempt; ``workspace`` the run's workspace."""

    run_id: str
    plan_id: str
    batch: Batch
    attempt: int
    failure: Failure
    root: Path
    baseline: str | None
    workspace: Workspace


def prevalidation_passed(prevalidation: str | None) -> bool:
    """Whether a proposal's recorded pre-validation result says it passed: the
    text, stripped of surrounding blanks, starts with ``passed`` (any case),
    as in ``"passed: 3 steps in a sandbox worktree"``. Anything else (None,
    ``"failed: ..."``, ``"skipped: ..."``, a free text) did not pass, and a
    batch's policy never recovers with such a proposal by itself."""
    return prevalidation is not None and (
        prevalidation.strip().lower().startswith("passed")
    )


@attrs.frozen
class RecoveryOutcome:
    """A strategy's answer to a failure. ``proposal`` says whether it proposes a
    fix that a ``recover`` decision would apply; ``quarantine`` where it kept the
    faulty change; ``hints`` are commands worth showing the operator.
    ``prevalidation`` is the result of trying the fix away from the user's
    tree, as text; it passed when it starts with ``passed``
    (:func:`prevalidation_passed`, :attr:`prevalidated`)."""

    analysis: str
    proposal: bool = False
    patch_digest: str | None = None
    prevalidation: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)
    quarantine: Quarantine | None = None
    hints: tuple[str, ...] = ()

    @property
    def prevalidated(self) -> bool:
        """Whether the proposal passed pre-validation
        (:func:`prevalidation_passed`)."""
        return self.proposal and prevalidation_passed(self.prevalidation)

    def as_event_data(self) -> dict[str, Any]:
        """The outcome as recorded in ``RecoveryAttempted``; ``details`` values
        that JSON cannot hold are recorded as their text."""
        details = json.loads(json.dumps(dict(self.details), default=str))
        return {
            "analysis": self.analysis,
            "proposal": self.proposal,
            "patch_digest": self.patch_digest,
            "prevalidation": self.prevalidation,
            "details": details,
            "hints": list(self.hints),
        }


@runtime_checkable
class RecoveryStrategy(Protocol):
    """Answers failures; registered by name (see :mod:`recovery_core.strategies`).

    A strategy that proposes fixes (``RecoveryOutcome.proposal``) also has
    ``recover(context: FailureContext) -> None``, which applies its proposal to
    the workspace when an operator decides ``recover``: the runner calls it as
    the next attempt's change (step ``build.recover``) and validates the result.
    A strategy without it fails that attempt, and the operator decides again."""

    @property
    def name(self) -> str:
        """The name the strategy is registered and recorded under."""
        ...

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        """Responds to a failure right after it is recorded."""
        ...


@attrs.frozen
class Notification:
    """What an operator is told when a run halts: the failure record, the
    decision open now (with the decisions that may be taken), the strategy's
    answer, and the ``--store`` that commands must name (None: the workspace's
    own store, found by itself). ``made_by_host``: the batch is made by the
    host application, which carries out a retry. ``view`` is the run's state at
    the halt and ``failure_log_entry`` the failure's line of the failure log
    (None where the one who built the notification had neither); the failure
    record's ``quarantine_ref`` says where the faulty change was kept.
    ``policy_note``: why the batch's policy left this failure to the operator
    (None when the batch has no policy that decides by itself).
    Notifiers make the words."""

    run_id: str
    plan_id: str
    workspace: str
    failure: Failure
    open: OpenDecision
    strategy: str
    analysis: str
    hints: tuple[str, ...] = ()
    store: str | None = None
    made_by_host: bool = False
    view: RunView | None = None
    failure_log_entry: FailureLogEntry | None = None
    policy_note: str | None = None

    @property
    def batch_id(self) -> str:
        return self.failure.batch_id

    @property
    def attempt(self) -> int:
        return self.failure.attempt

    @property
    def decisions(self) -> tuple[str, ...]:
        return self.open.choices

    def as_json(self) -> dict[str, Any]:
        """The notification's fields as JSON-ready data. The inbox, command and
        webhook notifiers send the versioned form instead
        (``recovery_adapters.notification_json``)."""
        data = attrs.asdict(self, recurse=True)
        data["failure"] = failure_json(self.failure)
        return data


@runtime_checkable
class Notifier(Protocol):
    """Delivers a notification on one channel; raises when delivery fails."""

    @property
    def channel(self) -> str:
        """The channel's name, as recorded in ``OperatorNotified``."""
        ...

    def notify(self, notification: Notification) -> None:
        """Delivers ``notification``; an exception means it was not delivered."""
        ...


@attrs.frozen
class ProjectionUpdate:
    """What a projection is given after the runner saved events: the run's
    state, and the workspace's failure log when it changed (None when not)."""

    view: RunView
    failure_log: tuple[FailureLogEntry, ...] | None = None


@runtime_checkable
class Projection(Protocol):
    """Keeps a projection of the events somewhere (the plan file and the
    failure log in files, or a host's own table or dashboard). The events are
    saved before it is called: one that raises is reported and can be rebuilt
    from the events later; it never stops the run."""

    @property
    def name(self) -> str:
        """What it keeps, for messages (``the plan file plan.json``)."""
        ...

    def project(self, update: ProjectionUpdate) -> None:
        """Brings the projection up to ``update``."""
        ...


@runtime_checkable
class RunnerHost(Protocol):
    """The machine a runner runs on: who the runner is, whether a runner that
    claimed a run is still alive, and how to wait.

    A host may also have ``end_processes(marks: Mapping[str, str]) ->
    Sequence[int]``: it ends the processes (with their groups) whose environment
    has every one of ``marks``, waits until they are gone, and returns their
    pids. A runner that finds an attempt a killed runner left (on this host)
    calls it with the attempt's ``RECOVERY_RUN_ID``, ``RECOVERY_BATCH_ID`` and
    ``RECOVERY_ATTEMPT`` before it restores the tree. ``LocalHost`` has it."""

    @property
    def host(self) -> str:
        """This machine's name."""
        ...

    @property
    def pid(self) -> int:
        """This runner's process id."""
        ...

    def alive(self, host: str, pid: int) -> bool:
        """Whether the runner ``pid`` on ``host`` may still be alive; False only
        when it is known to be gone."""
        ...

    def sleep(self, seconds: float) -> None:
        """Waits ``seconds``."""
        ...
