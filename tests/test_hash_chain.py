"""The hash chain of a run's events, against tampering with a real SQLite store.

A run with many kinds of events is recorded in a SQLite file; the stored rows are
then changed directly with the sqlite3 module (eventsourcing keeps one table,
``stored_events(originator_id, originator_version, topic, state)``, with the
event's fields as JSON in ``state``), and :func:`verify_chain` must refuse the
history read back from the file.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import attrs
import pytest

from recovery_core import IntegrityError, RecoveryApp, parse_plan, verify_chain
from recovery_core.records import Failure
from recovery_core.run import GENESIS_DIGEST, Run, event_digest, payload_of

#: Keys of a stored state that are not the event's payload.
NOT_PAYLOAD: Final = frozenset(
    {"timestamp", "prev_digest", "digest", "originator_topic"}
)

PLAN: Final[dict[str, Any]] = {
    "plan_id": "chain",
    "note": 'ünïcødé, "quotes", \\ backslash, emoji 🚀 and\nnewlines',
    "batches": [
        {
            "batch_id": "b1",
            "description": "first — with a dash",
            "validation": [
                {"name": "s1", "kind": "syntax"},
                {"name": "s2", "kind": "syntax"},
            ],
            "weights": [0.1, 1e-07, 123456.789, -0.0, 10**18],
        },
        {"batch_id": "b2", "validation": [{"name": "s1", "kind": "syntax"}]},
    ],
}


@attrs.frozen
class Recorded:
    """A run recorded in a SQLite file, and what the live aggregates computed."""

    url: str
    db: Path
    run_id: UUID
    head: str
    #: (version, digest) of every event, as the live aggregate computed them.
    live: tuple[tuple[int, str], ...]
    #: The live events themselves, as triggered (before any save).
    events: tuple[Run.Event, ...]


def record_run(url: str) -> tuple[RecoveryApp, UUID, list[Run.Event]]:
    """Records, at ``url``, a run with a failure, a decision, a retry, commits and
    completion; returns the open app, the run id and the live events."""
    app = RecoveryApp.open(url)
    plan = parse_plan(PLAN)
    run = Run.start(
        plan=plan.raw,
        plan_id=plan.plan_id,
        plan_digest=plan.digest,
        workspace="/work/space ünï",
        store=url,
        host="host-1",
        runner_id="r1",
    )
    live: list[Run.Event] = list(run.pending_events)  # type: ignore[arg-type]
    app.save(run)

    def do(command: Callable[[Run], object]) -> None:
        def wrapped(run: Run) -> None:
            command(run)
            live.extend(run.pending_events)  # type: ignore[arg-type]

        app.update(run.id, wrapped)

    do(lambda r: r.claim_runner(host="host-1", pid=4242, runner_id="r1"))
    do(lambda r: r.start_batch("b1", "baseline-1"))
    do(lambda r: r.step_passed("b1", 1, step="s1", phase="post", duration_s=0.25))
    do(lambda r: r.step_passed("b1", 1, step="s2", phase="post", duration_s=0.1 + 0.2))
    do(
        lambda r: r.step_failed(
            Failure(
                "b1",
                1,
                step="unit_tests",
                phase="post_build_validation",
                kind="command",
                component="app/agents/architect_agent.py",
                error="AssertionError: 5 != 6 — «boom»",
                traceback='Traceback (most recent call last):\n  File "x.py", line 1\n',
                output_tail="FAILED tests/test_calc.py::test_add\n\t✗ 1 failed\n",
                exit_code=1,
                duration_s=12.345678,
                changed_files=("app/calc.py", "app/ünï.py"),
            )
        )
    )
    do(lambda r: r.mark_failed("b1", 1, "post_build_validation.unit_tests failed"))
    do(
        lambda r: r.changes_quarantined(
            "b1",
            1,
            quarantine_ref="refs/recovery/x/b1/1/quarantine",
            files=("a",),
            tree_id="f" * 40,
        )
    )
    do(
        lambda r: r.recovery_attempted(
            "b1",
            1,
            strategy="architect-agent",
            strategy_package="recovery-core",
            strategy_version="0.1.0",
            outcome={
                "analysis": "line 2: wrong operator",
                "proposal": True,
                "patch_digest": "ab" * 32,
                "prevalidation": None,
                "details": {
                    "hunks": [1, 2.5, None, "x"],
                    "nested": {"k": [True, False]},
                },
            },
        )
    )
    do(
        lambda r: r.operator_notified(
            "b1", 1, channel="inbox", delivered=False, error="EPERM"
        )
    )
    do(lambda r: r.decide("b1", "retry", operator="alice", reason="flaky, try again"))
    do(lambda r: r.start_batch("b1", "baseline-2"))
    do(lambda r: r.step_passed("b1", 2, step="s1", phase="post", duration_s=1.0))
    do(lambda r: r.verify_batch("b1", 2))
    do(lambda r: r.batch_committed("b1", 2, "c" * 40))
    do(lambda r: r.start_batch("b2", None))
    do(lambda r: r.verify_batch("b2", 1))
    do(lambda r: r.release_runner("r1"))
    do(lambda r: r.complete())
    return app, run.id, live


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    """A completed run of 19 events in a SQLite file, its app closed."""
    db = tmp_path / "events.sqlite3"
    url = f"sqlite:///{db}"
    app, run_id, live = record_run(url)
    head = app.view(run_id).head_digest
    app.close()
    return Recorded(
        url=url,
        db=db,
        run_id=run_id,
        head=head,
        live=tuple((e.originator_version, e.digest) for e in live),
        events=tuple(live),
    )


# -- reading and changing the stored rows --------------------------------------


@contextmanager
def database(db: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the store file, committed and closed on exit."""
    with closing(sqlite3.connect(db)) as conn, conn:
        yield conn


