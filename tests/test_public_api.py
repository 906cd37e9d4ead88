"""The public API is small, sorted, documented and referenced: every exported
name has a docstring and a row in docs/reference/api.md."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

import recovery_adapters
import recovery_core

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "api.md"
PACKAGES = [recovery_core, recovery_adapters]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_all_is_explicit_sorted_and_importable(package: types.ModuleType) -> None:
    """__all__ is sorted, has no duplicates, and every name in it exists."""
    names = list(package.__all__)
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(package, name), name


def _public() -> list[tuple[str, object]]:
    return [(name, getattr(p, name)) for p in PACKAGES for name in p.__all__]


@pytest.mark.parametrize(("name", "obj"), _public(), ids=[n for n, _ in _public()])
def test_every_public_name_is_documented(name: str, obj: object) -> None:
    """Each class and function has its own docstring, and each name has a row in
    the API reference."""
    if inspect.isclass(obj) or inspect.isfunction(obj):
        doc = obj.__doc__
        assert doc and doc.strip(), f"{name} has no docstring"
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                assert member.__doc__, f"{name}.{attr} has no docstring"
    assert f"| `{name}` |" in REFERENCE.read_text(), (
        f"{name} is not in {REFERENCE.name}"
    )


def test_core_imports_nothing_that_touches_the_outside_world() -> None:
    """recovery_core never imports git, subprocess-using modules, or the adapters."""
    root = Path(recovery_core.__file__).parent
    forbidden = re.compile(
        r"^\s*(import|from)\s+(git|subprocess|rich|recovery_adapters)\b", re.M
    )
    for path in root.glob("*.py"):
        found = forbidden.search(path.read_text())
        assert found is None, f"{path.name}: {found.group(0) if found else ''}"


@pytest.mark.parametrize(("name", "obj"), _public(), ids=[n for n, _ in _public()])
def test_every_public_name_is_used_by_a_test(name: str, obj: object) -> None:
    """Each public name is used by at least one test besides this file (as a host
    or an integrator would use it), so none is exported untested."""
    here = Path(__file__).resolve()
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    users = [
        path.name
        for path in here.parent.glob("test_*.py")
        if path != here and pattern.search(path.read_text())
    ]
    assert users, f"no test uses {name}"


def test_the_testing_kit_is_documented_and_referenced() -> None:
    """recovery_core.testing (a public module, not re-exported) has an
    __all__ (sorted as ruff's RUF022 sorts it: constants first) whose every
    name exists, has a docstring when it is a class or a function, and has a
    row in the API reference."""
    from recovery_core import testing

    names = list(testing.__all__)
    assert len(set(names)) == len(names)
    text = REFERENCE.read_text()
    for name in names:
        obj = getattr(testing, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"
        assert f"| `{name}` |" in text, f"{name} is not in {REFERENCE.name}"
