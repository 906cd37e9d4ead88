"""An example agent for the ``architect-agent`` strategy: it fixes a Python
syntax error by simple rules, with no model behind it.

It reads the trigger (the JSON on standard input, the same as the file named
by ``RECOVERY_TRIGGER``), takes the file and line of the error, and tries, on
that line and the one before it: a missing ``:`` after ``def``, ``class``,
``if``, ``for``, ``while``, ``with``, ``try``, ``except`` and the rest; then
the closing brackets a line leaves open. The first change that makes the file
parse is the answer: ``{"patch": "<unified diff>", "analysis": "..."}`` on
standard output, exit 0. When no rule helps it exits 1: no proposal.

Use it with ``recovery run plan.json --agent "python examples/agents/fix_syntax.py"``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = re.compile(
    r"^\s*(async\s+def|def|class|if|elif|else|for|async\s+for|while|with|"
    r"async\s+with|try|except|finally|match|case)\b"
)
_PAIRS = {"(": ")", "[": "]", "{": "}"}


def read_trigger() -> dict[str, Any]:
    """The trigger: standard input, else the file ``RECOVERY_TRIGGER`` names."""
    text = sys.stdin.read()
    if not text.strip():
        text = Path(os.environ["RECOVERY_TRIGGER"]).read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def parses(source: str, name: str) -> bool:
    """Whether ``source`` is valid Python."""
    try:
        compile(source, name, "exec", dont_inherit=True)
    except SyntaxError:
        return False
    return True


def open_brackets(line: str) -> str:
    """The closing brackets that ``line`` leaves open, innermost first
    (strings and comments are not looked into)."""
    stack: list[str] = []
    quote = ""
    for char in line:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#":
            break
        elif char in _PAIRS:
            stack.append(_PAIRS[char])
        elif stack and char == stack[-1]:
            stack.pop()
    return "".join(reversed(stack))


def candidates(line: str) -> Iterator[tuple[str, str]]:
    """Fixed versions of ``line``, each with what was fixed."""
    body, newline = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")) :]
    code, _, comment = body.partition("  #")
    code = code.rstrip()
    closing = open_brackets(code)
    if closing:
        fixed = code + closing
        yield (
            fixed + (f"  #{comment}" if comment else "") + newline,
            (f"closed the bracket(s) left open ({closing})"),
        )
        if _BLOCK.match(code) and not fixed.endswith(":"):
            yield fixed + ":" + newline, f"closed {closing} and added the missing ':'"
    if _BLOCK.match(code) and not code.endswith(":"):
        yield (
            code + ":" + (f"  #{comment}" if comment else "") + newline,
            ("added the missing ':' at the end of the block's header"),
        )


def fix(source: str, name: str, line_number: int) -> tuple[str, str] | None:
    """``source`` fixed around ``line_number``, and what was done; None when
    no rule makes it parse."""
    lines = source.splitlines(keepends=True)
    for number in (line_number, line_number - 1, line_number + 1):
        if not 1 <= number <= len(lines):
            continue
        for replacement, what in candidates(lines[number - 1]):
            trial = [*lines[: number - 1], replacement, *lines[number:]]
            fixed = "".join(trial)
            if parses(fixed, name):
                return fixed, f"{name} line {number}: {what}"
    return None


def unified_diff(path: str, before: str, after: str) -> str:
    """The change as ``git diff`` prints it (``git apply`` takes it)."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    lines = list(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"))
    out: list[str] = []
    for line in lines:
        if line.endswith("\n"):
            out.append(line)
        else:  # the file's last line has no newline
            out.append(line + "\n\\ No newline at end of file\n")
    return f"diff --git a/{path} b/{path}\n" + "".join(out)


def syntax_error_line(source: str, name: str) -> int | None:
    """The line Python's parser stops at, if it does."""
    try:
        compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc.lineno
    return None


def main() -> int:
    trigger = read_trigger()
    files: dict[str, str | None] = trigger.get("files") or {}
    where = trigger.get("error_location") or {}
    first = where.get("file")
    order = [first] if isinstance(first, str) and first in files else []
    order += [path for path in files if path not in order and path.endswith(".py")]
    for path in order:
        source = files.get(path)
        if not isinstance(source, str):
            continue
        line = syntax_error_line(source, path)
        if line is None:
            continue
        fixed = fix(source, path, line)
        if fixed is None:
            continue
        new_source, what = fixed
        answer = {"patch": unified_diff(path, source, new_source), "analysis": what}
        sys.stdout.write(json.dumps(answer) + "\n")
        return 0
    sys.stderr.write("fix_syntax: no rule fixes this failure\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
