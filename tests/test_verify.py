"""``recovery verify`` through the real command: a run that holds verifies
(exit 0); every edit, removal, reordering and insertion of stored events made
directly in the SQLite file is found (exit 6, naming the event), except the
removal of the tail, which only ``--expect-head`` finds; a changed snapshot, a
projection on disk that differs, a moved quarantine ref and a rewritten commit
trailer are found too."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from recovery_core import RecoveryApp
from recovery_core.run import Run
from support import GIT_IDENTITY, git, make_repo, run_cli, write_plan

# b2's action writes a syntax error until the marker file exists.
B2_ACTION = (
    "import pathlib; ok = pathlib.Path('../b2.ok').exists(); "
    "pathlib.Path('app/two.py').write_text('Y = 2\\n' if ok else 'Y = (\\n')"
)


def _plan() -> dict[str, Any]:
    def batch(batch_id: str, code: str) -> dict[str, Any]:
        return {
            "batch_id": batch_id,
            "commit_strategy": "commit",
            "actions": [{"name": "generate", "run": [sys.executable, "-c", code]}],
            "validation": [{"name": "syntax", "kind": "syntax"}],
        }

    one = "import pathlib; pathlib.Path('app/one.py').write_text('X = 1\\n')"
    three = "import pathlib; pathlib.Path('app/three.py').write_text('Z = 3\\n')"
    return {
        "plan_id": "audited",
        "batches": [batch("b1", one), batch("b2", B2_ACTION), batch("b3", three)],
    }


def _env(root: Path) -> dict[str, str]:
    return {
        **GIT_IDENTITY,
        "GIT_CONFIG_GLOBAL": str(root / "gitconfig-global"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "RECOVERY_OPERATOR": "test-operator",
    }


def make_run(root: Path) -> Path:
    """A finished run: b1 committed, b2 failed once (quarantined), the
    operator's retry, b2 and b3 committed. Returns the workspace."""
    repo = make_repo(root / "work")
    env = _env(root)
    write_plan(repo / "plan.json", _plan())
    assert run_cli("run", "plan.json", cwd=repo, env=env).returncode == 3
    (root / "b2.ok").write_text("")
    decided = run_cli(
        "decide", "latest", "b2", "retry", "--operator", "alice", "--reason", "fix",
        cwd=repo, env=env,
    )  # fmt: skip
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", "latest", cwd=repo, env=env)
    assert resumed.returncode == 0, resumed.stderr
    return repo


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("verify"))


def _store(repo: Path) -> Path:
    return repo / ".recovery" / "events.sqlite3"


def verify(repo: Path, *args: str, store: Path | None = None) -> tuple[int, Any]:
    """``recovery verify --json``: its exit code and report."""
    extra = ("--store", f"sqlite:///{store}") if store is not None else ()
    done = run_cli("verify", *args, *extra, "--json", cwd=repo, env=_env(repo.parent))
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def findings(report: Any) -> list[str]:
    return [
        f"{f['where']}: {f['message']}"
        for run in report["runs"]
        for f in run["findings"]
    ]


def test_a_run_that_holds_verifies(finished: Path) -> None:
    code, report = verify(finished)
    assert code == 0, findings(report)
    [run] = report["runs"]
    assert run["ok"] and run["events"] > 25
    with RecoveryApp.open(f"sqlite:///{_store(finished)}") as app:
        view = app.view(app.resolve("latest"))
    assert run["head"] == view.head_digest
    assert verify(finished, "--expect-head", view.head_digest)[0] == 0
    text = run_cli("verify", cwd=finished, env=_env(finished.parent))
    assert text.returncode == 0 and "verified" in text.stdout
    # Verifying writes nothing: the store's bytes are as they were.
    before = _store(finished).read_bytes()
    verify(finished, "--all")
    assert _store(finished).read_bytes() == before


# -- tampering with the stored events --------------------------------------------


def _rows(db: Path) -> list[tuple[int, str, bytes]]:
    with sqlite3.connect(db) as conn:
        return list(
            conn.execute(
                "SELECT originator_version, topic, state FROM stored_events "
                "WHERE topic LIKE 'recovery:%' ORDER BY originator_version"
            )
        )


def _version_of(db: Path, topic: str, nth: int = 0) -> int:
    return [v for v, t, _ in _rows(db) if t == f"recovery:{topic}"][nth]


def _state(db: Path, version: int) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(next(s for v, _, s in _rows(db) if v == version))
    return found


