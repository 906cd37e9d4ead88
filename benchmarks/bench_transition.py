"""Recording a transition against a raw eventsourcing save of the same event.

Target (design.md): recording a transition costs at most 1.25x a raw
``eventsourcing`` save of the same event on the same store.

Both sides save one ``StepPassed``-sized event per iteration to a SQLite file in
a temporary folder: ours through ``Run.step_passed`` (rule checks and the hash
chain digest) and ``Application.save``; the baseline through a plain
eventsourcing aggregate with the same payload fields. The two alternate in
rounds so that a noisy machine hurts both alike; the ratio of the medians is
printed.

    python benchmarks/bench_transition.py [--events 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from recovery_core.application import RecoveryApp
from recovery_core.plan import parse_plan
from recovery_core.run import Run


class RawRun(Aggregate):
    """The baseline: an eventsourcing aggregate with a step-passed event."""

    @event("StepPassed")
    def step_passed(
        self, batch_id: str, attempt: int, step: str, phase: str, duration_s: float
    ) -> None:
        """Records a passed step, with no rules and no chain."""


def time_ours(folder: Path, count: int) -> float:
    """Seconds to record ``count`` step results through the Run aggregate."""
    app = RecoveryApp.open(f"sqlite:///{folder / 'ours.sqlite3'}")
    plan = parse_plan(
        {"plan_id": "bench", "batches": [{"batch_id": "b1", "validation": []}]},
    )
    run_id = app.start_run(plan, workspace=folder)
    run: Run = app.get_run(run_id)
    attempt = run.start_batch("b1", None)
    app.save(run)
    started = time.perf_counter()
    for i in range(count):
        run.step_passed(
            "b1", attempt, step=f"s{i}", phase="post_build_validation", duration_s=0.5
        )
        app.save(run)
    return time.perf_counter() - started


def time_raw(folder: Path, count: int) -> float:
    """Seconds to save ``count`` events of the same shape with plain eventsourcing."""
    app: Application[UUID] = Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(folder / "raw.sqlite3"),
        }
    )
    raw = RawRun()
    app.save(raw)
    started = time.perf_counter()
    for i in range(count):
        raw.step_passed("b1", 1, f"s{i}", "post_build_validation", 0.5)
        app.save(raw)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark and prints the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    ours: list[float] = []
    raw: list[float] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            raw.append(time_raw(Path(folder), args.events))
            ours.append(time_ours(Path(folder), args.events))
    ours_s, raw_s = statistics.median(ours), statistics.median(raw)
    ratio = ours_s / raw_s
    print(f"events per round:      {args.events}")
    print(
        f"raw eventsourcing:     {raw_s * 1e6 / args.events:8.1f} us/event (median of {args.rounds})"
    )
    print(f"recovery-core:         {ours_s * 1e6 / args.events:8.1f} us/event")
    print(f"ratio (target <= 1.25): {ratio:.2f}x")
    return {"ratio": ratio, "ours_s": ours_s, "raw_s": raw_s}


if __name__ == "__main__":
    main()
