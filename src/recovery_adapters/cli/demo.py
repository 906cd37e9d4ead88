"""``recovery demo``: a small git workspace and plan, run through a failure, an
operator's decision and a completion, with each step narrated."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from uuid import UUID

from recovery_adapters.cli.output import status_text
from recovery_adapters.cli.wiring import UsageError, make_notifiers, make_runner
from recovery_adapters.git import GitWorkspace
from recovery_adapters.stores import store_for_workspace
from recovery_adapters.words import recovery_command
from recovery_core import Completed, Halted, load_plan

__all__ = ["run_demo"]

GENERATOR = textwrap.dedent(
    '''\
    """Stands in for an AI agent: writes the code of one batch.

    On its first attempt at batch 2 it makes a mistake (the exclamation mark is
    missing); told of the failure, its second attempt gets it right. It writes
    whole files, so a second attempt replaces what the first one wrote.
    """
    import os
    import sys
    from pathlib import Path

    batch = sys.argv[1]
    attempt = int(os.environ.get("RECOVERY_ATTEMPT", "1"))

    FUNCTIONS = {
        "greet": 'return f"Hello, {name}."',
        "farewell": 'return f"Goodbye, {name}."',
        "shout": 'return name.upper()' if attempt == 1 else 'return f"{name.upper()}!"',
    }
    EXPECTED = {"greet": "Hello, Ada.", "farewell": "Goodbye, Ada.", "shout": "ADA!"}
    WANTED = {"1": ["greet", "farewell"], "2": ["greet", "farewell", "shout"]}

    if batch in WANTED:
        names = WANTED[batch]
        Path("app/greet.py").write_text("".join(
            f"def {n}(name: str) -> str:\\n    {FUNCTIONS[n]}\\n\\n\\n" for n in names
        ).rstrip() + "\\n")
        Path("tests/test_greet.py").write_text(
            "import unittest\\n\\nfrom app import greet\\n\\n\\n"
            "class GreetTest(unittest.TestCase):\\n" + "".join(
                f"    def test_{n}(self) -> None:\\n"
                f"        self.assertEqual(greet.{n}(\\"Ada\\"), {EXPECTED[n]!r})\\n\\n"
                for n in names
            ).rstrip() + "\\n"
        )
    elif batch == "3":
        Path("docs").mkdir(exist_ok=True)
        Path("docs/usage.md").write_text("# Usage\\n\\n`greet`, `farewell` and `shout`.\\n")
    '''
)

GREET = 'def greet(name: str) -> str:\n    return f"Hello, {name}."\n'
TEST = textwrap.dedent(
    """\
    import unittest

    from app import greet


    class GreetTest(unittest.TestCase):
        def test_greet(self) -> None:
            self.assertEqual(greet.greet("Ada"), "Hello, Ada.")
    """
)


def _plan(python: str) -> dict[str, object]:
    def batch(batch_id: str, description: str) -> dict[str, object]:
        return {
            "batch_id": batch_id,
            "description": description,
            "component": "app/greet.py",
            "actions": [
                {"name": "generate", "run": [python, "tools/generate.py", batch_id]}
            ],
            "validation": [
                {"name": "syntax_check", "kind": "syntax"},
                {
                    "name": "unit_tests",
                    "kind": "command",
                    "run": [
                        python,
                        "-m",
                        "unittest",
                        "discover",
                        "-s",
                        "tests",
                        "-t",
                        ".",
                    ],
                    "timeout_s": 120,
                },
                {"name": "smoke", "kind": "smoke", "imports": ["app.greet"]},
            ],
            "commit_strategy": "commit",
            "verified": False,
            "status": "pending",
        }

    return {
        "plan_id": "demo",
        "generated_by": "recovery demo",
        "batches": [
            batch("1", "Add farewell()"),
            batch("2", "Add shout()"),
            batch("3", "Document the greetings"),
        ],
    }


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=Demo User",
            "-c",
            "user.email=demo@example.com",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def build_workspace(folder: Path) -> Path:
    """Makes the demo's git workspace and plan in ``folder``; returns the plan path."""
    (folder / "app").mkdir(parents=True)
    (folder / "tests").mkdir()
    (folder / "tools").mkdir()
    (folder / "app" / "__init__.py").write_text("")
    (folder / "app" / "greet.py").write_text(GREET)
    (folder / "tests" / "__init__.py").write_text("")
    (folder / "tests" / "test_greet.py").write_text(TEST)
    (folder / "tools" / "generate.py").write_text(GENERATOR)
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "config", "user.name", "Demo User")
    _git(folder, "config", "user.email", "demo@example.com")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "A greeting app")
    plan_path = folder / "plan.json"
    plan_path.write_text(json.dumps(_plan(sys.executable), indent=2) + "\n")
    return plan_path