def _set_state(db: Path, version: int, state: dict[str, Any]) -> None:
    data = json.dumps(state, separators=(",", ":")).encode()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE stored_events SET state = ? WHERE originator_version = ? "
            "AND topic LIKE 'recovery:%'",
            (data, version),
        )


def _edit(db: Path, version: int, change: Callable[[dict[str, Any]], None]) -> None:
    state = _state(db, version)
    change(state)
    _set_state(db, version, state)


def _sql(db: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(statement, params)


def _last(db: Path) -> int:
    return _rows(db)[-1][0]


def _delete(db: Path, version: int) -> None:
    _sql(db, "DELETE FROM stored_events WHERE originator_version = ?", version)


def _swap(db: Path, a: int, b: int) -> None:
    rows = {v: (t, s) for v, t, s in _rows(db)}
    for version, other in ((a, b), (b, a)):
        topic, state = rows[other]
        _sql(
            db,
            "UPDATE stored_events SET topic = ?, state = ? WHERE originator_version = ?",
            topic,
            state,
            version,
        )


def _insert_copy(db: Path, source: int, at: int) -> None:
    """Inserts a copy of event ``source`` as version ``at``, moving the later
    events one version on."""
    rows = _rows(db)
    with sqlite3.connect(db) as conn:
        run_id = conn.execute("SELECT originator_id FROM stored_events").fetchone()[0]
        for version, _, _ in reversed(rows):
            if version >= at:
                conn.execute(
                    "UPDATE stored_events SET originator_version = ? "
                    "WHERE originator_version = ?",
                    (version + 1, version),
                )
        topic, state = next((t, s) for v, t, s in rows if v == source)
        conn.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, "
            "state) VALUES (?, ?, ?, ?)",
            (run_id, at, topic, state),
        )


def _reseal(db: Path, version: int) -> None:
    """Recomputes event ``version``'s own digest over its (changed) content,
    as a forger who knows the algorithm would."""
    with RecoveryApp.open(f"sqlite:///{db}") as app:
        [run_id] = [UUID(s.run_id) for s in app.runs()]
        record = next(
            r for r in app.stored_records(run_id) if r.originator_version == version
        )
    digest = record.content_digest()
    _edit(db, version, lambda s: s.update(digest=digest))


def _field(topic: str, key: str, value: object, nth: int = 0) -> Callable[[Path], int]:
    def tamper(db: Path) -> int:
        version = _version_of(db, topic, nth)
        _edit(db, version, lambda s: s.__setitem__(key, value))
        return version

    return tamper


def _failure_error(db: Path) -> int:
    version = _version_of(db, "StepFailed")
    _edit(db, version, lambda s: s["failure"].__setitem__("error", "all fine"))
    return version


def _first_plan(db: Path) -> int:
    _edit(db, 1, lambda s: s["plan"].__setitem__("plan_id", "another"))
    return 1


def _timestamp(db: Path) -> int:
    version = _version_of(db, "OperatorDecided")
    _edit(
        db,
        version,
        lambda s: s["timestamp"].__setitem__("_data_", "2020-01-01T00:00:00+00:00"),
    )
    return version


def _topic(db: Path) -> int:
    version = _version_of(db, "StepPassed")
    _sql(
        db,
        "UPDATE stored_events SET topic = 'recovery:BatchVerified' "
        "WHERE originator_version = ?",
        version,
    )
    return version


def _unknown_topic(db: Path) -> int:
    version = _version_of(db, "OperatorNotified")
    _sql(
        db,
        "UPDATE stored_events SET topic = 'recovery:Forged' WHERE originator_version = ?",
        version,
    )
    return version


def _digest_field(db: Path) -> int:
    return _field("BatchVerified", "digest", "ab" * 32)(db)


def _prev_field(db: Path) -> int:
    return _field("BatchStarted", "prev_digest", "cd" * 32, 1)(db)


def _resealed_decision(db: Path) -> int:
    version = _field("OperatorDecided", "operator", "mallory")(db)
    _reseal(db, version)
    return version + 1  # its own digest holds; the next event's link does not


def _resealed_last(db: Path) -> int:
    version = _field("RunCompleted", "summary", {"verified": 99})(db)
    _reseal(db, version)
    return version  # the last event: its link to the one before still holds


def _garbage(db: Path) -> int:
    version = _version_of(db, "ChangesQuarantined")
    _sql(
        db,
        "UPDATE stored_events SET state = ? WHERE originator_version = ?",
        b"{not json",
        version,
    )
    return version


