"""The replay's copy of a state record (``records._evolve``, positional and
with the fields looked up once per class) is ``attrs.evolve``'s, for every
record class the state is made of: the same fields kept, the same changed,
no default recomputed (a failure's ``summary`` and ``fingerprint`` stay as
they were)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from recovery_core.records import (
    BatchView,
    ClaimView,
    DecisionView,
    Failure,
    OpenDecision,
    RunView,
    _evolve,
)

FAILURE = Failure("b1", 2, "syntax", "post_build_validation", "error", error="boom")
DECISION = DecisionView("b1", 2, "retry", "ann", "flaky")
CLAIM = ClaimView("host", 42, "r1", 1.5)
BATCH = BatchView("b1", status="failed", attempts=2, failure=FAILURE)
VIEW = RunView(
    run_id="r",
    plan_id="p",
    plan_digest="d",
    plan_path=None,
    workspace="/w",
    store="s",
    state="halted",
    batches=(BATCH, BatchView("b2")),
    awaiting=("b1", 2),
    decision=DECISION,
    claim=CLAIM,
    version=7,
    head_digest="h",
    started_at="t",
)

CASES: list[tuple[Any, dict[str, Any]]] = [
    (FAILURE, {"baseline": "abc"}),
    (FAILURE, {"error": "another", "quarantine_ref": "refs/q"}),
    (DECISION, {"carried_out": True}),
    (CLAIM, {"pid": 7}),
    (BATCH, {"status": "running", "failure": None, "steps_passed": ("a",)}),
    (OpenDecision("b1", 2, ("retry",)), {"recorded": DECISION}),
    (VIEW, {"version": 8, "head_digest": "i"}),
    (VIEW, {}),
]


@pytest.mark.parametrize(("record", "changes"), CASES)
def test_evolve_is_attrs_evolve(record: Any, changes: dict[str, Any]) -> None:
    copied = _evolve(record, **changes)
    expected = attrs.evolve(record, **changes)
    assert type(copied) is type(expected)
    assert copied == expected
    assert attrs.asdict(copied, recurse=False) == attrs.asdict(expected, recurse=False)


def test_a_changed_error_keeps_the_failure_s_gist_as_evolve_does() -> None:
    copied = _evolve(FAILURE, error="another")
    assert copied.summary == FAILURE.summary == "boom"
    assert copied.fingerprint == FAILURE.fingerprint
