"""What ``recovery verify`` checks of a run from the store alone: every stored
event's version, topic, link and digest (all of them, not only the first that
fails), the head against one an auditor expects, each snapshot against the
events it stands for, and the projections as the events give them (the plan
file's status keys, the failure log's lines), for an adapter to compare with
what is on disk. The checks of git (commit trailers, quarantine refs) are the
adapters'; they get from here, for each commit and ref, what the events say.

A removed tail (the latest events deleted, nothing after them) leaves a chain
that holds: only ``expect_head``, a head digest the auditor kept from before,
finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import attrs

from recovery_core.chain import GENESIS_DIGEST, StoredRecord, Unreadable
from recovery_core.errors import UnknownRun
from recovery_core.records import RunView, apply, view_data
from recovery_core.run import Run

if TYPE_CHECKING:
    from recovery_core.application import RecoveryApp

__all__ = [
    "CommitClaim",
    "Finding",
    "KeptRef",
    "RunAudit",
    "audit_run",
    "chain_findings",
    "recorded_runs",
    "resolve_recorded",
    "run_topics",
]

#: The topic every run's history starts with.
_FIRST: Final = Run.Started.TOPIC


def run_topics() -> frozenset[str]:
    """The topics of every event a run may hold."""
    found: set[str] = set()
    stack: list[type] = [Run.Event]
    while stack:
        cls = stack.pop()
        topic = cls.__dict__.get("TOPIC")
        if isinstance(topic, str):
            found.add(topic)
        stack.extend(cls.__subclasses__())
    return frozenset(found)


@attrs.frozen
class Finding:
    """One thing that does not hold: which check, where (an event, a file, a
    ref, a commit) and what differs."""

    check: str
    where: str
    message: str

    def text(self) -> str:
        return f"{self.where}: {self.message}"

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "where": self.where, "message": self.message}


def _name(topic: str) -> str:
    return topic.removeprefix("recovery:")


def chain_findings(
    records: Sequence[StoredRecord | Unreadable], *, expect_head: str | None = None
) -> tuple[str, list[Finding]]:
    """Checks a run's whole stored history in order; returns its head digest
    (the last stored event's) and every finding: an event that cannot be
    read, a version out of sequence (an event removed, inserted or moved), an
    unknown topic, a link that does not hold, a digest that does not match the
    content. After a finding the check goes on from the stored values, so that
    one edit is reported where it is and not again at every later event."""
    findings: list[Finding] = []
    topics = run_topics()
    prev: str | None = GENESIS_DIGEST
    expected = 1
    if not records:
        return GENESIS_DIGEST, [Finding("chain", "history", "the run has no events")]
    run_ids = {r.originator_id for r in records if isinstance(r, StoredRecord)}
    for record in records:
        if isinstance(record, Unreadable):
            where = f"event {record.version} ({_name(record.topic)})"
            findings.append(Finding("chain", where, record.error))
            prev, expected = None, record.version + 1
            continue
        version = record.originator_version
        problems: list[str] = []
        if version != expected:
            problems.append(
                f"expected version {expected}: an event was removed, inserted "
                "or moved here"
            )
        if record.topic not in topics:
            problems.append(f"unknown topic {record.topic!r}")
        if (version == 1) != (record.topic == _FIRST):
            problems.append(
                f"a run's history starts with {_name(_FIRST)}, and only its first"
            )
        if len(run_ids) > 1:
            problems.append(f"the history holds events of {len(run_ids)} runs")
        if prev is not None and record.prev_digest != prev:
            problems.append(
                f"does not link to the event before it (it names "
                f"{record.prev_digest[:16]}..., the event before is "
                f"{prev[:16]}...)"
            )
        if _digest(record) != record.digest:
            problems.append("its content does not match its digest: it was changed")
        if problems:
            where = f"event {version} ({_name(record.topic)})"
            findings += [Finding("chain", where, problem) for problem in problems]
        prev, expected = record.digest, version + 1
    head = prev or ""
    if expect_head is not None and expect_head != head:
        readable = [r for r in records if isinstance(r, StoredRecord)]
        findings.append(_head_finding(readable, expect_head, head))
    return head, findings


def _digest(record: StoredRecord) -> str | None:
    """The digest of the record's content (None when it cannot be hashed: a
    field of the wrong type)."""
    try:
        return record.content_digest()
    except (AttributeError, TypeError, ValueError):
        return None


def _head_finding(records: Sequence[StoredRecord], expected: str, head: str) -> Finding:
    at = next((r for r in records if r.digest == expected), None)
    if at is None:
        message = (
            f"the head is {head}, not the expected {expected}, which no event of "
            "the run has: events were removed from the end, or changed"
        )
    else:
        after = records[-1].originator_version - at.originator_version
        message = (
            f"the head is {head}, not the expected {expected}: that is event "
            f"{at.originator_version}'s digest, and {after} event(s) follow it"
        )
    return Finding("head", "history", message)


@attrs.frozen
class KeptRef:
    """A ref the run's events say holds something: a baseline snapshot (its
    commit) or a quarantine (its tree)."""

    ref: str
    kind: str  # "baseline" (commit) or "quarantine" (tree)
    expected: str
    event: str  # the event that says so


@attrs.frozen
class CommitClaim:
    """A commit the run made (``BatchCommitted``), and the digests its
    ``Recovery-Chain`` trailer may name: those of the attempt's
    ``BatchVerified`` and the events after it, up to the commit's event."""

    commit: str
    batch_id: str
    event: str
    chain: tuple[str, ...]