def _delete_first(db: Path) -> int:
    _delete(db, 1)
    return 2


def _delete_middle(db: Path) -> int:
    version = _version_of(db, "OperatorDecided")
    _delete(db, version)
    return version + 1


def _swap_middle(db: Path) -> int:
    version = _version_of(db, "BatchMarkedFailed")
    _swap(db, version, version + 1)
    return version


def _swap_first(db: Path) -> int:
    _swap(db, 1, 2)
    return 1


def _swap_last(db: Path) -> int:
    last = _last(db)
    _swap(db, last - 1, last)
    return last - 1


def _insert_middle(db: Path) -> int:
    version = _version_of(db, "BatchStarted", 1)
    _insert_copy(db, 3, version)
    return version


def _insert_first(db: Path) -> int:
    _insert_copy(db, 1, 1)
    return 2


def _append_copy(db: Path) -> int:
    last = _last(db)
    _insert_copy(db, last - 1, last + 1)
    return last + 1


def _gap(db: Path) -> int:
    last = _last(db)
    _sql(
        db,
        "UPDATE stored_events SET originator_version = ? WHERE originator_version = ?",
        last + 5,
        last,
    )
    return last + 5


def _moved_to_another_run(db: Path) -> int:
    version = _version_of(db, "BatchCommitted")
    _sql(
        db,
        "UPDATE stored_events SET originator_id = ? WHERE originator_version = ?",
        "00000000-0000-4000-8000-000000000000",
        version,
    )
    return version + 1


