"""The cost of waiting for a step's command: ``run_process`` against a raw
``subprocess.run`` of the same command.

Target: ``run_process([sys.executable, "-c", "pass"])`` costs at most 1.1x a raw
``subprocess.run`` of the same command, which waits without a timeout and so
without polling. ``run_process`` has a timeout, which ``Popen.wait(timeout=...)``
would honour by polling with sleeps of up to 50 ms; it waits on a pidfd instead
(a thread blocked in ``waitpid`` where there is none), so a command that ends
at once is seen at once.

The sides alternate within each repetition so that a noisy machine hurts them
alike; the medians and the ratio are printed. ``Popen.wait(timeout=600)`` on
the same command is timed too, for information (the polled wait), and with
``--fallback`` ``run_process`` is timed again with ``os.pidfd_open`` made to
fail, so on the thread fallback.

    python benchmarks/bench_wait.py [--runs 30] [--fallback]
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
from typing import Any

from recovery_adapters.validation.process import run_process

COMMAND = (sys.executable, "-c", "pass")


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def raw_run() -> None:
    """The baseline: ``subprocess.run`` waits with no timeout (no polling)."""
    subprocess.run(COMMAND, check=True)


def polled_wait() -> None:
    """``Popen.wait`` with a timeout, which polls with sleeps of up to 50 ms."""
    process = subprocess.Popen(COMMAND)
    process.wait(timeout=600)


def ours(folder: Path) -> None:
    """``run_process`` as a step runs it (the default timeout)."""
    result = run_process(COMMAND, cwd=folder)
    if result.exit_code != 0:
        raise SystemExit(f"run_process failed: {result}")


def _no_pidfd(pid: int, flags: int = 0) -> int:
    raise OSError(38, "Function not implemented")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark and prints the medians and the ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--fallback",
        action="store_true",
        help="also time run_process with os.pidfd_open failing (thread fallback)",
    )
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"raw": [], "ours": [], "polled": []}
    if args.fallback:
        times["fallback"] = []
    real_pidfd_open = getattr(os, "pidfd_open", None)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        # One of each first, not counted: imports and caches warm up.
        raw_run()
        ours(folder)
        polled_wait()
        for _ in range(args.runs):
            times["raw"].append(timed(raw_run))
            times["ours"].append(timed(lambda: ours(folder)))
            times["polled"].append(timed(polled_wait))
            if args.fallback:
                setattr(os, "pidfd_open", _no_pidfd)  # noqa: B010
                try:
                    times["fallback"].append(timed(lambda: ours(folder)))
                finally:
                    if real_pidfd_open is None:
                        delattr(os, "pidfd_open")
                    else:
                        setattr(os, "pidfd_open", real_pidfd_open)  # noqa: B010
    medians = {key: statistics.median(values) for key, values in times.items()}
    ratio = medians["ours"] / medians["raw"]
    print(f"command:                       {' '.join(COMMAND)}")
    print(f"runs:                          {args.runs} (medians)")
    print(f"subprocess.run (baseline):     {medians['raw'] * 1e3:8.2f} ms")
    print(f"run_process:                   {medians['ours'] * 1e3:8.2f} ms")
    print(f"ratio (target <= 1.1):         {ratio:8.2f}x")
    if args.fallback:
        print(
            f"run_process, thread fallback:  {medians['fallback'] * 1e3:8.2f} ms"
            f"  ({medians['fallback'] / medians['raw']:.2f}x)"
        )
    print(
        f"Popen.wait(timeout=600), info: {medians['polled'] * 1e3:8.2f} ms"
        f"  ({medians['polled'] / medians['raw']:.2f}x, polled)"
    )
    return {"ratio": ratio, **{f"{key}_s": value for key, value in medians.items()}}


if __name__ == "__main__":
    main()
