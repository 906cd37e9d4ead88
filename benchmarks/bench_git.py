"""Git isolation costs: snapshot plus quarantine against repository size, and the
per-batch overhead of a passing batch with commit against raw git and raw
eventsourcing.

Targets (design.md, issue 5):

(a) ``GitWorkspace.snapshot`` then ``quarantine`` (which restores) for the same
    small change (two files edited, one added) costs at most 2x as much in a
    repository of 30,000 files as in one of 300. The first repetition, left
    out, takes the full scan that starts the workspace's file-system watch;
    the figures without the watch (``monitor=False``, a full scan each time)
    are printed too, for reference.
(b) the per-batch overhead of a passing batch with ``commit_strategy: commit``
    (events, snapshot, guard, commit, projections), driven by
    ``with runner.batch(...)`` blocks that write one file each, with no
    validation steps and a SQLite store, costs at most 2x a raw
    ``git add -A && git commit`` of the same change (as subprocesses) plus raw
    eventsourcing saves of as many events, one save each, on a SQLite file.

Both print the medians and the ratio; (b) also prints how many git commands
our side ran per batch and the time spent in them.

    python benchmarks/bench_git.py [--small 300] [--large 30000] [--reps 7]
                                   [--batches 20] [--rounds 3] [--only a|b]
                                   [--history N]

``--history N`` gives (b)'s repository N refs of earlier runs (never
pruned), for the per-batch cost with a long history of runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from recovery_adapters.git import GitWorkspace
from recovery_core import RecoveryApp, Verified, parse_plan

IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")


def git(repo: Path, *args: str) -> None:
    """Runs git in ``repo`` (hooks and all, as a user would)."""
    subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env={**os.environ, **IDENTITY},
    )


def build_repo(root: Path, files: int) -> Path:
    """A repository of ``files`` small files of varied content, in folders of at
    most 100, committed once; the index is refreshed after the racy-git window
    so that its stat cache is as warm as in a repository in daily use."""
    started = time.perf_counter()
    repo = root / f"repo-{files}"
    for number in range(files):
        folder = repo / f"pkg{number // 100:04d}"
        if number % 100 == 0:
            folder.mkdir(parents=True)
        words = " ".join(WORDS[(number + k) % len(WORDS)] for k in range(number % 9))
        (folder / f"mod_{number:05d}.py").write_text(
            f"# module {number}\nVALUE = {number * 7919 % 10007}\nNAME = {words!r}\n"
        )
        if files >= 10_000 and number and number % 10_000 == 0:
            print(f"  wrote {number:,} of {files:,} files", flush=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    time.sleep(1.1)  # leave git's racy-timestamp window
    git(repo, "update-index", "-q", "--really-refresh")
    print(
        f"  built a {files:,}-file repository in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return repo


def small_change(repo: Path, rep: int) -> None:
    """Edits two files and adds one."""
    for target in ("pkg0000/mod_00001.py", "pkg0001/mod_00102.py"):
        with (repo / target).open("a") as f:
            f.write(f"# edit {rep}\n")
    (repo / "pkg0000" / f"new_{rep}.py").write_text(f"NEW = {rep}\n")


# -- (a) snapshot + quarantine against repository size ---------------------------


def time_snapshot_restore(
    repo: Path, reps: int, *, tracker: bool = True
) -> list[float]:
    """Seconds of snapshot + quarantine for the small change, per repetition."""
    workspace = GitWorkspace(repo, tracker=tracker)
    workspace.prepare()
    times: list[float] = []
    for rep in range(reps + 1):
        started = time.perf_counter()
        baseline = workspace.snapshot(run_id="bench", batch_id=f"b{rep}", attempt=1)
        elapsed = time.perf_counter() - started
        small_change(repo, rep)
        started = time.perf_counter()
        kept = workspace.quarantine(
            run_id="bench", batch_id=f"b{rep}", attempt=1, baseline=baseline
        )
        elapsed += time.perf_counter() - started
        assert len(kept.files) == 3, kept.files
        assert not (repo / "pkg0000" / f"new_{rep}.py").exists()
        if rep:  # the first repetition warms the caches
            times.append(elapsed)
    workspace.close()
    return times


def bench_size(small: int, large: int, reps: int) -> float:
    """Part (a); returns the ratio large / small."""
    print(f"(a) snapshot + quarantine, {small:,} vs {large:,} files")
    with tempfile.TemporaryDirectory(prefix="bench-git-") as folder:
        small_repo = build_repo(Path(folder), small)
        large_repo = build_repo(Path(folder), large)
        small_times: list[float] = []
        large_times: list[float] = []
        scans: dict[int, list[float]] = {small: [], large: []}
        for _ in range(2):  # alternate, so that a noisy machine hurts both alike
            small_times += time_snapshot_restore(small_repo, reps)
            large_times += time_snapshot_restore(large_repo, reps)
            scans[small] += time_snapshot_restore(small_repo, reps, tracker=False)
            scans[large] += time_snapshot_restore(large_repo, reps, tracker=False)
    small_s, large_s = statistics.median(small_times), statistics.median(large_times)
    ratio = large_s / small_s
    print(
        f"  {small:>7,} files: {small_s * 1e3:8.1f} ms (median of {len(small_times)})"
    )
    print(
        f"  {large:>7,} files: {large_s * 1e3:8.1f} ms (median of {len(large_times)})"
    )
    print(f"  ratio (target <= 2): {ratio:.2f}x", flush=True)
    small_scan, large_scan = (statistics.median(scans[n]) for n in (small, large))
    print(
        f"  tracker off (a full scan each time): {small_scan * 1e3:.1f} ms vs "
        f"{large_scan * 1e3:.1f} ms, {large_scan / small_scan:.2f}x",
        flush=True,
    )
    return ratio


# -- (b) per-batch overhead of a passing batch with commit -----------------------


class RawBatch(Aggregate):
    """The baseline's aggregate: one event per save, no rules, no chain."""

    @event("Recorded")
    def record(self, batch_id: str, attempt: int, what: str) -> None:
        """Records one transition."""


