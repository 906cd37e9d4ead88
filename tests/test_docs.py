"""The documentation under docs/ is executed, so that it cannot drift from the code.

Conventions for code blocks in docs/ (fenced with three backticks):

- ```python: executed. The blocks of one Markdown file run in order in one shared
  namespace (a later block may use what an earlier one defined), in a fresh
  temporary working directory per file. Every python block runs; there is no way
  to skip one.
- ```sh in docs/tutorial/first-run.md: the tutorial's shell session. Its blocks are
  joined, in order, into one bash script run with ``set -euo pipefail`` in a
  temporary folder, with the folder of this interpreter (the virtual environment's
  ``bin``, where ``recovery`` and ``python`` are installed) first on ``PATH``. A
  command line ending in a comment ``# exit N`` must exit with code N; every other
  command must succeed.
- ```sh followed by another word (```sh install, ```sh example) is shown, never
  run: install commands and illustrations. ```sh blocks in other files are not run.
- ```json plan: a complete plan; it must load with ``parse_plan``.
- Anything else (```text, ```json, ```toml) is output or illustration, not run.

Other tests here check that the reference pages name every event topic, command,
option, error class, plan key and failure log field that the code has, and that
every relative link between pages resolves.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from recovery_adapters.cli.app import build_parser
from recovery_core import errors
from recovery_core.plan import Action, Batch, ExecutionPlan, Step, parse_plan
from recovery_core.projections import failure_log_lines
from recovery_core.records import Failure
from recovery_core.run import Run
from support import git

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial" / "first-run.md"
REFERENCE = DOCS / "reference"

FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
EXIT_COMMENT = re.compile(r"^(?P<command>\S.*?)\s+#\s*exit\s+(?P<code>\d+)\b.*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@attrs.frozen
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int
    language: str
    tags: tuple[str, ...]
    body: str

    @property
    def where(self) -> str:
        """``docs/...md:LINE``, for messages and tracebacks."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of ``path``, in order."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        words = match["info"].split()
        found.append(
            Block(
                path=path,
                line=text.count("\n", 0, match.start()) + 2,
                language=words[0] if words else "",
                tags=tuple(words[1:]),
                body=match["body"],
            )
        )
    return found


def markdown_files() -> list[Path]:
    """Every Markdown file under docs/."""
    return sorted(DOCS.rglob("*.md"))


def files_with_python() -> list[Path]:
    """The Markdown files that have at least one python block."""
    return [
        p
        for p in markdown_files()
        if any(b.language == "python" for b in code_blocks(p))
    ]


@pytest.mark.parametrize(
    "path", files_with_python(), ids=lambda p: str(p.relative_to(DOCS))
)
def test_python_blocks_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every python block of this page runs without an error, in order, in one
    namespace, in an empty temporary working directory."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for block in code_blocks(path):
        if block.language != "python":
            continue
        code = compile(block.body, block.where, "exec")
        exec(code, namespace)  # noqa: S102 - running the docs is the point


def test_pages_with_examples_have_python() -> None:
    """The pages that promise an executable example have one (so that the test
    above cannot pass by finding none)."""
    expected = {
        DOCS / "how-to" / "write-a-strategy.md",
        DOCS / "how-to" / "write-a-strategy-or-notifier-plugin.md",
        DOCS / "how-to" / "rebuild-the-failure-log.md",
        DOCS / "how-to" / "automatic-recovery-policies.md",
        DOCS / "reference" / "plan.md",
        DOCS / "reference" / "events.md",
    }
    assert expected <= set(files_with_python())


def tutorial_script(blocks: list[Block]) -> str:
    """The tutorial's ```sh blocks as one bash script that checks exit codes."""
    lines = [
        "set -euo pipefail",
        "trap 'echo \"docs: command failed (exit $?) at script line $LINENO: "
        "$BASH_COMMAND\" >&2' ERR",
    ]
    for block in blocks:
        lines.append(f"# --- {block.where}")
        for line in block.body.splitlines():
            match = EXIT_COMMENT.match(line)
            if match is None:
                lines.append(line)
                continue
            command, code = match["command"], int(match["code"])
            quoted = shlex.quote(command)
            lines.append(
                f"__rc=0; {command} || __rc=$?; "
                f'if [ "$__rc" -ne {code} ]; then '
                f'echo "docs: expected exit {code}, got $__rc: "{quoted} >&2; '
                "exit 90; fi"
            )
    return "\n".join(lines) + "\n"


