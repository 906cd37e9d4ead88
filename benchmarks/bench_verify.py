"""``recovery verify`` against a raw read of the store: events per second.

A run of ``--events`` events (one batch failed and retried over and over, as
in bench_store.py) in a SQLite file. The baseline reads the whole
notification log through eventsourcing (``select_notifications`` in pages)
and decodes every event into its domain event (``mapper.to_domain_event``);
verify checks the same run's store part, as ``recovery verify`` does: every
stored event's version, topic, link and digest, the replay of the run's
state, and each snapshot against the replay
(:func:`recovery_core.audit.audit_run`); and the chain check alone (read,
decode, version, topic, link, digest; no replay). Target: verify reads at
least 0.8x as many events per second as the baseline. Each is timed with a
fresh application, the median of ``--rounds``.

    python benchmarks/bench_verify.py [--events 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import long_run

from recovery_core import RecoveryApp
from recovery_core.audit import audit_run, chain_findings


def raw_read(url: str) -> int:
    """Reads and decodes the whole notification log; returns the count."""
    app = RecoveryApp.open(url, create=False)
    count, start = 0, None
    while True:
        page = app.recorder.select_notifications(
            start=start, limit=1000, inclusive_of_start=start is None
        )
        for notification in page:
            app.mapper.to_domain_event(notification)
        count += len(page)
        if len(page) < 1000:
            break
        start = page[-1].id
    app.close()
    return count


def verify(url: str, run_id: UUID) -> int:
    app = RecoveryApp.open(url, create=False)
    audit = audit_run(app, run_id)
    app.close()
    assert not audit.findings, audit.findings
    return audit.events


def chain_only(url: str, run_id: UUID) -> int:
    """The hash chain part alone: every stored event read once, decoded, and
    its version, topic, link and digest checked (no replay)."""
    app = RecoveryApp.open(url, create=False)
    records = list(app.read_stored(run_id))
    _head, findings = chain_findings(records)
    app.close()
    assert not findings, findings
    return len(records)


def timed(call: Any, rounds: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        count = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), count


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/long.sqlite3"
        run_id = long_run(url, args.events)
        raw_s, raw_n = timed(lambda: raw_read(url), args.rounds)
        verify_s, verify_n = timed(lambda: verify(url, run_id), args.rounds)
        chain_s, chain_n = timed(lambda: chain_only(url, run_id), args.rounds)
    raw_rate, verify_rate = raw_n / raw_s, verify_n / verify_s
    print(f"raw read and decode: {raw_n} events in {raw_s * 1000:7.1f} ms")
    print(f"                     {raw_rate:9.0f} events/s")
    print(f"verify (store part): {verify_n} events in {verify_s * 1000:7.1f} ms")
    print(f"                     {verify_rate:9.0f} events/s")
    chain_rate = chain_n / chain_s
    print(f"chain check alone:   {chain_n} events in {chain_s * 1000:7.1f} ms")
    print(f"                     {chain_rate:9.0f} events/s")
    ratio = verify_rate / raw_rate
    print(f"ratio, verify (target >= 0.8): {ratio:.2f}x")
    print(f"ratio, chain check alone:      {chain_rate / raw_rate:.2f}x")
    return ratio


if __name__ == "__main__":
    main()
