"""Where a failure lies, from a Python traceback: the innermost frame in the
workspace, as ``path:line``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

__all__ = ["component_from_traceback", "first_line"]


def component_from_traceback(text: str, root: Path) -> str:
    """The innermost ``file:line`` of a Python traceback that lies in ``root``, as a
    path relative to it; empty when no frame does."""
    found = ""
    resolved = root.resolve()
    for path, lineno in _frames(text):
        if str(path).startswith("<"):
            continue  # <string>, <stdin>, <frozen importlib._bootstrap>: no file
        full = path if path.is_absolute() else resolved / path
        try:
            relative = full.resolve().relative_to(resolved)
        except (ValueError, OSError):
            continue
        found = f"{relative.as_posix()}:{lineno}" if lineno else relative.as_posix()
    return found


def _frames(text: str) -> Iterator[tuple[Path, str]]:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith('File "'):
            continue
        name, _, rest = stripped[len('File "') :].partition('"')
        lineno = rest.split("line ", 1)[1].split(",", 1)[0] if "line " in rest else ""
        yield Path(name), lineno


def first_line(text: str) -> str:
    """The first line of ``text`` that is not blank, stripped."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""