#: name -> tampering; each returns the version the first finding names (0:
#: any).
TAMPERING: dict[str, Callable[[Path], int]] = {
    "edit the first event's plan": _first_plan,
    "edit the first event's workspace": _field("RunStarted", "workspace", "/elsewhere"),
    "edit a failure's error": _failure_error,
    "edit the operator of a decision": _field("OperatorDecided", "operator", "bob"),
    "edit a decision": _field("OperatorDecided", "decision", "skip"),
    "edit a commit id": _field("BatchCommitted", "commit", "0" * 40),
    "edit a quarantined tree id": _field("ChangesQuarantined", "tree_id", "1" * 40),
    "edit the last event": _field("RunCompleted", "summary", {}),
    "edit a timestamp": _timestamp,
    "edit a topic to another known one": _topic,
    "edit a topic to an unknown one": _unknown_topic,
    "edit an event's digest": _digest_field,
    "edit an event's link": _prev_field,
    "edit and reseal an event": _resealed_decision,
    "make an event unreadable": _garbage,
    "delete the first event": _delete_first,
    "delete an event in the middle": _delete_middle,
    "swap two events in the middle": _swap_middle,
    "swap the first two events": _swap_first,
    "swap the last two events": _swap_last,
    "insert a copy in the middle": _insert_middle,
    "insert a copy before the first": _insert_first,
    "append a copy at the end": _append_copy,
    "leave a gap before the last event": _gap,
    "move an event to another run": _moved_to_another_run,
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_with_stored_events_is_found(
    name: str, finished: Path, tmp_path: Path
) -> None:
    db = tmp_path / "events.sqlite3"
    shutil.copyfile(_store(finished), db)
    assert verify(finished, store=db)[0] == 0  # the copy holds before
    at = TAMPERING[name](db)
    code, report = verify(finished, "--all", store=db)
    found = findings(report)
    assert code == 6, f"{name}: not found"
    assert found and report["exit_code"] == 6 and report["problems"]
    if at:
        # The first finding names the event that was tampered with (or, when
        # the tampering itself holds, the first event it breaks).
        assert found[0].startswith(f"event {at} "), found


def test_a_removed_tail_is_found_only_with_the_expected_head(
    finished: Path, tmp_path: Path
) -> None:
    db = tmp_path / "events.sqlite3"
    shutil.copyfile(_store(finished), db)
    code, report = verify(finished, store=db)
    head = report["runs"][0]["head"]
    _delete(db, _last(db))  # RunCompleted: nothing on disk or in git shows it
    # What is left is a chain that holds: the docs say so plainly.
    code, report = verify(finished, store=db)
    assert code == 0
    code, report = verify(finished, "--expect-head", head, store=db)
    assert code == 6
    assert "which no event of the run has" in findings(report)[0]
    # Two removed: the last commit's trailer names an event no more there.
    _delete(db, _last(db))
    code, report = verify(finished, store=db)
    assert code == 6
    assert any("no event records it" in f for f in findings(report))
    # The last event forged and resealed (a replaced tail) is like a removed one.
    db = tmp_path / "resealed.sqlite3"
    shutil.copyfile(_store(finished), db)
    _resealed_last(db)
    assert verify(finished, store=db)[0] == 0
    assert verify(finished, "--expect-head", head, store=db)[0] == 6
    # An older head than the one kept: events follow it.
    first = _state(db, 1)["digest"]
    code, report = verify(finished, "--expect-head", first, store=db)
    assert code == 6 and "event 1's digest" in findings(report)[0]


def test_a_changed_snapshot_is_found(finished: Path, tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite3"
    shutil.copyfile(_store(finished), db)
    with RecoveryApp.open(f"sqlite:///{db}") as app:
        run_id = app.resolve("latest")
        run = app.get_run(run_id)
        assert app.snapshots is not None
        app.snapshots.put([Run.Snapshot.take(run)])
    assert verify(finished, store=db)[0] == 0  # a true snapshot holds
    with sqlite3.connect(db) as conn:
        [state] = conn.execute("SELECT state FROM stored_snapshots").fetchone()
        forged = state.replace(b'"alice"', b'"mallory"')
        assert forged != state
        conn.execute("UPDATE stored_snapshots SET state = ?", (forged,))
    code, report = verify(finished, store=db)
    assert code == 6
    assert any(f.startswith("snapshot at event") for f in findings(report))


def test_a_bad_expected_head_or_run_is_bad_input(finished: Path) -> None:
    done = run_cli("verify", "--expect-head", "xyz", cwd=finished)
    assert done.returncode == 2 and "64 hex" in done.stderr
    done = run_cli("verify", "latest", "--all", cwd=finished)
    assert done.returncode == 2
    done = run_cli("verify", "nosuchrun", cwd=finished)
    assert done.returncode == 2


# -- what is on disk and in git ------------------------------------------------


@pytest.fixture
def own_run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


def test_projections_on_disk_that_differ_are_found(own_run: Path) -> None:
    log = own_run / ".recovery" / "logs" / "bootstrap_errors.log"
    original = log.read_text()
    entry = json.loads(original.splitlines()[0])
    entry["error"] = "nothing failed"
    log.write_text(json.dumps(entry) + "\n" + "".join(original.splitlines(True)[1:]))
    code, report = verify(own_run)
    assert code == 6
    assert any("line 1" in f and "error" in f for f in findings(report))
    log.write_text(original)
    assert verify(own_run)[0] == 0
    # A log that is not there is a projection to rebuild, not a finding (a
    # host may keep it elsewhere): said in a note.
    log.unlink()
    code, report = verify(own_run)
    assert code == 0
    assert any("no failure log at" in n for n in report["runs"][0]["notes"])
    log.write_text(original)

    plan_file = own_run / "plan.json"
    plan = json.loads(plan_file.read_text())
    plan["batches"][1]["status"] = "skipped"
    plan_file.write_text(json.dumps(plan, indent=2) + "\n")
    code, report = verify(own_run)
    assert code == 6
    assert any("batch b2" in f and "status is 'skipped'" in f for f in findings(report))


def test_a_moved_quarantine_ref_is_found(own_run: Path) -> None:
    [ref] = [
        line
        for line in git(own_run, "for-each-ref", "--format=%(refname)").split()
        if line.endswith("/quarantine")
    ]
    git(own_run, "update-ref", ref, "HEAD")
    code, report = verify(own_run)
    assert code == 6
    assert any(f.startswith(f"ref {ref}") and "moved" in f for f in findings(report))
    git(own_run, "update-ref", "-d", ref)
    code, report = verify(own_run)
    assert code == 6 and any("is gone" in f for f in findings(report))


def test_a_rewritten_commit_trailer_is_found(own_run: Path) -> None:
    message = git(own_run, "log", "-1", "--format=%B")
    assert "Recovery-Chain: " in message
    head, _, _old = message.rpartition("Recovery-Chain: ")
    forged = head + "Recovery-Chain: " + "e" * 64 + "\n"
    git(own_run, "commit", "-q", "--amend", "-m", forged)
    code, report = verify(own_run)
    assert code == 6
    assert any("no event records it" in f for f in findings(report)), findings(report)
    notes = report["runs"][0]["notes"]
    assert any("is on no branch now" in n for n in notes)
