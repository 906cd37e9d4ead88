"""What would stop a plan before a single step could judge anything: the checks
of ``recovery check``, which ``recovery run`` also makes before its first event.

Beyond what loading the plan refuses, it finds a command whose program cannot
be found, a module named by a ``surface`` or ``smoke`` step that does not exist,
and a ``lint`` step whose ruff configuration ruff cannot read. Nothing is
written: the programs are looked up, the modules found on disk (their code is
never run) and ruff asked to read its configuration only.

A batch may make what a step names (a bootstrap builds its application that
way), so what a batch could make is a *note*, not a problem: a module that does
not exist yet in a package that does (``app.extra`` beside ``app/``), a program
by a path in the workspace. It is no note either when a batch up to the step's
names the file as its ``component``. What no batch can make is a problem: a
program looked up on ``PATH`` that is not there, a program outside the
workspace, a module whose top-level package exists nowhere.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import attrs

from recovery_adapters.validation.lint import find_ruff
from recovery_adapters.validation.process import run_process
from recovery_adapters.validation.surface import SOURCE_ROOTS, module_exists
from recovery_core.plan import ExecutionPlan, Step

__all__ = ["Preflight", "preflight"]

#: How long ruff may take to read its configuration.
_RUFF_TIMEOUT_S = 60.0


@attrs.frozen
class Preflight:
    """What the checks found, each with its path in the plan: ``problems``
    stop the plan; ``notes`` name what a batch has to make first."""

    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@attrs.define
class _Found:
    problems: list[str] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)


def preflight(plan: ExecutionPlan, root: Path) -> Preflight:
    """Checks ``plan`` against the workspace ``root`` (see the module's doc)."""
    found = _Found()
    made: set[str] = set()  # the components of the batches so far
    lint_checked = False
    for i, batch in enumerate(plan.batches):
        if batch.component:
            made.add(PurePosixPath(batch.component).as_posix())
        for j, action in enumerate(batch.actions):
            _program(found, f"batches[{i}].actions[{j}].run[0]", action.run, root, made)
        for j, step in enumerate(batch.validation):
            where = f"batches[{i}].validation[{j}]"
            if step.run:
                _program(found, f"{where}.run[0]", step.run, root, made)
            _modules(found, where, step, root, made)
            if step.kind == "lint" and not lint_checked:
                lint_checked = True
                found.problems += _lint_configuration(where, root)
    return Preflight(tuple(found.problems), tuple(found.notes))


def _program(
    found: _Found, where: str, argv: tuple[str, ...], root: Path, made: set[str]
) -> None:
    program = argv[0]
    if "/" not in program:
        if shutil.which(program) is None:
            found.problems.append(f"{where}: program {program!r} not found on PATH")
        return
    path = Path(program) if Path(program).is_absolute() else root / program
    if path.is_file():
        if not os.access(path, os.X_OK):
            found.problems.append(f"{where}: {program!r} is not executable")
        return
    relative = _inside(path, root)
    if relative is None:
        found.problems.append(f"{where}: program {program!r} not found")
    elif relative not in made:
        found.notes.append(
            f"{where}: program {program!r} does not exist yet; a batch before "
            "this step must make it"
        )


def _modules(found: _Found, where: str, step: Step, root: Path, made: set[str]) -> None:
    for path, module in _named_modules(where, step):
        if module_exists(root, module) or _made_module(module, made):
            continue
        smoke = step.kind == "smoke"
        if smoke and _installed(module):
            continue
        top = module.split(".")[0]
        if "." in module and (module_exists(root, top) or (smoke and _installed(top))):
            found.notes.append(
                f"{path}: module {module!r} does not exist yet; a batch up to "
                "this step must make it"
            )
            continue
        folder = module.replace(".", "/")
        looked = "importable" if smoke else "in the workspace"
        found.problems.append(
            f"{path}: no module {module!r} {looked} (no {folder}.py or {folder}/ "
            "at the top of the workspace or below src/, nor its package "
            f"{top!r}, and no batch up to this one names it as its component)"
        )


def _named_modules(where: str, step: Step) -> Iterator[tuple[str, str]]:
    if step.kind == "surface":
        for k, module in enumerate(step.modules):
            yield f"{where}.modules[{k}]", module
    elif step.kind == "smoke":
        for k, module in enumerate(step.imports):
            yield f"{where}.imports[{k}]", module


def _made_module(module: str, made: set[str]) -> bool:
    folder = module.replace(".", "/")
    for base in SOURCE_ROOTS:
        stem = f"{base}{folder}"
        for component in made:
            if component in (f"{stem}.py", stem) or component.startswith(f"{stem}/"):
                return True
    return False


def _inside(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


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
    result = run_process(argv, cwd=root, timeout_s=_RUFF_TIMEOUT_S, supervised=False)
    if result.exit_code == 0:
        return []
    lines = [ln.strip() for ln in result.output.splitlines() if ln.strip()]
    said = "; ".join(lines[:3]) or f"exit code {result.exit_code}"
    return [f"{where}: ruff cannot read the workspace's configuration: {said}"]