@attrs.frozen
class RunAudit:
    """What the store says of one run, checked."""

    run_id: str
    events: int
    head: str
    findings: tuple[Finding, ...]
    #: The state the events give (None when they cannot be replayed).
    view: RunView | None
    refs: tuple[KeptRef, ...] = ()
    commits: tuple[CommitClaim, ...] = ()
    #: Digest -> position, of every event: what a ``Recovery-Chain`` trailer
    #: of a commit of this run can name.
    digests: dict[str, int] = attrs.field(factory=dict)


def audit_run(
    app: RecoveryApp, run_id: UUID, *, expect_head: str | None = None
) -> RunAudit:
    """Checks the run's stored history, replays it, and checks each snapshot
    against the replay; the replayed state, the refs and commits the events
    name are returned for the adapters' checks."""
    snapshots = _read_snapshots(app, run_id)
    taken_at = (
        {s.originator_version for s in snapshots}
        if isinstance(snapshots, list)
        else set()
    )
    replay = _Replay(taken_at)
    # Each event is replayed as it is read, and only its record is kept (and
    # the state at each snapshot's version): a long run's events and states
    # are not all held at once.
    records: list[StoredRecord | Unreadable] = []
    for record, event in app.read_history(run_id):
        records.append(record)
        replay.step(record, event)
    head, findings = chain_findings(records, expect_head=expect_head)
    if replay.error is not None:
        findings.append(Finding("replay", "history", replay.error))
    elif replay.view is not None:
        findings += _snapshot_findings(snapshots, replay.views)
    return RunAudit(
        run_id=str(run_id),
        events=len(records),
        head=head,
        findings=tuple(findings),
        view=replay.view,
        refs=tuple(replay.refs),
        commits=tuple(replay.commits),
        digests={
            r.digest: r.originator_version
            for r in records
            if isinstance(r, StoredRecord)
        },
    )


@attrs.define
class _Replay:
    """The run's state, replayed one stored event at a time, and what the
    events say is in git. The first event that cannot be replayed stops it
    (``error`` says why; ``view`` is None then)."""

    #: The versions whose state is kept in ``views`` (the snapshots').
    keep: set[int]
    view: RunView | None = None
    views: dict[int, RunView] = attrs.field(factory=dict)
    refs: list[KeptRef] = attrs.field(factory=list)
    commits: list[CommitClaim] = attrs.field(factory=list)
    verified: dict[tuple[str, int], int] = attrs.field(factory=dict)
    chain: list[str] = attrs.field(factory=list)
    error: str | None = None

    def step(self, record: StoredRecord | Unreadable, event: Any) -> None:
        if self.error is not None:
            return
        try:
            if event is None:
                version = (
                    record.version
                    if isinstance(record, Unreadable)
                    else record.originator_version
                )
                raise ValueError(f"event {version} is no event of a run")
            view = self.view = apply(self.view, event)
            if event.originator_version in self.keep:
                self.views[event.originator_version] = view
            self.chain.append(event.digest)
            self._collect(event, view)
        except Exception as exc:  # tampered events may not replay at all
            self.error = f"cannot be replayed: {type(exc).__name__}: {exc}"
            self.view = None

    def _collect(self, event: Any, view: RunView) -> None:
        """Notes what ``event`` says is in git."""
        chain = self.chain
        if isinstance(event, Run.BatchStarted) and event.baseline:
            prefix = _refs_of(view.run_id, event.batch_id, event.attempt)
            ref = f"{prefix}/baseline"
            kept = KeptRef(ref, "baseline", event.baseline, _where(event))
            self.refs.append(kept)
        elif isinstance(event, Run.ChangesQuarantined):
            ref = event.quarantine_ref
            kept = KeptRef(ref, "quarantine", event.tree_id, _where(event))
            self.refs.append(kept)
        elif isinstance(event, Run.BatchVerified):
            self.verified[(event.batch_id, event.attempt)] = len(chain) - 1
        elif isinstance(event, Run.BatchCommitted):
            start = self.verified.get((event.batch_id, event.attempt), len(chain) - 1)
            window = tuple(chain[start:-1])
            claim = CommitClaim(event.commit, event.batch_id, _where(event), window)
            self.commits.append(claim)


