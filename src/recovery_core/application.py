"""RecoveryApp: the event-sourced application: commands and queries on runs.

Every command loads the run, calls one of its methods (which checks the rules),
and saves the new events in one transaction. When someone else saved first, the
save fails on the run's version and becomes a :class:`ConflictError` (exit 5);
nothing of ours was written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from uuid import UUID

import attrs
from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError as RecordConflict
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    Recording,
    StoredEvent,
    Transcoding,
)
from eventsourcing.utils import Environment, TopicError, resolve_topic

from recovery_core.chain import GENESIS_DIGEST, Unreadable, verify_chain
from recovery_core.errors import (
    ConflictError,
    IllegalTransition,
    IntegrityError,
    UnknownRun,
)
from recovery_core.hooks import Hooks
from recovery_core.lease import HEARTBEAT_S, STALE_AFTER_S, RunnerLease, lease_id
from recovery_core.plan import ExecutionPlan, parse_plan
from recovery_core.ports import (
    Notifier,
    Projection,
    RecoveryStrategy,
    RunnerHost,
    StepRunner,
    Workspace,
)
from recovery_core.projections import (
    FAILURE_LOG_TOPICS,
    FailureLogEntry,
    failure_log_entries,
)
from recovery_core.records import DecisionView, RunView, view_data, view_of
from recovery_core.run import Run, StoredRecord, new_runner_id
from recovery_core.store import (
    CIPHER_KEY_ENV,
    READS_COMPRESSED,
    STORE_ENV,
    StoreSpec,
    cipher_settings,
    default_store_url,
    parse_store_url,
)
from recovery_core.timeline import TimelineEntry, state_at, timeline

if TYPE_CHECKING:
    from recovery_core.runner import Runner

__all__ = ["RecoveryApp", "RunSummary"]

T = TypeVar("T")

#: Events between two snapshots of a run.
SNAPSHOT_INTERVAL: Final = 100

#: The shortest run id prefix accepted, as git accepts abbreviated hashes.
MIN_PREFIX = 6

#: How many more times a command is tried when another writer saved to the run
#: between its read and its save (an operator's decision while a runner records
#: its claim or a notification; a runner's claim while a decision is recorded).
WRITE_RETRIES: Final = 3


@attrs.frozen
class RunSummary:
    """One run in the store, as listed."""

    run_id: str
    plan_id: str
    plan_digest: str
    workspace: str
    started_at: str
    position: int


class RecoveryApp(Application[UUID]):
    """The application: opens a store and records runs in it."""

    name = "Recovery"

    def __init__(self, store: StoreSpec, *, cipher_key: str | None = None) -> None:
        """The application on ``store``; with ``cipher_key`` (16, 24 or 32
        bytes in base64), every event it writes is encrypted with AES-GCM
        (needs the ``crypto`` extra), and every event it reads must be: see
        :func:`~recovery_core.store.cipher_settings`."""
        self.store = store
        cipher = {} if cipher_key is None else cipher_settings(cipher_key)
        # Runs are read many times per batch; a cache that fast-forwards from
        # the store on each read spares replaying every event each time, and
        # still sees what other processes saved. Events are read compressed
        # or not, whatever the URL says of writing them.
        super().__init__(
            env={
                "AGGREGATE_CACHE_MAXSIZE": "256",
                "COMPRESSOR_TOPIC": READS_COMPRESSED,
                **store.settings,
                **cipher,
            }
        )

    def construct_mapper(self) -> Mapper[UUID]:
        """eventsourcing's mapper, whose events that cannot be decrypted or
        decoded are an :class:`IntegrityError` (exit code 6) saying why."""
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=_Mapper
        )

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """Saves the events, then snapshots each run whose new events reached a
        multiple of :data:`SNAPSHOT_INTERVAL`: a run of 100,000 events is then
        read from its latest snapshot. The run just saved is snapshotted as it
        is in hand (eventsourcing's ``snapshotting_intervals`` would replay it
        from the store first, which cost 0.18x of a save per event, measured
        with benchmarks/bench_transition.py)."""
        recordings = super().save(*objs, **kwargs)
        reached = {
            r.domain_event.originator_id
            for r in recordings
            if r.domain_event.originator_version % SNAPSHOT_INTERVAL == 0
        }
        runs = [o for o in objs if isinstance(o, Run) and o.id in reached]
        if runs and self.snapshots is not None:
            self.snapshots.put([Run.Snapshot.take(run) for run in runs])
        return recordings

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """eventsourcing's transcodings, and the run's state (in snapshots)."""
        super().register_transcodings(transcoder)
        transcoder.register(_RunViewAsData())

    def construct_env(self, name: str, env: Any = None) -> Environment:
        """The eventsourcing settings: those of the store URL, and snapshots on
        (taken in :meth:`save`; reading a run starts from its latest one)."""
        # The store URL is the one source of settings: variables such as
        # PERSISTENCE_MODULE in the process environment must not redirect it.
        return Environment(name, {"IS_SNAPSHOTTING_ENABLED": "y", **(env or {})})

    @classmethod
    def open(
        cls, url: str, *, create: bool = True, cipher_key: str | None = None
    ) -> RecoveryApp:
        """Opens the store at ``url`` (see :mod:`recovery_core.store`); a SQLite
        store's folder must exist (``recovery_adapters.stores.open_store`` makes
        it, and finds a workspace's store).

        With ``create`` false, a SQLite store that does not exist yet is refused
        with :class:`UnknownRun` instead of being made. ``cipher_key``: the
        key of an encrypted store (see :meth:`__init__`).
        """
        spec = parse_store_url(url)
        if not create and spec.path is not None and not spec.path.is_file():
            raise UnknownRun(f"no store at {spec.path}: no run has been recorded there")
        return cls(spec, cipher_key=cipher_key)

    @staticmethod
    def store_url(workspace: str | os.PathLike[str], store: str | None = None) -> str:
        """The URL of the store for runs in ``workspace``: ``store`` if given, else
        ``RECOVERY_STORE``, else ``<workspace>/.recovery/events.sqlite3``. Checked,
        not opened: a bad URL raises :class:`StoreURLError` with nothing made."""
        url = store or os.environ.get(STORE_ENV) or default_store_url(workspace)
        parse_store_url(url)
        return url

    def store_hint(self, workspace: str | os.PathLike[str]) -> str | None:
        """The ``--store`` to print in commands for runs in ``workspace``: None when
        this is the workspace's default store, which commands find by themselves."""
        if self.store.url == default_store_url(workspace):
            return None
        return self.store.display

    # -- commands -----------------------------------------------------------

    def start_run(
        self,
        plan: ExecutionPlan,
        *,
        workspace: str | os.PathLike[str],
        runner_id: str | None = None,
        host: str = "",
    ) -> UUID:
        """Records a new run of ``plan`` in ``workspace`` (by the runner
        ``runner_id`` on ``host``); returns its id."""
        source = Path(plan.source)
        run = Run.start(
            plan=plan.raw,
            plan_path=str(source.resolve()) if source.is_file() else None,
            plan_id=plan.plan_id,
            plan_digest=plan.digest,
            workspace=str(Path(workspace).resolve()),
            store=self.store.display,
            host=host,
            runner_id=runner_id or new_runner_id(),
        )
        self.save(run)
        return run.id

    def get_run(self, run_id: UUID | str) -> Run:
        """The run, rebuilt from its events. ``run_id`` is a UUID or its text."""
        run_id = as_run_id(run_id)
        try:
            run: Run = self.repository.get(run_id)
        except Exception as exc:
            if type(exc).__name__ == "AggregateNotFoundError":
                raise UnknownRun(f"no run {run_id} in {self.store.display}") from None
            raise
        return run

    def update(
        self,
        run_id: UUID | str,
        command: Callable[[Run], T],
        *,
        retries: int = WRITE_RETRIES,
    ) -> T:
        """Runs ``command`` on the current run and saves what it triggered.

        A rule it breaks raises before anything is saved. A save that lost the
        race with another writer is tried again, ``retries`` more times, with
        ``command`` run on the run as the other writer left it (its rules
        checked afresh each time, so that what the other writer recorded can
        refuse it); after that it raises :class:`ConflictError`, with nothing
        of it recorded. ``command`` must not keep the run it is given: return
        values from it instead.
        """
        while True:
            run = self.get_run(run_id)  # a copy of the cached run, fast-forwarded
            result = command(run)
            if not run.pending_events:
                return result
            try:
                self.save(run)
            except RecordConflict:
                if retries:
                    retries -= 1
                    continue
                raise ConflictError(
                    f"run {run.id} changed while this command ran (another runner or "
                    "operator wrote first); nothing of this command was recorded"
                ) from None
            return result

    def decide(
        self,
        run_id: UUID | str,
        batch_id: str,
        decision: str,
        *,
        operator: str,
        reason: str = "",
        attempt: int | None = None,
        plan: ExecutionPlan | None = None,
    ) -> RunView:
        """Records an operator's decision (on a run whose events verify, see
        :meth:`check_chain`); returns the run's state after it. With ``plan``
        (a ``retry`` only), the run follows that amended plan from now on: only
        its batches not yet verified or skipped may differ (``PlanAmended``
        records what changed); its file, when it was loaded from one, becomes
        the run's plan file."""
        self.check_chain(run_id)
        path = None
        if plan is not None and Path(plan.source).is_file():
            path = str(Path(plan.source).resolve())

        def command(run: Run) -> RunView:
            run.decide(
                batch_id,
                decision,
                operator=operator,
                reason=reason,
                attempt=attempt,
                plan=plan,
                plan_path=path,
            )
            return run.view()

        return self.update(run_id, command)

    # -- queries ------------------------------------------------------------

    def view(self, run_id: UUID | str) -> RunView:
        """The run's state as plain values."""
        return self.get_run(run_id).view()

    def last_seen(self, run_id: UUID | str, runner_id: str) -> float | None:
        """When the runner ``runner_id`` last recorded a heartbeat on the run
        (seconds since the epoch; see :mod:`recovery_core.lease`), or None."""
        lease = lease_id(as_run_id(run_id), runner_id)
        for stored in self.recorder.select_events(lease, desc=True, limit=1):
            event = self.mapper.to_domain_event(stored)
            assert isinstance(event, RunnerLease.Event)
            return event.timestamp.timestamp()
        return None

    def recorded_plan(self, run_id: UUID | str) -> ExecutionPlan:
        """The plan as the run recorded it when it started; its ``source`` is the
        path of the plan file it was loaded from, when that was a file."""
        run = self.get_run(run_id)
        return parse_plan(run.plan, source=run.plan_path or "<recorded plan>")

    def history(self, run_id: UUID | str) -> list[Run.Event]:
        """The run's events, in order."""
        return list(self.events_of(run_id))

    def timeline(self, run_id: UUID | str) -> list[TimelineEntry]:
        """The run's events as a timeline (see :mod:`recovery_core.timeline`)."""
        return timeline(self.events_of(run_id))

    def view_at(
        self,
        run_id: UUID | str,
        *,
        position: int | None = None,
        time: datetime | None = None,
    ) -> RunView:
        """The run's state as of ``position`` (after its event of that
        version; 1 is ``RunStarted``) or ``time`` (after every event recorded
        at or before it; a time without a zone is UTC), computed from its
        events alone. Exactly one of them is given; a point the history does
        not reach raises :class:`~recovery_core.errors.UnknownPoint` (exit
        code 2)."""
        self.get_run(run_id)  # UnknownRun, as the other queries raise it
        events: Iterator[Run.Event] = self.repository.event_store.get(  # type: ignore[assignment]
            as_run_id(run_id), lte=position if position and position > 0 else None
        )
        return state_at(events, position=position, time=time)

    def events_of(self, run_id: UUID | str) -> Iterator[Run.Event]:
        """The run's events, in order, read lazily."""
        yield from self.repository.event_store.get(as_run_id(run_id))  # type: ignore[misc]

    def stored_records(
        self, run_id: UUID | str, *, after: int = 0
    ) -> list[StoredRecord]:
        """The run's events as stored (those after version ``after``), decoded
        but not upcast: what :func:`~recovery_core.run.verify_chain` checks a
        history of any age by. One that cannot be decoded raises
        :class:`IntegrityError`."""
        records = []
        for found in self.read_stored(run_id, after=after):
            if isinstance(found, Unreadable):
                raise IntegrityError(found.error)
            records.append(found)
        return records

    def read_stored(
        self, run_id: UUID | str, *, after: int = 0
    ) -> Iterator[StoredRecord | Unreadable]:
        """Each stored event of the run (after version ``after``) as its
        record, or what cannot be decoded and why (``recovery verify``
        reports each one and goes on)."""
        for record, _event in self.read_history(run_id, after=after, events=False):
            yield record

    def read_history(
        self, run_id: UUID | str, *, after: int = 0, events: bool = True
    ) -> Iterator[tuple[StoredRecord | Unreadable, Run.Event | None]]:
        """Each stored event of the run (after version ``after``), decoded
        once: as stored (its record) and, with ``events``, as the domain event
        it is now (upcast; None when it cannot be decoded or its topic is no
        event's). The chain check before every command needs no events."""
        mapper = self.mapper
        selected = self.recorder.select_events(as_run_id(run_id), gt=after or None)
        for stored in selected:
            data = stored.state
            try:
                if mapper.cipher:
                    data = mapper.cipher.decrypt(data)
                if mapper.compressor:
                    data = mapper.compressor.decompress(data)
                state = mapper.transcoder.decode(data)
                state["originator_id"] = stored.originator_id
                state["originator_version"] = stored.originator_version
                record = StoredRecord.of_state(stored.topic, state)
            except Exception as exc:  # what the store holds is not an event
                error = str(unreadable(mapper, stored, exc))
                yield Unreadable(stored.originator_version, stored.topic, error), None
                continue
            event = None
            if events:
                try:
                    event = _domain_event(stored.topic, state)
                except Exception:  # an upcaster that cannot make sense of it
                    event = None
            yield record, event

    def check_chain(self, run_id: UUID | str) -> str:
        """Checks the hash chain of the run's events since its latest snapshot
        (the cost of what reading the run costs) before they are acted on;
        returns the head digest. Raises :class:`IntegrityError` (exit code 6)
        naming the first event that does not hold; ``recovery verify`` checks
        the whole history."""
        run_id = as_run_id(run_id)
        prev, version = GENESIS_DIGEST, 0
        if self.snapshots is not None:
            for snapshot in self.snapshots.get(run_id, desc=True, limit=1):
                assert isinstance(snapshot, Run.Snapshot)
                taken = snapshot.state["state_view"]
                prev, version = taken.head_digest, snapshot.originator_version
        try:
            return verify_chain(
                self.stored_records(run_id, after=version), prev=prev, version=version
            )
        except IntegrityError as exc:
            raise IntegrityError(
                f"run {run_id} in {self.store.display} does not verify: {exc}; "
                "nothing was done (see `recovery verify`)"
            ) from None

    def notifications(
        self, topics: Sequence[str] = (), page: int = 500
    ) -> Iterator[Run.Event]:
        """Every event of the given topics (all when empty), in the store's order."""
        start: int | None = None
        while True:
            batch = self.recorder.select_notifications(
                start=start, limit=page, topics=topics, inclusive_of_start=start is None
            )
            for notification in batch:
                yield self.mapper.to_domain_event(notification)  # type: ignore[misc]
            if len(batch) < page:
                return
            start = batch[-1].id

    def runs(self) -> list[RunSummary]:
        """Every run in the store, oldest first."""
        start: int | None = None
        found: list[RunSummary] = []
        while True:
            batch = self.recorder.select_notifications(
                start=start,
                limit=500,
                topics=[Run.Started.TOPIC],
                inclusive_of_start=start is None,
            )
            for notification in batch:
                event: Run.Started = self.mapper.to_domain_event(notification)  # type: ignore[assignment]
                found.append(
                    RunSummary(
                        run_id=str(event.originator_id),
                        plan_id=event.plan_id,
                        plan_digest=event.plan_digest,
                        workspace=event.workspace,
                        started_at=event.timestamp.isoformat(),
                        position=notification.id,
                    )
                )
            if len(batch) < 500:
                return found
            start = batch[-1].id

    def has_runs(self) -> bool:
        """Whether any run was ever started in the store (one look at the store,
        where :meth:`runs` reads every run's start)."""
        return bool(
            self.recorder.select_notifications(
                start=None, limit=1, topics=[Run.Started.TOPIC]
            )
        )

    def resolve(self, ref: str) -> UUID:
        """The run named by ``ref``: its id, a unique prefix of at least 6
        characters, or ``latest`` (the run most recently started)."""
        runs = self.runs()
        if ref == "latest":
            if not runs:
                raise UnknownRun(f"no run in {self.store.display} yet")
            return UUID(runs[-1].run_id)
        wanted = ref.lower()
        try:
            exact = UUID(wanted)
        except ValueError:
            exact = None
        if exact is not None:
            if any(r.run_id == str(exact) for r in runs):
                return exact
            raise UnknownRun(f"no run {ref} in {self.store.display}")
        if len(wanted) < MIN_PREFIX:
            raise UnknownRun(
                f"run {ref!r}: give the id, 'latest', or a prefix of at least "
                f"{MIN_PREFIX} characters"
            )
        matches = [r for r in runs if r.run_id.startswith(wanted)]
        if not matches:
            raise UnknownRun(f"no run {ref!r} in {self.store.display}")
        if len(matches) > 1:
            raise UnknownRun(
                f"run prefix {ref!r} is ambiguous: "
                + ", ".join(m.run_id for m in matches[:5])
            )
        return UUID(matches[0].run_id)

    def failure_log(
        self,
        *,
        run_id: UUID | str | None = None,
        workspace: str | os.PathLike[str] | None = None,
    ) -> list[FailureLogEntry]:
        """The failure log's entries from the events: of one run, of the runs in
        one workspace, or of the whole store."""
        where = None if workspace is None else str(Path(workspace).resolve())
        entries = failure_log_entries(
            self.notifications(FAILURE_LOG_TOPICS), workspace=where
        )
        if run_id is not None:
            wanted = str(as_run_id(run_id))
            entries = [e for e in entries if e.run_id == wanted]
        return entries

    def wait_for_decision(
        self,
        run_id: UUID | str,
        *,
        timeout_s: float | None = None,
        poll_s: float = 0.5,
        sleep: Callable[[float], None] | None = None,
    ) -> DecisionView | None:
        """Waits until the failure awaiting a decision gets one (recorded from any
        process that reaches the store); returns it, or None at the timeout.

        Returns at once when a decision is already recorded and not yet carried
        out; a run that ends meanwhile (an abort) returns its abort decision.
        Between looks at the store it waits with ``sleep`` (by default the
        runner host's, :func:`recovery_core.runtime.default_host`).
        """
        if sleep is None:
            from recovery_core.runtime import default_host

            sleep = default_host().sleep
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            view = self.view(run_id)
            decision = view.decision
            if decision is not None and (
                not decision.carried_out or view.state == "aborted"
            ):
                return decision
            if view.state == "completed":
                return None
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            sleep(poll_s if left is None else min(poll_s, left))

    def runner(
        self,
        plan: ExecutionPlan,
        *,
        workspace: Workspace,
        strategy: RecoveryStrategy | None = None,
        notifiers: Sequence[Notifier] = (),
        hooks: Hooks | Sequence[Hooks] = (),
        step_runners: Mapping[str, StepRunner] | None = None,
        plan_path: str | os.PathLike[str] | None = None,
        run_id: UUID | str | None = None,
        projections: Sequence[Projection] | None = None,
        host: RunnerHost | None = None,
        stale_after_s: float | None = None,
        heartbeat_s: float | None = None,
    ) -> Runner:
        """A runner for ``plan`` in ``workspace``.

        The step runners default to every registered step kind (the built-in
        ones come from :mod:`recovery_adapters` through entry points), the
        strategy to the workspace's default (``manual-git`` for a git
        workspace), else ``noop``. The projections default to the plan file
        (``plan_path``, else the file the plan was loaded from) and the
        workspace's failure log; the host to this machine
        (:mod:`recovery_core.runtime`). With ``run_id``, it drives that run;
        otherwise the unfinished run of this plan in this workspace, or a new one.
        ``stale_after_s``: how old another host's runner's heartbeat may be
        before its claim is taken over (:data:`~recovery_core.lease.STALE_AFTER_S`),
        ``heartbeat_s`` how often this runner records its own
        (:data:`~recovery_core.lease.HEARTBEAT_S`).
        """
        from recovery_core.runner import Runner
        from recovery_core.runtime import default_host, default_projections
        from recovery_core.steps import step_runners as registered_steps
        from recovery_core.strategies import default_strategy

        if plan_path is None and Path(plan.source).is_file():
            plan_path = plan.source
        if projections is None:
            projections = default_projections(workspace.root, plan_path)
        return Runner(
            self,
            plan,
            workspace=workspace,
            step_runners=registered_steps() if step_runners is None else step_runners,
            strategy=strategy if strategy is not None else default_strategy(workspace),
            notifiers=notifiers,
            hooks=hooks,
            plan_path=plan_path,
            run_id=None if run_id is None else as_run_id(run_id),
            projections=projections,
            host=host if host is not None else default_host(),
            stale_after_s=STALE_AFTER_S if stale_after_s is None else stale_after_s,
            heartbeat_s=HEARTBEAT_S if heartbeat_s is None else heartbeat_s,
        )

    def unfinished_run(
        self, plan: ExecutionPlan, workspace: str | os.PathLike[str]
    ) -> UUID | None:
        """The most recent run of this plan (by plan id) in this workspace that has
        neither completed nor aborted.

        A run whose plan has since changed (other than its status keys) is refused:
        its recorded plan is what it runs, and mixing the two would lie.
        """
        where = str(Path(workspace).resolve())
        for summary in reversed(self.runs()):
            if summary.plan_id != plan.plan_id or summary.workspace != where:
                continue
            run_id = UUID(summary.run_id)
            state = self.view(run_id).state
            if state in ("completed", "aborted"):
                return None
            if self.view(run_id).plan_digest != plan.digest:  # as amended, if so
                raise IllegalTransition(
                    f"plan {plan.plan_id} changed since run {summary.run_id} started "
                    f"(it is {state}); finish it with `recovery decide "
                    f"{summary.run_id} <batch> abort` before running the new plan"
                )
            return run_id
        return None