def run_demo(directory: str | None) -> int:
    """Builds the demo in ``directory`` (a new temporary one by default) and runs it."""
    if directory:
        folder = Path(directory).resolve()
        if folder.exists() and any(folder.iterdir()):
            raise UsageError(
                f"--dir {folder} is not empty; the demo builds in a new folder"
            )
    else:
        folder = Path(tempfile.mkdtemp(prefix="recovery-demo-"))
    _say(f"recovery demo in {folder}")
    _say(
        "1. A git workspace with a small app, and a plan of three batches (plan.json)."
    )
    _say("   Each batch runs a generator (standing in for an AI agent), then checks")
    _say("   syntax, runs the unit tests and imports the module.")
    plan_path = build_workspace(folder)
    plan = load_plan(plan_path)
    workspace = GitWorkspace(folder, exclude=[plan_path])
    workspace.prepare()
    app = store_for_workspace(folder)
    notifiers = make_notifiers(["console"])
    # The commands named below, as they would be typed here (the virtual
    # environment's script when `recovery` is not on PATH).
    recovery = recovery_command()

    _say(f"\n2. Running the plan: `{recovery} run plan.json`")
    outcome = make_runner(
        app,
        plan,
        workspace=workspace,
        strategy=None,
        notifiers=notifiers,
    ).run()
    if not isinstance(outcome, Halted):
        _say(f"   unexpected: the run did not halt ({type(outcome).__name__})")
        return 1
    run_id = outcome.run_id
    _say(
        f"\n   The run halted (exit code 3). Batch {outcome.failure.batch_id} failed at "
        f"{outcome.failure.phase}.{outcome.failure.step}."
    )
    _say(f"\n3. `{recovery} status` shows every batch:")
    _say(
        textwrap.indent(
            status_text(outcome.view, app.store_hint(outcome.view.workspace)), "   "
        )
    )
    log = folder / ".recovery" / "logs" / "bootstrap_errors.log"
    _say(
        f"\n4. The failure log ({log.relative_to(folder)}), one JSON object per failure:"
    )
    entry = json.loads(log.read_text().splitlines()[-1])
    for key in ("batch_id", "attempt", "step", "component", "error"):
        _say(f"   {key}: {entry[key]}")
    plan_batch = json.loads(plan_path.read_text())["batches"][1]
    _say(
        f"   and plan.json now says batch 2 is {plan_batch['status']!r}: "
        f"{plan_batch['failure_reason']}"
    )

    _say("\n5. The operator reads the failure and decides to retry:")
    _say(
        f"   `{recovery} decide {run_id} 2 retry "
        "--reason 'generator told of the failing test'`"
    )
    app.decide(
        UUID(run_id),
        "2",
        "retry",
        operator="demo-operator",
        reason="generator told of the failing test",
    )

    _say(
        f"\n6. `{recovery} resume {run_id}` carries it out: "
        "batch 2 runs again as attempt 2."
    )
    final = make_runner(
        app,
        plan,
        workspace=workspace,
        strategy=None,
        notifiers=notifiers,
        run_id=UUID(run_id),
    ).run()
    _say("")
    _say(textwrap.indent(status_text(final.view), "   "))
    _say("\n7. Verified batches became commits with recovery trailers:")
    _say(
        textwrap.indent(
            _git(folder, "log", "--format=%h %s%n%(trailers:only,unfold)", "-n", "3"),
            "   ",
        )
    )
    if not isinstance(final, Completed):
        _say(f"   unexpected: the run ended {type(final).__name__}")
        return 1
    _say(
        f"The run completed. Look around: cd {shlex.quote(str(folder))} "
        f"&& {recovery} status && {recovery} log"
    )
    return 0
