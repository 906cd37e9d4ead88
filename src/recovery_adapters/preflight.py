"""What would stop a plan before a single step could judge anything: the checks
of ``recovery check``, which ``recovery run`` also makes before its first event.

Beyond what loading the plan refuses, it finds a command whose program cannot
be found, a module named by a ``surface`` or ``smoke`` step that does not exist,
and a ``lint`` step whose ruff configuration ruff cannot read. Nothing is
written: the programs are looked up, the modules found on disk (their code is
never run) and ruff asked to read its configuration only.

A module or program inside the workspace that does not exist yet is fine when
a batch up to the one whose step names it has its file as the batch's
``component``: that batch makes it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from recovery_adapters.validation.lint import find_ruff
from recovery_adapters.validation.process import run_process
from recovery_adapters.validation.surface import SOURCE_ROOTS, module_exists
from recovery_core.plan import ExecutionPlan, Step

__all__ = ["plan_problems"]

#: How long ruff may take to read its configuration.
_RUFF_TIMEOUT_S = 60.0


def plan_problems(plan: ExecutionPlan, root: Path) -> list[str]:
    """Every problem that would stop ``plan`` in the workspace ``root`` before
    a step could judge anything, each with its path in the plan."""
    problems: list[str] = []
    made: set[str] = set()  # the components of the batches so far
    lint_checked = False
    for i, batch in enumerate(plan.batches):
        if batch.component:
            made.add(PurePosixPath(batch.component).as_posix())
        for j, action in enumerate(batch.actions):
            problems += _program(
                f"batches[{i}].actions[{j}].run[0]", action.run, root, made
            )
        for j, step in enumerate(batch.validation):
            where = f"batches[{i}].validation[{j}]"
            if step.run:
                problems += _program(f"{where}.run[0]", step.run, root, made)
            problems += _modules(where, step, root, made)
            if step.kind == "lint" and not lint_checked:
                lint_checked = True
                problems += _lint_configuration(where, root)
    return problems


def _program(
    where: str, argv: tuple[str, ...], root: Path, made: set[str]
) -> list[str]:
    program = argv[0]
    if "/" not in program:
        if shutil.which(program) is None:
            return [f"{where}: program {program!r} not found on PATH"]
        return []
    path = Path(program) if Path(program).is_absolute() else root / program
    if path.is_file() and os.access(path, os.X_OK):
        return []
    if path.is_file():
        return [f"{where}: {program!r} is not executable"]
    if _made_by_a_batch(path, root, made):
        return []
    return [f"{where}: program {program!r} not found"]


def _modules(where: str, step: Step, root: Path, made: set[str]) -> Iterator[str]:
    named: Iterable[tuple[str, str]] = ()
    if step.kind == "surface":
        named = ((f"{where}.modules[{k}]", m) for k, m in enumerate(step.modules))
    elif step.kind == "smoke":
        named = ((f"{where}.imports[{k}]", m) for k, m in enumerate(step.imports))
    for path, module in named:
        if module_exists(root, module) or _made_module(module, made):
            continue
        if step.kind == "smoke" and _installed(module):
            continue
        folder = module.replace(".", "/")
        where_looked = "importable" if step.kind == "smoke" else "in the workspace"
        yield (
            f"{path}: no module {module!r} {where_looked} (no {folder}.py or "
            f"{folder}/ at the top of the workspace or below src/, and no batch up "
            "to this one names it as its component)"
        )


def _made_module(module: str, made: set[str]) -> bool:
    folder = module.replace(".", "/")
    for base in SOURCE_ROOTS:
        stem = f"{base}{folder}"
        for component in made:
            if component in (f"{stem}.py", stem) or component.startswith(f"{stem}/"):
                return True
    return False


def _made_by_a_batch(path: Path, root: Path, made: set[str]) -> bool:
    try:
        relative = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return False
    return relative in made


def _installed(module: str) -> bool:
    """Whether ``module`` can be found outside the workspace, by the finders
    alone (no package's code runs: a dotted name is looked up in its parent's
    folders, not imported)."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return False
    for part in parts[1:]:
        locations = None if spec is None else spec.submodule_search_locations
        if not locations:
            return False
        spec = importlib.machinery.PathFinder.find_spec(part, list(locations))
    return spec is not None


def _lint_configuration(where: str, root: Path) -> list[str]:
    """ruff asked to lint an empty file in the workspace, which reads its
    configuration and nothing else; exit 2 is a configuration it cannot read."""
    ruff = find_ruff()
    if ruff is None:
        return [f"{where}: ruff is not installed (reinstall recovery-core)"]
    argv = [*ruff, "check", "--no-cache", "--exit-zero", "--quiet"]
    argv += ["--stdin-filename", "recovery_check.py", "-"]
    result = run_process(argv, cwd=root, timeout_s=_RUFF_TIMEOUT_S)
    if result.exit_code == 0:
        return []
    lines = [ln.strip() for ln in result.output.splitlines() if ln.strip()]
    said = "; ".join(lines[:3]) or f"exit code {result.exit_code}"
    return [f"{where}: ruff cannot read the workspace's configuration: {said}"]
