"""The crash sweep from the command line, with its report:

    .venv/bin/python tests/crashkit [--workers N] [--root DIR] [PLAN ...]

PLAN is one of the sweep's plans (commit, retry, skip, recover, wait, takeover;
all by default).
Exits 1 when any case was damaged or any point was not reached."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a folder: its parent is the import root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crashkit.driver import SCENARIOS, format_report, sweep


def main() -> int:
    parser = argparse.ArgumentParser(prog="crashkit", description=__doc__)
    parser.add_argument("plans", nargs="*", metavar="PLAN")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--root", type=Path, help="keep the cases here")
    args = parser.parse_args()
    if unknown := [name for name in args.plans if name not in SCENARIOS]:
        parser.error(f"no plan {', '.join(unknown)}; the plans: {', '.join(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="crashkit-") as folder:
        root = args.root or Path(folder)
        results = [
            sweep(SCENARIOS[name], root / name, workers=args.workers, progress=print)
            for name in args.plans or SCENARIOS
        ]
    print(format_report(results))
    damaged = any(r.baseline or any(c.violations for c in r.cases) for r in results)
    unreached = any(r.killed != r.crossings for r in results)
    return 1 if damaged or unreached else 0


if __name__ == "__main__":
    sys.exit(main())