def _domain_event(topic: str, state: dict[str, Any]) -> Run.Event | None:
    """The domain event of a decoded stored state, as eventsourcing's mapper
    makes it (upcast to the current class version), or None for a topic that
    names no run event. The state's top level becomes the event's own (the
    upcasters change only that): a record made from it before stays as
    stored."""
    try:
        cls = resolve_topic(topic)
    except TopicError:
        return None
    if not (isinstance(cls, type) and issubclass(cls, Run.Event)):
        return None
    state = dict(state)
    class_version = getattr(cls, "class_version", 1)
    from_version = state.pop("class_version", 1)
    while from_version < class_version:
        getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
        from_version += 1
    event = object.__new__(cls)
    object.__setattr__(event, "__dict__", state)
    return event


class _Mapper(Mapper[UUID]):
    """eventsourcing's mapper; a stored event it cannot decrypt or decode is
    an :class:`IntegrityError` that says what may be wrong."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        try:
            return super().to_domain_event(stored_event)
        except MapperDeserialisationError as exc:
            raise unreadable(self, stored_event, exc.__cause__ or exc) from None


def unreadable(
    mapper: Mapper[UUID], stored: StoredEvent, exc: BaseException
) -> IntegrityError:
    """The error for a stored event that cannot be read as one: with a cipher
    key, most likely another key (or none) wrote it; without one, an
    encrypted store; else the stored bytes were changed."""
    name = stored.topic.removeprefix("recovery:")
    where = (
        f"event {stored.originator_version} ({name}) of {stored.originator_id} "
        f"cannot be read ({type(exc).__name__}: {exc})"
    )
    if mapper.cipher is not None:
        why = (
            "it was not written with this cipher key: another key, or no "
            f"encryption, wrote it ({CIPHER_KEY_ENV} on the command line), or "
            "it was changed"
        )
    else:
        why = (
            "the store may be encrypted: give the key it was written with "
            f"({CIPHER_KEY_ENV} on the command line); else it was changed"
        )
    return IntegrityError(f"{where}: {why}; nothing was done")


class _RunViewAsData(Transcoding):
    """The run's state in a snapshot, as its data."""

    type = RunView
    name = "recovery_run_view"

    def encode(self, obj: RunView) -> dict[str, Any]:
        return view_data(obj)

    def decode(self, data: dict[str, Any]) -> RunView:
        return view_of(data)


def as_run_id(run_id: UUID | str) -> UUID:
    """A run id from a UUID or its text; bad text is :class:`UnknownRun`."""
    if isinstance(run_id, UUID):
        return run_id
    try:
        return UUID(run_id)
    except ValueError:
        raise UnknownRun(f"{run_id!r} is not a run id") from None
