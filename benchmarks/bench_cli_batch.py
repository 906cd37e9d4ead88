"""The per-batch cost of a passing batch through the ``recovery`` command,
against the same edits done raw.

Ours: ``recovery run plan.json`` (the real command, one process) on a plan of
passing batches, each with a real one-line action (``sh -c 'echo ... > f'``),
a syntax step and ``commit_strategy: commit``, in a real git repository with a
SQLite store. The per-batch cost is the difference between a plan of
``--batches`` + 1 batches and a plan of 1, divided by ``--batches`` (so the
interpreter's start is not counted). Raw: the same file written, then
``git add -A && git commit`` (as subprocesses) and eight raw eventsourcing saves
per batch. Target (issue 9): within 1.5x.

    python benchmarks/bench_cli_batch.py [--batches 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from bench_git import RawBatch  # the same raw aggregate as bench_git's baseline
from eventsourcing.application import Application


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _repo(folder: Path) -> Path:
    folder.mkdir(parents=True)
    _git(folder, "init", "-q")
    _git(folder, "config", "user.name", "bench")
    _git(folder, "config", "user.email", "bench@localhost")
    (folder / "README.md").write_text("bench\n")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "start")
    return folder


def time_ours(folder: Path, batches: int) -> float:
    """Seconds for ``recovery run`` of a plan of ``batches`` passing batches."""
    repo = _repo(folder)
    plan = {
        "plan_id": "bench",
        "batches": [
            {
                "batch_id": f"b{i}",
                "actions": [
                    {
                        "name": "write",
                        "run": ["sh", "-c", f"echo 'VALUE = {i}' > m{i}.py"],
                    }
                ],
                "validation": [{"name": "syntax", "kind": "syntax"}],
                "commit_strategy": "commit",
            }
            for i in range(batches)
        ],
    }
    (folder / "plan.json").write_text(json.dumps(plan))
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "recovery_adapters.cli",
            "run",
            str(folder / "plan.json"),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    return elapsed


def time_raw(folder: Path, batches: int, saves: int = 8) -> float:
    """Seconds for the same edits done raw: the file, git add and commit, and
    ``saves`` raw eventsourcing saves per batch."""
    repo = _repo(folder)
    app: Application[UUID] = Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(folder / "raw.sqlite3"),
        }
    )
    raw = RawBatch()
    app.save(raw)
    started = time.perf_counter()
    for i in range(batches):
        (repo / f"m{i}.py").write_text(f"VALUE = {i}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"b{i}")
        for k in range(saves):
            raw.record(f"b{i}", 1, f"event {k}")
            app.save(raw)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    ours: list[float] = []
    raw: list[float] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-cli-") as folder:
            root = Path(folder)
            one = time_ours(root / "one", 1)
            many = time_ours(root / "many", args.batches + 1)
            ours.append((many - one) / args.batches)
            raw.append(time_raw(root / "raw", args.batches) / args.batches)
    ours_s, raw_s = statistics.median(ours), statistics.median(raw)
    ratio = ours_s / raw_s
    print(
        f"recovery run, per passing batch:   {ours_s * 1e3:7.1f} ms (median of {args.rounds})"
    )
    print(f"raw edits, add+commit, 8 saves:     {raw_s * 1e3:7.1f} ms")
    print(f"ratio (target <= 1.5): {ratio:.2f}x")
    return {"ratio": ratio, "ours_s": ours_s, "raw_s": raw_s}


if __name__ == "__main__":
    main()