def time_ours(
    repo: Path, store: Path, batches: int, *, tracker: bool = True
) -> tuple[float, float, int]:
    """Seconds for ``batches`` passing batches with commit through the Runner;
    also the events recorded per batch and the git processes started."""
    plan = parse_plan(
        {
            "plan_id": "bench",
            "batches": [
                {"batch_id": f"b{i}", "validation": [], "commit_strategy": "commit"}
                for i in range(batches)
            ],
        }
    )
    app = RecoveryApp.open(f"sqlite:///{store}")
    workspace = GitWorkspace(repo, tracker=tracker)
    runner = app.runner(plan, workspace=workspace)
    run_id = runner.open_run()
    before = len(app.history(run_id))
    calls = workspace.git_calls
    started = time.perf_counter()
    for i in range(batches):
        with runner.batch(f"b{i}") as session:
            (repo / f"batch_{i}.py").write_text(f"VALUE = {i}\n")
        assert isinstance(session.outcome, Verified), session.outcome
        assert session.outcome.commit
    elapsed = time.perf_counter() - started
    calls = workspace.git_calls - calls
    workspace.close()
    events = (len(app.history(run_id)) - before) / batches
    return elapsed, events, calls


def add_history(repo: Path, refs: int) -> None:
    """``refs`` refs of earlier runs under ``refs/recovery/`` (three an
    attempt, as loose refs: a repository whose runs were never pruned)."""
    if not refs:
        return
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    kinds = ("baseline", "index", "quarantine")
    lines = "".join(
        f"create refs/recovery/old/b{i // 3}/1/{kinds[i % 3]} {head}\n"
        for i in range(refs)
    )
    subprocess.run(
        ["git", "update-ref", "--stdin"], cwd=repo, input=lines.encode(), check=True
    )
    print(f"  {refs:,} refs of earlier runs under refs/recovery/", flush=True)


def time_raw(repo: Path, store: Path, batches: int, events: int) -> float:
    """Seconds for ``batches`` raw `git add -A && git commit` of one new file
    each, plus ``events`` raw eventsourcing saves per batch."""
    app: Application[UUID] = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(store)}
    )
    raw = RawBatch()
    app.save(raw)
    started = time.perf_counter()
    for i in range(batches):
        (repo / f"batch_{i}.py").write_text(f"VALUE = {i}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"b{i}")
        for k in range(events):
            raw.record(f"b{i}", 1, f"event {k}")
            app.save(raw)
    return time.perf_counter() - started


def bench_batch(files: int, batches: int, rounds: int, history: int = 0) -> float:
    """Part (b); returns the ratio ours / raw."""
    print(
        f"(b) per-batch overhead, {batches} passing batches with commit, {files:,}-file repo"
    )
    ours: list[float] = []
    scanning: list[float] = []
    raw: list[float] = []
    git_calls: list[float] = []
    events_per_batch = 0.0
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-git-") as folder:
            root = Path(folder)
            (root / "ours").mkdir()
            (root / "raw").mkdir()
            (root / "scan").mkdir()
            ours_repo = build_repo(root / "ours", files)
            scan_repo = build_repo(root / "scan", files)
            for repo in (ours_repo, scan_repo):
                add_history(repo, history)
            raw_repo = build_repo(root / "raw", files)
            elapsed, events_per_batch, calls = time_ours(
                ours_repo, root / "ours.sqlite3", batches
            )
            ours.append(elapsed / batches)
            git_calls.append(calls / batches)
            elapsed, _events, _calls = time_ours(
                scan_repo, root / "scan.sqlite3", batches, tracker=False
            )
            scanning.append(elapsed / batches)
            raw_s = time_raw(
                raw_repo, root / "raw.sqlite3", batches, round(events_per_batch)
            )
            raw.append(raw_s / batches)
    ours_s, raw_s = statistics.median(ours), statistics.median(raw)
    ratio = ours_s / raw_s
    print(f"  events recorded per batch:   {events_per_batch:.1f}")
    print(
        f"  raw git add+commit + saves:  {raw_s * 1e3:8.1f} ms/batch (median of {rounds})"
    )
    print(
        f"  recovery-core:               {ours_s * 1e3:8.1f} ms/batch "
        f"({statistics.median(git_calls):.1f} git processes started per batch)"
    )
    print(f"  ratio (target <= 2): {ratio:.2f}x", flush=True)
    scan_s = statistics.median(scanning)
    print(
        f"  tracker off (a full scan each time): {scan_s * 1e3:.1f} ms/batch, "
        f"{scan_s / raw_s:.2f}x",
        flush=True,
    )
    return ratio


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Runs the benchmarks and prints their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--large", type=int, default=30_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("a", "b"))
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="(b): refs of earlier runs under refs/recovery/ in our repository",
    )
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    parts: dict[str, Callable[[], float]] = {
        "a": lambda: bench_size(args.small, args.large, args.reps),
        "b": lambda: bench_batch(args.small, args.batches, args.rounds, args.history),
    }
    for name, part in parts.items():
        if args.only in (None, name):
            results[name] = part()
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
