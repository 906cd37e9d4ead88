"""What the common test runners say failed, read from their output: pytest's
short test summary (``FAILED tests/test_x.py::test_a - AssertionError: ...``)
and unittest's failure headers (``FAIL: test_a (tests.test_x.XTest.test_a)``
with the last line of the traceback under each).

A command step that runs a test suite then reports the failed tests, each with
its first error line, instead of only the exit code and the output's last line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import attrs

__all__ = ["FailedTest", "failed_tests", "summary"]

#: How many failed tests the error names; the count covers them all.
NAMED: Final = 5

_PYTEST = re.compile(r"^(?:FAILED|ERROR) (?P<id>\S+)(?: - (?P<error>.*))?$")
_UNITTEST = re.compile(r"^(?:FAIL|ERROR): (?P<test>\S+) \((?P<where>[^)]*)\)")
_RULE = re.compile(r"^(?:=+|-+)$")


@attrs.frozen
class FailedTest:
    """One failed test: its id as the runner names it, and its first error line."""

    test_id: str
    error: str

    def __str__(self) -> str:
        return f"{self.test_id} ({self.error})" if self.error else self.test_id


def failed_tests(output: str) -> list[FailedTest]:
    """The failed tests that pytest's or unittest's output lists, in order;
    empty when the output is neither's."""
    lines = output.splitlines()
    found = _from_pytest(lines)
    return found if found else _from_unittest(lines)


def _from_pytest(lines: Sequence[str]) -> list[FailedTest]:
    try:
        start = next(
            i for i, line in enumerate(lines) if "short test summary info" in line
        )
    except StopIteration:
        return []
    found = []
    for line in lines[start + 1 :]:
        match = _PYTEST.match(line.strip())
        if match is None:
            if line.startswith("="):
                break
            continue
        error = (match["error"] or "").strip()
        if not error or error.endswith("..."):  # cut to the terminal's width
            error = _pytest_section_error(lines[:start], match["id"]) or error
        found.append(FailedTest(match["id"], error))
    return found


def _pytest_section_error(lines: Sequence[str], test_id: str) -> str:
    """The first ``E   `` line of the failure section of ``test_id``
    (headed ``____ Class.test ____``), in full."""
    title = ".".join(test_id.split("::")[1:])
    inside = False
    for line in lines:
        stripped = line.strip()
        # A section's header; "_ _ _ _" between its frames is not one.
        if stripped.startswith("__") and stripped.strip("_ "):
            inside = stripped.strip("_ ") == title
        elif inside and line.startswith("E "):
            return line[1:].strip()
    return ""


def _from_unittest(lines: Sequence[str]) -> list[FailedTest]:
    found = []
    for index, line in enumerate(lines):
        match = _UNITTEST.match(line)
        if match is None:
            continue
        where = match["where"]
        test_id = where if where.endswith(match["test"]) else f"{where}.{match['test']}"
        found.append(FailedTest(test_id, _last_error_line(lines, index + 1)))
    return found


def _last_error_line(lines: Sequence[str], start: int) -> str:
    """The exception line of the block that starts at ``start``: the last line
    that is not indented before the next rule or header."""
    last = ""
    for line in lines[start:]:
        if _UNITTEST.match(line) or (last and _RULE.match(line.strip())):
            break
        if (
            line.strip()
            and not line.startswith((" ", "\t"))
            and not _RULE.match(line.strip())
            and not line.startswith("Traceback")
        ):
            last = line.strip()
    return last


def summary(tests: Sequence[FailedTest]) -> str:
    """``2 tests failed: a (error); b (error)``, naming at most :data:`NAMED`."""
    noun = "test" if len(tests) == 1 else "tests"
    named = "; ".join(str(t) for t in tests[:NAMED])
    more = f"; and {len(tests) - NAMED} more" if len(tests) > NAMED else ""
    return f"{len(tests)} {noun} failed: {named}{more}"