def stored_rows(db: Path, run_id: UUID) -> list[tuple[int, str, bytes]]:
    """(version, topic, state) of the run's stored events, in order."""
    with database(db) as conn:
        rows = conn.execute(
            "SELECT originator_version, topic, state FROM stored_events "
            "WHERE originator_id = ? ORDER BY originator_version",
            (run_id.hex,),
        ).fetchall()
    return [(int(v), str(t), bytes(s)) for v, t, s in rows]


def version_of(rec: Recorded, topic: str, nth: int = 0) -> int:
    """The version of the ``nth`` stored event with ``topic``."""
    return [v for v, t, _ in stored_rows(rec.db, rec.run_id) if t == topic][nth]


def state_of(rec: Recorded, version: int) -> bytes:
    """The stored state of the event at ``version``."""
    return next(s for v, _, s in stored_rows(rec.db, rec.run_id) if v == version)


def write_state(
    rec: Recorded, version: int, state: bytes, topic: str | None = None
) -> None:
    """Overwrites the stored state (and topic) of the event at ``version``."""
    with database(rec.db) as conn:
        if topic is None:
            cursor = conn.execute(
                "UPDATE stored_events SET state = ? "
                "WHERE originator_id = ? AND originator_version = ?",
                (state, rec.run_id.hex, version),
            )
        else:
            cursor = conn.execute(
                "UPDATE stored_events SET state = ?, topic = ? "
                "WHERE originator_id = ? AND originator_version = ?",
                (state, topic, rec.run_id.hex, version),
            )
        assert cursor.rowcount == 1


def reseal(
    topic: str, run_id: UUID, version: int, state: dict[str, Any], prev: str
) -> bytes:
    """The stored state with ``prev`` as its link and a digest recomputed as the
    library computes it: what a forger who knows the scheme would write."""
    when = datetime.fromisoformat(state["timestamp"]["_data_"])
    payload = {k: v for k, v in state.items() if k not in NOT_PAYLOAD}
    sealed = {
        **state,
        "prev_digest": prev,
        "digest": event_digest(topic, run_id, version, when, payload, prev),
    }
    return json.dumps(sealed, separators=(",", ":"), ensure_ascii=False).encode()


def history(rec: Recorded) -> list[Run.Event]:
    """The run's events read back from the file by a fresh app."""
    app = RecoveryApp.open(rec.url, create=False)
    try:
        return app.history(rec.run_id)
    finally:
        app.close()


def refused(rec: Recorded, message: str) -> IntegrityError:
    """Checks that the stored history does not verify, with ``message``."""
    events = history(rec)
    with pytest.raises(IntegrityError) as info:
        verify_chain(events)
    assert info.value.exit_code == 6
    assert re.search(message, str(info.value)), str(info.value)
    return info.value


# -- an untampered history ------------------------------------------------------


