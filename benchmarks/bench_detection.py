"""Failure detection whose cost follows the change, not the repository.

Target (design.md, issue 4): the ``syntax`` and ``surface`` steps cost in
proportion to the files a batch changed: for the same change, a 2,000-file
repository within 1.5x of a 20-file one; a warm surface cache at most 0.2x of a
cold one.

Two git repositories are built from real code (this Python's standard-library
modules, cycled into packages ``lib00``, ``lib01``, ... to reach the file count),
both holding the same package ``app`` (``app/core.py`` is ``textwrap.py``). Each
is committed, snapshotted as a batch's baseline by ``GitWorkspace``, then given
the same small change: one function's signature edited in ``app/core.py`` and one
file added (``app/extra.py``, ``colorsys.py``). The step runners are then called
directly with the StepContext the runner would build (the snapshot commit and the
changed files from ``GitWorkspace``); the surface step names every package of the
repository. Baselines, measured in the same run on the same files:
``ruff check --select E9`` of the changed files, and a plain ``ast.parse`` of them.
Rounds alternate between the repositories so that a noisy machine hurts both
alike; figures are medians. The surface step reads the baseline through a
long-lived ``git cat-file`` per workspace, as a runner does batch after batch;
the very first call in the process, which also starts it, is shown apart.

    python benchmarks/bench_detection.py [--small 20] [--large 2000] [--rounds 25]
"""

from __future__ import annotations

import argparse
import ast
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from recovery_adapters.git import GitWorkspace
from recovery_adapters.validation.lint import find_ruff
from recovery_adapters.validation.steps import syntax_step
from recovery_adapters.validation.surface import CACHE_DIR, surface_step
from recovery_core.plan import Batch, Identifier, ModuleName, Step, StepKind
from recovery_core.ports import StepContext, StepOutcome

STDLIB = Path(sysconfig.get_path("stdlib"))
FILES_PER_PACKAGE = 100
EDITED = "app/core.py"
ADDED = "app/extra.py"
OLD_SIGNATURE = "def dedent(text):"
NEW_SIGNATURE = "def dedent(text, *, keep_tabs=False):"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


@attrs.frozen
class Repository:
    """A benchmark repository after the change, and the context of its batch."""

    root: Path
    files: int
    packages: tuple[str, ...]
    context: StepContext


def stdlib_modules() -> list[Path]:
    """The standard library's top-level modules that parse on this Python."""
    found = []
    for path in sorted(STDLIB.glob("*.py")):
        try:
            ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        found.append(path)
    return found


def git(root: Path, *args: str) -> str:
    """Runs git in ``root``; returns its output."""
    done = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=True,
    )
    return done.stdout


def build(root: Path, files: int, sources: list[Path]) -> Repository:
    """A committed repository of ``files`` Python files, snapshotted as a batch's
    baseline, then changed (one signature edited, one file added)."""
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text('"""The application."""\n')
    shutil.copyfile(STDLIB / "textwrap.py", root / EDITED)
    cycle = itertools.cycle(sources)
    packages = ["app"]
    for index in range(files - 2):
        package = f"lib{index // FILES_PER_PACKAGE:02d}"
        folder = root / package
        if not folder.exists():
            folder.mkdir()
            packages.append(package)
        source = next(cycle)
        shutil.copyfile(source, folder / f"m{index:04d}_{source.stem}.py")
    count = sum(1 for _ in root.rglob("*.py"))
    assert count == files, count
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "standard library copies")
    workspace = GitWorkspace(root)
    workspace.prepare()
    baseline = workspace.snapshot(run_id="bench", batch_id="b1", attempt=1)
    edited = root / EDITED
    text = edited.read_text()
    assert text.count(OLD_SIGNATURE) == 1
    edited.write_text(text.replace(OLD_SIGNATURE, NEW_SIGNATURE))
    shutil.copyfile(STDLIB / "colorsys.py", root / ADDED)
    changed = workspace.changed_files(baseline)
    assert changed == (EDITED, ADDED), changed
    context = StepContext(
        root=workspace.root,
        run_id="bench",
        # The batch means to change dedent: the step passes, as it would in a
        # healthy run; the work done is the same either way.
        batch=Batch(
            batch_id=Identifier("b1"), expected_surface_changes=("app.core.dedent",)
        ),
        attempt=1,
        baseline=baseline,
        changed_files=changed,
        phase="post_build_validation",
    )
    return Repository(workspace.root, files, tuple(packages), context)


def surface_for(repo: Repository) -> Step:
    """A surface step naming every package of the repository."""
    return Step(
        name=Identifier("surface"),
        kind=StepKind("surface"),
        modules=tuple(ModuleName(p) for p in repo.packages),
    )