def _where(event: Any) -> str:
    """How a finding names the event."""
    return f"event {event.originator_version} ({_name(event.TOPIC)})"


def _refs_of(run_id: str, batch_id: str, attempt: int) -> str:
    return f"refs/recovery/{run_id}/{batch_id}/{attempt}"


def _read_snapshots(app: RecoveryApp, run_id: UUID) -> list[Any] | Finding:
    """The run's stored snapshots, or the finding that they cannot be read."""
    store = app.snapshots
    if store is None:
        return []
    try:
        return list(store.get(run_id))
    except Exception as exc:
        where = "snapshots"
        message = f"cannot be read: {type(exc).__name__}: {exc}"
        return Finding("snapshot", where, message)


def _snapshot_findings(
    snapshots: list[Any] | Finding, views: dict[int, RunView]
) -> list[Finding]:
    """Each stored snapshot of the run against the state its events give at
    its version (a reader of a long run starts from the latest one)."""
    if isinstance(snapshots, Finding):
        return [snapshots]
    findings: list[Finding] = []
    for snapshot in snapshots:
        version = snapshot.originator_version
        where = f"snapshot at event {version}"
        taken = (
            snapshot.state.get("state_view")
            if isinstance(snapshot, Run.Snapshot)
            else None
        )
        replayed = views.get(version)
        if replayed is None:
            findings.append(Finding("snapshot", where, "no event has its version"))
        elif not isinstance(taken, RunView) or view_data(taken) != view_data(replayed):
            findings.append(
                Finding(
                    "snapshot",
                    where,
                    "differs from the state its events give: "
                    + _first_difference(taken, replayed),
                )
            )
    return findings


def _first_difference(taken: object, replayed: RunView) -> str:
    if not isinstance(taken, RunView):
        return "it holds no run state"
    left, right = view_data(taken), view_data(replayed)
    for key in sorted(set(left) | set(right)):
        if left.get(key) != right.get(key):
            return f"{key} is {_short(left.get(key))}, the events give {_short(right.get(key))}"
    return "?"


def _short(value: object, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def recorded_runs(app: RecoveryApp, page: int = 1000) -> list[UUID]:
    """Every run that has an event in the store, in the order of its first
    stored event: also a run whose ``RunStarted`` was removed, which
    :meth:`~recovery_core.RecoveryApp.runs` does not list."""
    topics = sorted(run_topics())
    found: dict[UUID, None] = {}
    start: int | None = None
    while True:
        batch = app.recorder.select_notifications(
            start=start, limit=page, topics=topics, inclusive_of_start=start is None
        )
        for notification in batch:
            found.setdefault(UUID(str(notification.originator_id)), None)
        if len(batch) < page:
            return list(found)
        start = batch[-1].id


def resolve_recorded(app: RecoveryApp, ref: str) -> UUID:
    """The run ``ref`` names (as :meth:`~recovery_core.RecoveryApp.resolve`
    does), also when its ``RunStarted`` is gone from the store."""
    try:
        return app.resolve(ref)
    except UnknownRun:
        wanted = ref.lower()
        matches = [
            run_id
            for run_id in recorded_runs(app)
            if len(wanted) >= 6 and str(run_id).startswith(wanted)
        ]
        if len(matches) == 1:
            return matches[0]
        raise