def test_untampered_history_verifies_to_the_head_digest(recorded: Recorded) -> None:
    """The stored history, read by a fresh app, verifies; the head it returns is
    the run's head digest, the last event's digest and the live head; every event
    links to the one before it, the first to the genesis digest."""
    events = history(recorded)
    assert len(events) == 19
    assert [e.originator_version for e in events] == list(range(1, 20))
    head = verify_chain(events)
    assert head == recorded.head
    assert head == events[-1].digest
    assert head == recorded.live[-1][1]
    assert events[0].prev_digest == GENESIS_DIGEST
    for before, after in itertools.pairwise(events):
        assert after.prev_digest == before.digest
    assert len({e.digest for e in events}) == len(events)
    app = RecoveryApp.open(recorded.url, create=False)
    assert app.view(recorded.run_id).head_digest == head
    assert app.view(recorded.run_id).state == "completed"
    app.close()


def test_empty_history_verifies_to_the_genesis_digest() -> None:
    """A history with no events verifies to the genesis digest (nothing to check),
    so a run that lost every event is found by its expected head instead."""
    assert verify_chain([]) == GENESIS_DIGEST


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_digests_are_stable_across_a_store_round_trip(
    tmp_path: Path, kind: str
) -> None:
    """Each digest computed live, before the save, equals the stored digest and the
    digest recomputed from the event read back (unicode, floats, nested outcomes,
    tuples that come back as lists); the payloads read back equal the live ones."""
    url = f"sqlite:///{tmp_path}/events.sqlite3" if kind == "sqlite" else "memory://"
    app, run_id, live = record_run(url)
    if kind == "sqlite":
        app.close()
        app = RecoveryApp.open(url, create=False)
    stored = app.history(run_id)
    assert len(stored) == len(live) == 19
    for before, after in zip(live, stored, strict=True):
        assert type(after) is type(before)
        assert after.originator_version == before.originator_version
        assert after.timestamp == before.timestamp
        assert payload_of(after) == payload_of(before)
        assert after.digest == before.digest
        recomputed = event_digest(
            type(after).TOPIC,
            after.originator_id,
            after.originator_version,
            after.timestamp,
            payload_of(after),
            after.prev_digest,
        )
        assert recomputed == before.digest
    assert verify_chain(stored) == verify_chain(live) == live[-1].digest
    app.close()


# -- a changed byte -----------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "nth", "old", "new", "message"),
    [
        (
            "recovery:StepFailed",
            0,
            b'"exit_code":1',
            b'"exit_code":0',
            "content does not match",
        ),
        (
            "recovery:StepPassed",
            0,
            b'"duration_s":0.25',
            b'"duration_s":0.35',
            "content does not match",
        ),
        (
            "recovery:OperatorDecided",
            0,
            b'"operator":"alice"',
            b'"operator":"alicf"',
            "content does not match",
        ),
        (
            "recovery:OperatorDecided",
            0,
            b'"decision":"retry"',
            b'"decision":"retrY"',
            "content does not match",
        ),
        (
            "recovery:RecoveryAttempted",
            0,
            b'"patch_digest":"ab',
            b'"patch_digest":"bb',
            "content does not match",
        ),
        (
            "recovery:RunStarted",
            0,
            b'"plan_id":"chain","plan_digest"',
            b'"plan_id":"chaim","plan_digest"',
            "content does not match",
        ),
        (
            "recovery:BatchCommitted",
            0,
            b'"attempt":2',
            b'"attempt":1',
            "content does not match",
        ),
    ],
    ids=[
        "exit-code",
        "duration",
        "operator",
        "decision",
        "patch-digest",
        "plan-id",
        "attempt",
    ],
)
def test_a_changed_payload_byte_is_found(
    recorded: Recorded, topic: str, nth: int, old: bytes, new: bytes, message: str
) -> None:
    """Changing one byte of a payload value in the stored state makes
    verify_chain raise IntegrityError naming that event; an ordinary read still
    succeeds, so only verification finds the change."""
    version = version_of(recorded, topic, nth)
    state = state_of(recorded, version)
    assert state.count(old) == 1
    tampered = state.replace(old, new)
    if len(old) == len(new):
        assert sum(a != b for a, b in zip(state, tampered, strict=True)) == 1
    write_state(recorded, version, tampered)
    refused(recorded, rf"^event {version} \(\w+\): {message}")
    assert len(history(recorded)) == 19