SYNTAX = Step(name=Identifier("syntax"), kind=StepKind("syntax"))


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def checked(outcome: StepOutcome, what: str) -> StepOutcome:
    """``outcome``, which must have passed."""
    assert outcome.passed, f"{what} failed: {outcome.error}"
    return outcome


def run_surface(repo: Repository) -> float:
    """Seconds the surface step takes on ``repo``, once."""
    return timed(
        lambda: checked(surface_step(surface_for(repo), repo.context), "surface")
    )


def measure(repo: Repository, ruff: list[str]) -> dict[str, float]:
    """One round of every measurement on ``repo``."""
    context = repo.context
    files = [f for f in context.changed_files if (repo.root / f).is_file()]
    cache = repo.root / CACHE_DIR
    times: dict[str, float] = {}

    def raw_ruff() -> None:
        subprocess.run(
            [*ruff, "check", "--select", "E9", "--no-cache", "--", *files],
            cwd=repo.root,
            capture_output=True,
            check=True,
        )

    def raw_ast() -> None:
        for name in files:
            ast.parse((repo.root / name).read_bytes(), filename=name)

    times["ruff E9"] = timed(raw_ruff)
    times["ast.parse"] = timed(raw_ast)
    times["syntax"] = timed(lambda: checked(syntax_step(SYNTAX, context), "syntax"))
    shutil.rmtree(cache, ignore_errors=True)
    times["surface cold"] = run_surface(repo)
    times["surface warm"] = run_surface(repo)
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Builds the repositories, runs the rounds and prints the table and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args(argv)
    ruff = find_ruff()
    if ruff is None:
        sys.exit("ruff is not installed: the syntax step and its baseline need it")
    sources = stdlib_modules()
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as folder:
        built = time.perf_counter()
        repos = {
            size: build(Path(folder) / f"repo{size}", size, sources)
            for size in (args.small, args.large)
        }
        setup = time.perf_counter() - built
        # The first surface step in a process also starts the workspace's
        # long-lived `git cat-file`; it is shown apart, the rounds reuse it.
        first = {size: run_surface(repo) for size, repo in repos.items()}
        samples: dict[int, dict[str, list[float]]] = {size: {} for size in repos}
        for _ in range(args.rounds):
            for size, repo in repos.items():
                for key, value in measure(repo, ruff).items():
                    samples[size].setdefault(key, []).append(value)
        outcome = surface_step(
            surface_for(repos[args.large]), repos[args.large].context
        )
    medians = {
        size: {k: statistics.median(v) for k, v in per.items()}
        for size, per in samples.items()
    }
    small, large = medians[args.small], medians[args.large]
    print(
        f"repositories of {args.small} and {args.large} Python files (built and "
        f"committed in {setup:.1f}s); change: {EDITED} signature edited, "
        f"{ADDED} added"
    )
    print(f"medians of {args.rounds} rounds, in milliseconds\n")
    header = f"{'':16}{args.small:>10}{args.large:>10}{'ratio':>10}"
    print(header)
    print("-" * len(header))
    ratios: dict[str, float] = {}
    for key in small:
        ratios[key] = large[key] / small[key]
        print(
            f"{key:16}{small[key] * 1e3:10.2f}{large[key] * 1e3:10.2f}"
            f"{ratios[key]:9.2f}x"
        )
    print(
        f"{'surface 1st call':16}{first[args.small] * 1e3:10.2f}"
        f"{first[args.large] * 1e3:10.2f}"
        f"{first[args.large] / first[args.small]:9.2f}x"
        "   (cold, and starts git cat-file)"
    )
    warm_cold = {
        size: medians[size]["surface warm"] / medians[size]["surface cold"]
        for size in medians
    }
    print()
    print(
        f"{args.large} vs {args.small} files, syntax step  (target <= 1.5): "
        f"{ratios['syntax']:.2f}x"
    )
    print(
        f"{args.large} vs {args.small} files, surface cold (target <= 1.5): "
        f"{ratios['surface cold']:.2f}x"
    )
    print(
        f"{args.large} vs {args.small} files, surface warm (target <= 1.5): "
        f"{ratios['surface warm']:.2f}x"
    )
    for size in medians:
        print(
            f"surface warm vs cold, {size} files (target <= 0.2): "
            f"{warm_cold[size]:.2f}x"
        )
    for size in medians:
        per = medians[size]
        print(
            f"{size} files: syntax step {per['syntax'] / per['ruff E9']:.2f}x raw "
            f"ruff E9; surface cold {per['surface cold'] / per['ast.parse']:.1f}x, "
            f"warm {per['surface warm'] / per['ast.parse']:.1f}x a plain ast.parse "
            "of the changed files"
        )
    print()
    print("the surface step's report (large repository, warm):")
    print(outcome.output_tail)
    return {
        "medians": medians,
        "ratios": ratios,
        "warm_vs_cold": warm_cold,
        "first_call": first,
    }


if __name__ == "__main__":
    main()
