"""``RefsRetired``: the one event recorded after a run's end. Retiring refs is
allowed only on a finished run (completed or aborted), only for refs under
the run's own ``refs/recovery/<run>/``; it is in the run's state and its hash
chain; the run stays finished. Checked on a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from recovery_core import IllegalTransition, RecoveryApp, parse_plan
from recovery_core.records import view_data, view_of
from recovery_core.run import Run

PLAN = parse_plan(
    {"plan_id": "retire", "batches": [{"batch_id": "b1", "validation": []}]}
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[RecoveryApp]:
    application = RecoveryApp.open(f"sqlite:///{tmp_path}/events.sqlite3")
    yield application
    application.close()


def _refs(run_id: UUID, *names: str) -> list[dict[str, str]]:
    return [
        {"ref": f"refs/recovery/{run_id}/b1/1/{name}", "target": "a" * 40}
        for name in names
    ]


def _retire(app: RecoveryApp, run_id: UUID, refs: list[dict[str, str]]) -> None:
    app.update(
        run_id, lambda run: run.retire_refs(refs, operator="ada", reason="pruned")
    )


def _refused(app: RecoveryApp, run_id: UUID, refs: list[dict[str, str]]) -> str:
    before = app.view(run_id)
    with pytest.raises(IllegalTransition) as refused:
        _retire(app, run_id, refs)
    assert app.view(run_id) == before
    assert len(app.stored_records(run_id)) == before.version
    return str(refused.value)


def test_refs_of_a_running_or_halted_run_are_never_retired(
    app: RecoveryApp, tmp_path: Path
) -> None:
    """A running run, and a halted one, refuse RefsRetired (exit 2) and
    record nothing."""
    run_id = app.start_run(PLAN, workspace=tmp_path)
    assert "only the refs of a finished run" in _refused(
        app, run_id, _refs(run_id, "baseline")
    )
    app.update(run_id, lambda run: run.start_batch("b1", None))
    app.update(run_id, lambda run: run.verify_batch("b1", 1))
    assert app.view(run_id).state == "running"
    _refused(app, run_id, _refs(run_id, "baseline"))


@pytest.mark.parametrize("end", ["completed", "aborted"])
def test_a_finished_run_records_its_retired_refs(
    app: RecoveryApp, tmp_path: Path, end: str
) -> None:
    """On a completed or aborted run, RefsRetired is recorded with each ref
    and its target, the operator and the reason; the run's state lists the
    retired refs and stays finished; the chain verifies to the new head;
    nothing else may follow the end still."""
    run_id = app.start_run(PLAN, workspace=tmp_path)
    if end == "completed":
        app.update(run_id, lambda run: run.start_batch("b1", None))
        app.update(run_id, lambda run: run.verify_batch("b1", 1))
        app.update(run_id, lambda run: run.complete())
    else:
        app.update(run_id, lambda run: run.abort(operator="ada", reason="stop"))
    refs = _refs(run_id, "baseline", "quarantine")
    _retire(app, run_id, refs)
    view = app.view(run_id)
    assert view.state == end
    assert view.retired_refs == tuple((r["ref"], r["target"]) for r in refs)
    last = app.history(run_id)[-1]
    assert isinstance(last, Run.RefsRetired)
    assert last.refs == refs
    assert (last.operator, last.reason) == ("ada", "pruned")
    assert app.check_chain(run_id) == view.head_digest == last.digest
    with pytest.raises(IllegalTransition):
        app.update(run_id, lambda run: run.abort(operator="ada", reason="again"))
    more = _refs(run_id, "index")
    _retire(app, run_id, more)
    assert app.view(run_id).retired_refs[-1] == (more[0]["ref"], more[0]["target"])


def test_only_the_runs_own_refs_are_retired(app: RecoveryApp, tmp_path: Path) -> None:
    """No ref at all, a ref of another run or outside refs/recovery/, or one
    without a target, is refused with nothing recorded."""
    run_id = app.start_run(PLAN, workspace=tmp_path)
    app.update(run_id, lambda run: run.abort(operator="ada", reason="stop"))
    assert "no ref to retire" in _refused(app, run_id, [])
    other = _refs(Run.create_id(), "baseline")
    assert "is not one of its refs" in _refused(app, run_id, other)
    _refused(app, run_id, [{"ref": "refs/heads/main", "target": "a" * 40}])
    _refused(app, run_id, [{"ref": f"refs/recovery/{run_id}/x", "target": ""}])


def test_a_state_saved_before_retired_refs_existed_still_loads(
    app: RecoveryApp, tmp_path: Path
) -> None:
    """A snapshot's state without ``retired_refs`` (saved by an older
    version) loads, with none retired."""
    run_id = app.start_run(PLAN, workspace=tmp_path)
    data = view_data(app.view(run_id))
    del data["retired_refs"]
    assert view_of(data).retired_refs == ()
    assert view_of(data) == app.view(run_id)