def test_a_changed_decision_reads_back_silently_but_does_not_verify(
    recorded: Recorded,
) -> None:
    """The operator of the stored decision, changed by one byte, is what a normal
    read shows; verify_chain refuses the history."""
    version = version_of(recorded, "recovery:OperatorDecided")
    state = state_of(recorded, version)
    write_state(
        recorded, version, state.replace(b'"operator":"alice"', b'"operator":"alicf"')
    )
    decided = [e for e in history(recorded) if isinstance(e, Run.OperatorDecided)]
    assert [e.operator for e in decided] == ["alicf"]
    refused(recorded, rf"event {version} \(OperatorDecided\): content does not match")


def test_a_changed_timestamp_is_found(recorded: Recorded) -> None:
    """The time of an event is part of its digest: one changed digit is found."""
    version = version_of(recorded, "recovery:BatchVerified")
    state = state_of(recorded, version)
    found = re.search(rb'"_data_":"[^"]*?(\d)\+00:00"', state)
    assert found is not None
    digit = found.group(1)
    tampered = (
        state[: found.start(1)]
        + (b"1" if digit != b"1" else b"2")
        + state[found.end(1) :]
    )
    write_state(recorded, version, tampered)
    refused(recorded, rf"^event {version} \(BatchVerified\): content does not match")


@pytest.mark.parametrize("field", ["digest", "prev_digest"])
def test_a_changed_link_is_found(recorded: Recorded, field: str) -> None:
    """One hex digit changed in a stored digest or link is found: a changed digest
    no longer matches the content, a changed link no longer links."""
    version = version_of(recorded, "recovery:StepPassed", 1)
    state = json.loads(state_of(recorded, version))
    value: str = state[field]
    state[field] = ("1" if value[0] != "1" else "2") + value[1:]
    write_state(recorded, version, json.dumps(state).encode())
    message = "content does not match" if field == "digest" else "does not link"
    refused(recorded, rf"^event {version} \(StepPassed\): {message}")


def test_a_change_resealed_by_a_forger_is_found_by_the_next_link(
    recorded: Recorded,
) -> None:
    """A forger who changes an event and recomputes its digest makes an event that
    checks on its own, but the event after it no longer links to it."""
    version = version_of(recorded, "recovery:OperatorDecided")
    state = json.loads(state_of(recorded, version))
    state["decision"] = "skip"
    events = history(recorded)
    forged = reseal(
        "recovery:OperatorDecided",
        recorded.run_id,
        version,
        state,
        events[version - 2].digest,
    )
    write_state(recorded, version, forged)
    tampered = history(recorded)
    decided = tampered[version - 1]
    assert isinstance(decided, Run.OperatorDecided)
    assert decided.decision == "skip"
    # The forged event and all before it check on their own...
    assert verify_chain(tampered[:version]) == tampered[version - 1].digest
    # ...but the chain breaks at the event after it.
    refused(recorded, rf"^event {version + 1} \(\w+\): does not link")


def test_a_resealed_last_event_changes_the_head(recorded: Recorded) -> None:
    """Resealing the last event leaves a chain that links, but its head is no
    longer the recorded head: comparing with an expected head finds it."""
    version = 19
    state = json.loads(state_of(recorded, version))
    state["summary"]["skipped"] = 1
    events = history(recorded)
    write_state(
        recorded,
        version,
        reseal(
            "recovery:RunCompleted", recorded.run_id, version, state, events[-2].digest
        ),
    )
    head = verify_chain(history(recorded))
    assert head != recorded.head


# -- removal, reordering, insertion ---------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 10, 18])
def test_a_deleted_event_is_found(recorded: Recorded, version: int) -> None:
    """Deleting any stored event but the last leaves a gap in the versions that
    verify_chain reports as a missing event."""
    with database(recorded.db) as conn:
        cursor = conn.execute(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = ?",
            (recorded.run_id.hex, version),
        )
        assert cursor.rowcount == 1
    assert len(history(recorded)) == 18
    refused(
        recorded,
        rf"^event {version + 1} \(\w+\): expected version {version}: an event is missing",
    )


def test_a_deleted_last_event_changes_the_head(recorded: Recorded) -> None:
    """Deleting the last event leaves a chain that verifies to an older head, not
    the recorded one: comparing with an expected head finds the truncation."""
    with database(recorded.db) as conn:
        conn.execute(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = 19",
            (recorded.run_id.hex,),
        )
    head = verify_chain(history(recorded))
    assert head != recorded.head
    assert head == recorded.live[17][1]


def _swap(rec: Recorded, a: int, b: int) -> None:
    rows = {v: (t, s) for v, t, s in stored_rows(rec.db, rec.run_id)}
    write_state(rec, a, rows[b][1], topic=rows[b][0])
    write_state(rec, b, rows[a][1], topic=rows[a][0])