def tutorial_blocks() -> list[Block]:
    """The tutorial's shell blocks that run (plain ```sh, no second word)."""
    return [b for b in code_blocks(TUTORIAL) if b.language == "sh" and not b.tags]


def test_tutorial_session(tmp_path: Path) -> None:
    """The tutorial's shell session runs as written: the run halts with exit 3,
    status, log and the plan file say what the tutorial shows, a second decision
    exits 5, the retry completes with exit 0, and the result is what the tutorial
    describes (three commits with trailers, every batch verified, one failure in
    the log)."""
    blocks = tutorial_blocks()
    assert blocks, "the tutorial has no ```sh blocks to run"
    script = tutorial_script(blocks)
    assert "# exit 3" in "".join(b.body for b in blocks)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("RECOVERY_OPERATOR", None)
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"the tutorial's session failed (exit {done.returncode})\n"
        f"--- stderr\n{done.stderr[-6000:]}\n--- stdout\n{done.stdout[-3000:]}"
    )
    workspace = tmp_path / "textkit"
    plan = json.loads((workspace / "plan.json").read_text())
    assert [(b["status"], b["verified"]) for b in plan["batches"]] == [
        ("verified", True)
    ] * 3
    log = (workspace / ".recovery" / "logs" / "bootstrap_errors.log").read_text()
    entries = [json.loads(line) for line in log.splitlines()]
    assert [(e["batch_id"], e["step"]) for e in entries] == [
        ("1.2", "post_build_validation.unit_tests")
    ]
    subjects = git(workspace, "log", "--format=%s").splitlines()
    assert subjects[:3] == [
        "1.3: Add titled()",
        "1.2: Add word_count()",
        "1.1: Add slugify()",
    ]
    message = git(workspace, "log", "-1", "--format=%B", "HEAD~1")
    assert "Recovery-Batch: 1.2" in message
    assert "Recovery-Chain: " in message
    changed = git(workspace, "show", "--name-only", "--format=", "HEAD~1").split()
    assert sorted(changed) == ["app/count.py", "tools/agent.py"]
    assert "by ada" in done.stdout


def test_tutorial_states_exit_codes() -> None:
    """The tutorial checks the exit codes it talks about: 3 on the halt, 5 on a
    second decision, 0 on completion."""
    body = "".join(b.body for b in tutorial_blocks())
    codes = {int(m["code"]) for m in map(EXIT_COMMENT.match, body.splitlines()) if m}
    assert {0, 3, 5} <= codes


def test_json_plan_blocks_load() -> None:
    """Every ```json plan block in the docs is a valid plan."""
    found = 0
    for path in markdown_files():
        for block in code_blocks(path):
            if block.language == "json" and "plan" in block.tags:
                found += 1
                parse_plan(json.loads(block.body), source=block.where)
    assert found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of the headings of ``path`` (outside code blocks)."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links() -> Iterator[tuple[Path, str]]:
    """Every relative link in docs/ (outside code blocks)."""
    for path in markdown_files():
        text = FENCE.sub("", path.read_text(encoding="utf-8"))
        for match in LINK.finditer(text):
            target = match["target"]
            if not re.match(r"[a-z]+:", target):
                yield path, target


