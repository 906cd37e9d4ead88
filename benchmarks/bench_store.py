"""The store: round trips per passing batch, and ``status`` of a long run.

1. Round trips: a plan of ``--batches`` passing batches (one action writing a
   file, one syntax step) run through ``Runner.run()`` on a SQLite store in a
   real git workspace; every call the application makes to its recorder is
   counted, and the count per batch is printed by kind.
2. ``status`` of a run with ``--events`` events (100,000 by default) against
   one with 10, each read by a fresh application (what ``recovery status``
   does); target: within 3x. The long run is one batch failed and retried
   20,000 times: its history grows, its state does not, and it is read from
   its latest snapshot.

    python benchmarks/bench_store.py [--batches 5] [--events 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from recovery_adapters import GitWorkspace
from recovery_adapters.stores import open_store
from recovery_core import Failure, RecoveryApp, parse_plan
from recovery_core.run import Run

_COUNTED = (
    "select_events",
    "insert_events",
    "select_notifications",
    "max_notification_id",
    "max_tracking_id",
)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def round_trips(folder: Path, batches: int) -> dict[str, float]:
    """Recorder calls per passing batch, by method."""
    repo = folder / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(
        repo,
        "-c",
        "user.name=b",
        "-c",
        "user.email=b@b",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "start",
    )
    code = "import pathlib,sys; pathlib.Path(sys.argv[1]).write_text('x = 1\\n')"
    plan = parse_plan(
        {
            "plan_id": "trips",
            "batches": [
                {
                    "batch_id": f"b{i}",
                    "actions": [
                        {
                            "name": "write",
                            "run": [sys.executable, "-c", code, f"m{i}.py"],
                        }
                    ],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                }
                for i in range(batches)
            ],
        }
    )
    app = open_store(f"sqlite:///{folder / 'events.sqlite3'}")
    counts: collections.Counter[str] = collections.Counter()
    recorder = app.recorder
    for name in _COUNTED:
        original = getattr(recorder, name, None)
        if original is None:
            continue

        def counted(
            *args: Any, _name: str = name, _original: Any = original, **kw: Any
        ) -> Any:
            counts[_name] += 1
            return _original(*args, **kw)

        setattr(recorder, name, counted)
    with GitWorkspace(repo) as workspace:
        outcome = app.runner(plan, workspace=workspace).run()
    assert outcome.exit_code == 0, outcome
    app.close()
    return {name: counts[name] / batches for name in _COUNTED if counts[name]}


def long_run(url: str, events: int) -> UUID:
    """A run with about ``events`` events: one batch failed and retried over and
    over (started, a step passed, a step failed, halted, retry decided), so that
    the history grows and the state does not."""
    app = open_store(url)
    plan = parse_plan(
        {"plan_id": "long", "batches": [{"batch_id": "b1", "validation": []}]}
    )
    run_id = app.start_run(plan, workspace=".")
    run: Run = app.get_run(run_id)
    while run.version < events:
        attempt = run.start_batch("b1", None)
        run.step_passed("b1", attempt, step="s", phase="p", duration_s=0.0)
        run.step_failed(Failure("b1", attempt, step="t", phase="p", kind="command"))
        run.mark_failed("b1", attempt, "p.t failed")
        run.decide("b1", "retry", operator="bench")
        if len(run.pending_events) >= 95:
            app.save(run)
    app.save(run)
    app.close()
    return run_id


def time_status(url: str, run_id: UUID, rounds: int) -> float:
    """Median seconds to open the store and read the run's state."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        app = RecoveryApp.open(url, create=False)
        app.view(run_id)
        times.append(time.perf_counter() - started)
        app.close()
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        trips = round_trips(Path(folder), args.batches)
    total = sum(trips.values())
    print(f"store round trips per passing batch: {total:.1f}")
    for name, per in trips.items():
        print(f"  {name:22} {per:5.1f}")
    with tempfile.TemporaryDirectory() as folder:
        short_url = f"sqlite:///{folder}/short.sqlite3"
        long_url = f"sqlite:///{folder}/long.sqlite3"
        short_id = long_run(short_url, 10)
        long_id = long_run(long_url, args.events)
        short_s = time_status(short_url, short_id, args.rounds)
        long_s = time_status(long_url, long_id, args.rounds)
    ratio = long_s / short_s
    print(f"status of a run with 10 events:        {short_s * 1000:7.1f} ms")
    print(f"status of a run with {args.events} events: {long_s * 1000:7.1f} ms")
    print(f"ratio (target <= 3): {ratio:.2f}x")
    return {"trips": total, "ratio": ratio}


if __name__ == "__main__":
    main()