def test_two_swapped_events_of_one_kind_are_found(recorded: Recorded) -> None:
    """Swapping the content of two adjacent StepPassed events of one attempt (same
    kind, same shape) is found: the first no longer links."""
    first = version_of(recorded, "recovery:StepPassed", 0)
    second = version_of(recorded, "recovery:StepPassed", 1)
    assert second == first + 1
    _swap(recorded, first, second)
    assert [e.step for e in history(recorded) if isinstance(e, Run.StepPassed)][:2] == [
        "s2",
        "s1",
    ]
    refused(recorded, rf"^event {first} \(StepPassed\): does not link")


@pytest.mark.parametrize(("a", "b"), [(2, 3), (5, 12), (1, 19)])
def test_two_swapped_events_are_found(recorded: Recorded, a: int, b: int) -> None:
    """Swapping the content (topic and state) of any two stored events is found at
    the first of them."""
    _swap(recorded, a, b)
    refused(recorded, rf"^event {a} \(\w+\): does not link")


def test_a_changed_topic_is_found(recorded: Recorded) -> None:
    """The event's topic is part of its digest: a BatchVerified whose stored topic
    is changed to another kind of event does not verify."""
    version = version_of(recorded, "recovery:BatchVerified")
    write_state(
        recorded, version, state_of(recorded, version), topic="recovery:RunnerReleased"
    )
    refused(recorded, rf"^event {version} \(RunnerReleased\): content does not match")


def _insert(rec: Recorded, version: int, topic: str, state: bytes) -> None:
    """Inserts an event at ``version``, moving the later ones up by one."""
    with database(rec.db) as conn:
        conn.execute(
            "UPDATE stored_events SET originator_version = -originator_version "
            "WHERE originator_id = ? AND originator_version >= ?",
            (rec.run_id.hex, version),
        )
        conn.execute(
            "UPDATE stored_events SET originator_version = 1 - originator_version "
            "WHERE originator_id = ? AND originator_version < 0",
            (rec.run_id.hex,),
        )
        conn.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)",
            (rec.run_id.hex, version, topic, state),
        )


def _forged_step(rec: Recorded, version: int) -> bytes:
    """A StepPassed for step 'forged' at ``version``, sealed to link to the event
    now stored before it."""
    template = json.loads(state_of(rec, version_of(rec, "recovery:StepPassed")))
    template["step"] = "forged"
    prev = history(rec)[version - 2].digest
    return reseal("recovery:StepPassed", rec.run_id, version, template, prev)


@pytest.mark.parametrize("version", [2, 5, 19])
def test_a_forged_event_inserted_in_the_middle_is_found(
    recorded: Recorded, version: int
) -> None:
    """A forged event inserted before event ``version``, sealed with a correct link
    and digest, is found: the event after it no longer links."""
    _insert(recorded, version, "recovery:StepPassed", _forged_step(recorded, version))
    events = history(recorded)
    assert len(events) == 20
    forged = events[version - 1]
    assert isinstance(forged, Run.StepPassed)
    assert forged.step == "forged"
    refused(recorded, rf"^event {version + 1} \(\w+\): does not link")


def test_a_forged_event_appended_without_its_seal_is_found(recorded: Recorded) -> None:
    """An event appended after the last, with a copied state (its old link and
    digest), is found: it does not link to the last event."""
    state = state_of(recorded, version_of(recorded, "recovery:StepPassed"))
    _insert(recorded, 20, "recovery:StepPassed", state)
    refused(recorded, r"^event 20 \(StepPassed\): does not link")


def test_a_sealed_forged_event_appended_changes_the_head(recorded: Recorded) -> None:
    """An event appended after the last with a correct link and digest verifies,
    but the head moves past the recorded head: comparing with an expected head
    finds the insertion."""
    _insert(recorded, 20, "recovery:StepPassed", _forged_step(recorded, 20))
    head = verify_chain(history(recorded))
    assert head != recorded.head


def test_a_state_that_is_no_longer_json_fails_the_read(recorded: Recorded) -> None:
    """A stored state broken beyond JSON cannot be read at all: reading the history
    raises IntegrityError (exit code 6) naming the event, so the chain is
    never reported as valid."""
    version = version_of(recorded, "recovery:RecoveryAttempted")
    state = state_of(recorded, version)
    assert state.count(b'"proposal":true') == 1
    write_state(
        recorded, version, state.replace(b'"proposal":true', b'"proposal":fals')
    )
    with pytest.raises(IntegrityError) as info:
        history(recorded)
    assert f"event {version} (RecoveryAttempted)" in str(info.value)
    assert "JSONDecodeError" in str(info.value)