def test_relative_links_resolve() -> None:
    """Every relative link between pages names a file that exists, and an anchor
    that one of its headings has."""
    broken = []
    for path, target in links():
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"{path.relative_to(ROOT)}: {target}")
        elif (
            anchor
            and destination.suffix == ".md"
            and anchor not in anchors(destination)
        ):
            broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_links_to_docs_resolve() -> None:
    """The README's links into docs/ name pages that exist."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((docs/[^)#]+)", text)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing


def event_classes() -> list[type[Run.Event]]:
    """Every event class of the Run aggregate."""
    return [
        value
        for value in vars(Run).values()
        if isinstance(value, type)
        and issubclass(value, Run.Event)
        and value is not Run.Event
    ]


def test_events_reference_is_complete() -> None:
    """docs/reference/events.md names every event's topic and every field it
    carries."""
    text = (REFERENCE / "events.md").read_text(encoding="utf-8")
    classes = event_classes()
    assert len(classes) >= 15
    for cls in classes:
        assert f"`{cls.TOPIC}`" in text, cls.TOPIC
        fields = [
            name
            for name in getattr(cls, "__annotations__", {})
            if name not in ("TOPIC", "prev_digest", "digest")
        ]
        for name in fields:
            assert f"`{name}`" in text, f"{cls.TOPIC}.{name}"


def test_cli_reference_is_complete() -> None:
    """docs/reference/cli.md has a section for every command and names every
    option of it (hidden ones aside)."""
    text = (REFERENCE / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    action = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    commands: dict[str, argparse.ArgumentParser] = action.choices
    assert {"run", "status", "decide", "resume", "log", "demo"} <= set(commands)
    for name, sub in commands.items():
        assert f"## `recovery {name}" in text, name
        for option in sub._actions:
            if option.help == argparse.SUPPRESS:
                continue
            for string in option.option_strings:
                if string not in ("-h", "--help"):
                    assert f"`{string}" in text, f"{name} {string}"


def error_classes() -> list[type[errors.RecoveryError]]:
    """Every RecoveryError subclass the package defines."""
    import recovery_adapters.cli.app
    import recovery_adapters.cli.wiring
    import recovery_adapters.git.workspace

    seen: list[type[errors.RecoveryError]] = []
    stack: list[type[errors.RecoveryError]] = [errors.RecoveryError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    assert recovery_adapters.cli.app.main is not None  # every command's errors
    assert recovery_adapters.cli.wiring.UsageError in seen
    assert recovery_adapters.git.workspace.WorkspaceError in seen
    return [
        c
        for c in seen
        if c.__module__.startswith(("recovery_core", "recovery_adapters"))
    ]


def test_exit_codes_reference_is_complete() -> None:
    """docs/reference/exit-codes.md names every error class with the exit code the
    code gives it."""
    text = (REFERENCE / "exit-codes.md").read_text(encoding="utf-8")
    for cls in error_classes():
        row = next(
            (
                line
                for line in text.splitlines()
                if line.startswith(f"| `{cls.__name__}` |")
            ),
            None,
        )
        assert row is not None, f"no table row for {cls.__name__}"
        assert row.split("|")[2].strip() == str(cls.exit_code), (
            f"{cls.__name__} should be listed with exit code {cls.exit_code}: {row}"
        )


def test_plan_reference_is_complete() -> None:
    """docs/reference/plan.md names every key of the plan format."""
    text = (REFERENCE / "plan.md").read_text(encoding="utf-8")
    keys = set()
    for cls in (ExecutionPlan, Batch, Step, Action):
        keys |= {f.name for f in attrs.fields(cls)}
    keys -= {"raw", "source", "digest"}
    for key in sorted(keys):
        assert f"`{key}`" in text, key
    for kind in ("command", "syntax", "smoke", "surface"):
        assert f"`{kind}`" in text, kind


def test_failure_log_reference_is_complete() -> None:
    """docs/reference/failure-log.md names every field of a log line, as the
    projection writes it."""
    from recovery_core import RecoveryApp
    from recovery_core.projections import FAILURE_LOG_TOPICS

    plan = parse_plan(
        {
            "plan_id": "p",
            "batches": [
                {"batch_id": "1", "validation": [{"name": "s", "kind": "syntax"}]}
            ],
        }
    )
    app = RecoveryApp.open("memory://")
    run_id = app.start_run(plan, workspace=".")
    app.update(run_id, lambda run: run.start_batch("1", None))

    def fail(run: Run) -> None:
        run.step_failed(
            Failure(
                "1",
                1,
                step="s",
                phase="post_build_validation",
                kind="syntax",
                component="x.py:1",
                error="SyntaxError",
            )
        )
        run.mark_failed("1", 1, "post_build_validation.s failed: SyntaxError")

    app.update(run_id, fail)
    (line,) = failure_log_lines(app.notifications(FAILURE_LOG_TOPICS))
    entry = json.loads(line)
    text = (REFERENCE / "failure-log.md").read_text(encoding="utf-8")
    for key in entry:
        assert f"`{key}`" in text, key
    for key in entry["state"]:
        assert f"`{key}`" in text, f"state.{key}"