# -- a history written by version 0.1.0 ---------------------------------------


def as_version_1(state: dict[str, Any]) -> dict[str, Any]:
    """A StepFailed state as recovery-core 0.1.0 stored it: the record's fields
    at the top level, no baseline, no class_version."""
    old = {k: v for k, v in state.items() if k not in ("failure", "class_version")}
    record = dict(state["failure"])
    for late in ("batch_id", "attempt", "baseline", "failure_reason", "quarantine_ref"):
        record.pop(late)
    return {**old, **record}


def test_a_version_1_failure_reads_back_and_its_chain_verifies_as_stored(
    recorded: Recorded,
) -> None:
    """A history whose StepFailed was stored by 0.1.0 (flat fields, digests over
    that payload) reads back as the current failure record, and verifies
    through the records as stored; a field changed in the stored v1 payload is
    still found."""
    before = RecoveryApp.open(recorded.url, create=False)
    (failed,) = [
        e for e in before.history(recorded.run_id) if isinstance(e, Run.StepFailed)
    ]
    expected = failed.record
    before.close()
    prev = ""
    for version, topic, raw in stored_rows(recorded.db, recorded.run_id):
        state = json.loads(raw)
        if version < failed.originator_version:
            prev = state["digest"]
            continue
        if version == failed.originator_version:
            assert state["class_version"] == 2
            state = as_version_1(state)
        write_state(
            recorded, version, reseal(topic, recorded.run_id, version, state, prev)
        )
        prev = json.loads(state_of(recorded, version))["digest"]
    app = RecoveryApp.open(recorded.url, create=False)
    (upcast,) = [
        e for e in app.history(recorded.run_id) if isinstance(e, Run.StepFailed)
    ]
    assert upcast.record == attrs.evolve(expected, baseline=None)
    assert app.view(recorded.run_id).state == "completed"
    assert verify_chain(app.stored_records(recorded.run_id)) == prev
    with pytest.raises(IntegrityError, match="StepFailed"):
        verify_chain(app.history(recorded.run_id))  # upcast: not what was hashed
    app.close()
    stored = json.loads(state_of(recorded, failed.originator_version))
    write_state(
        recorded,
        failed.originator_version,
        json.dumps({**stored, "error": "forged"}).encode(),
    )
    app = RecoveryApp.open(recorded.url, create=False)
    with pytest.raises(IntegrityError, match="content does not match"):
        verify_chain(app.stored_records(recorded.run_id))
    app.close()


def test_a_version_1_recovery_attempt_reads_back_without_its_package(
    recorded: Recorded,
) -> None:
    """A history whose RecoveryAttempted was stored before the strategy's
    package and version were recorded (version 1: no such fields, no
    class_version) reads back with both None, the run's state says so, and
    the chain verifies through the records as stored."""
    (attempted_at,) = [
        e.originator_version
        for e in recorded.events
        if isinstance(e, Run.RecoveryAttempted)
    ]
    prev = ""
    for version, topic, raw in stored_rows(recorded.db, recorded.run_id):
        state = json.loads(raw)
        if version < attempted_at:
            prev = state["digest"]
            continue
        if version == attempted_at:
            assert state["class_version"] == 2
            assert state["strategy_package"] == "recovery-core"
            assert state["strategy_version"] == "0.1.0"
            for late in ("class_version", "strategy_package", "strategy_version"):
                del state[late]
        write_state(
            recorded, version, reseal(topic, recorded.run_id, version, state, prev)
        )
        prev = json.loads(state_of(recorded, version))["digest"]
    app = RecoveryApp.open(recorded.url, create=False)
    (upcast,) = [
        e for e in app.history(recorded.run_id) if isinstance(e, Run.RecoveryAttempted)
    ]
    assert (upcast.strategy, upcast.strategy_package, upcast.strategy_version) == (
        "architect-agent",
        None,
        None,
    )
    assert upcast.outcome["analysis"] == "line 2: wrong operator"
    assert verify_chain(app.stored_records(recorded.run_id)) == prev
    assert app.view(recorded.run_id).state == "completed"
    app.close()
