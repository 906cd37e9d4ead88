"""The ``architect-agent`` strategy through the real ``recovery`` command in a
real git repository: the trigger, the example agents, the checks a proposed
patch must pass, the sandbox pre-validation, and a ``recover`` decision that
applies the fix as the next attempt."""

from __future__ import annotations

import http.server
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest

from recovery_adapters import ArchitectAgentStrategy, GitWorkspace, architect_agent
from recovery_core import (
    CheckedPatch,
    Completed,
    Halted,
    PatchRefused,
    RecoveryApp,
    RecoveryStrategy,
    Sandbox,
    load_plan,
)
from recovery_core.run import Run
from support import (
    APP_CALC,
    git,
    run_cli,
    unit_tests_step,
    write_file_action,
    write_plan,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "agents"
#: The batch's change: a new function, and a colon lost from add()'s header.
FAULTY_CALC = (
    "def add(a: int, b: int) -> int\n"
    "    return a + b\n"
    "\n"
    "\n"
    "def double(x: int) -> int:\n"
    "    return 2 * x\n"
)
FIXED_CALC = FAULTY_CALC.replace("-> int\n", "-> int:\n", 1)
#: The fix as a unified diff against the faulty tree.
FIX_PATCH = """\
diff --git a/app/calc.py b/app/calc.py
--- a/app/calc.py
+++ b/app/calc.py
@@ -1,2 +1,2 @@
-def add(a: int, b: int) -> int
+def add(a: int, b: int) -> int:
     return a + b
"""
TRIGGER_KEYS = {
    "run_id",
    "plan_id",
    "batch_id",
    "attempt",
    "step",
    "component",
    "error",
    "traceback",
    "changed_files",
    "diff",
    "files",
    "code_around_error",
    "quarantine_ref",
    "failure_log_entry",
}


def python_command(*args: str | Path) -> str:
    """A command line running this interpreter with ``args``."""
    return shlex.join([sys.executable, *map(str, args)])


def plan(repo: Path, *, log: Path | None = None, **batch: Any) -> Path:
    """A plan of one batch that writes the faulty calc.py, then checks the
    syntax and runs the unit tests; with ``log``, a first step notes the
    folder it runs in (the workspace, or a sandbox)."""
    steps: list[dict[str, Any]] = []
    if log is not None:
        code = f"import os; open({str(log)!r}, 'a').write(os.getcwd() + '\\n')"
        steps.append(
            {"name": "where", "kind": "command", "run": [sys.executable, "-c", code]}
        )
    steps += [{"name": "syntax_check", "kind": "syntax"}, unit_tests_step()]
    return write_plan(
        repo / "plan.json",
        {
            "plan_id": "agent-plan",
            "batches": [
                {
                    "batch_id": "b1",
                    "description": "add double()",
                    "commit_strategy": "commit",
                    "actions": [write_file_action("gen", "app/calc.py", FAULTY_CALC)],
                    "validation": steps,
                    **batch,
                }
            ],
        },
    )


def events(repo: Path) -> list[Run.Event]:
    """Every event of the workspace's latest run."""
    app = RecoveryApp.open(f"sqlite:///{repo / '.recovery' / 'events.sqlite3'}")
    summary = app.runs()[-1]
    return list(app.history(UUID(summary.run_id)))


def attempted(repo: Path) -> Run.RecoveryAttempted:
    """The latest ``RecoveryAttempted`` of the workspace's latest run."""
    found = [e for e in events(repo) if isinstance(e, Run.RecoveryAttempted)]
    assert found, "no RecoveryAttempted recorded"
    return found[-1]


def user_files(repo: Path) -> dict[str, bytes]:
    """Every file of the working tree but git's and ours (the plan file,
    whose status keys the library writes, aside), by path."""
    found: dict[str, bytes] = {}
    for path in sorted(repo.rglob("*")):
        relative = path.relative_to(repo)
        if relative.parts[0] in (".git", ".recovery", "plan.json") or path.is_dir():
            continue
        found[relative.as_posix()] = (
            path.readlink().as_posix().encode()
            if path.is_symlink()
            else path.read_bytes()
        )
    return found


@pytest.fixture
def temp_dir(tmp_path: Path) -> Path:
    """The TMPDIR of the commands run: where sandboxes are made."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def run_env(temp_dir: Path, **extra: str) -> dict[str, str]:
    return {"TMPDIR": str(temp_dir), **extra}


def test_example_agent_fix_is_prevalidated_in_a_sandbox_and_recovered(
    repo: Path, tmp_path: Path, temp_dir: Path
) -> None:
    """A run fails on a syntax error; fix_syntax.py's patch passes the checks
    and the batch's own steps in a sandbox worktree outside the repository,
    which is gone afterwards; `decide recover` and `resume` apply it as attempt
    2 and the run completes with the fix in the batch's commit."""
    where = tmp_path / "where.log"
    plan(repo, log=where)
    (repo / "notes.txt").write_text("the user's own untracked work\n")
    agent = python_command(EXAMPLES / "fix_syntax.py")
    done = run_cli(
        "run", "plan.json", "--agent", agent, cwd=repo, env=run_env(temp_dir)
    )
    assert done.returncode == 3, done.stderr

    answer = attempted(repo)
    assert answer.strategy == "architect-agent"
    outcome, details = answer.outcome, answer.outcome["details"]
    assert outcome["proposal"] is True
    assert outcome["patch_digest"].startswith("sha256:")
    assert outcome["prevalidation"] == "passed"
    assert [c["passed"] for c in details["checks"]] == [True] * len(details["checks"])
    assert {c["check"] for c in details["checks"]} >= {
        "inside",
        "git_dir",
        "symlink",
        "applies",
    }
    assert details["patch_files"] == ["app/calc.py"]
    assert "missing ':'" in details["agent_analysis"]
    assert (
        details["agent"]["source"] == "--agent" and details["agent"]["exit_code"] == 0
    )
    pre = details["prevalidation"]
    assert [s["name"] for s in pre["steps"]] == ["where", "syntax_check", "unit_tests"]
    assert pre["passed"] and pre["removed"]

    # The steps ran twice: in the workspace (the failure), then in the sandbox.
    workspace_cwd, sandbox_cwd = where.read_text().splitlines()
    assert Path(workspace_cwd) == repo.resolve()
    sandbox = Path(sandbox_cwd)
    assert sandbox == Path(pre["sandbox"])
    assert not sandbox.is_relative_to(repo.resolve())
    assert sandbox.is_relative_to(temp_dir.resolve())
    assert not sandbox.exists() and list(temp_dir.iterdir()) == []
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not (repo / ".git" / "worktrees").exists() or not any(
        (repo / ".git" / "worktrees").iterdir()
    )
    # Nothing of the fault or the fix is in the user's tree until recover.
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert (repo / "notes.txt").read_text() == "the user's own untracked work\n"
    assert "proposed a patch" in done.stderr and "pre-validation" in done.stderr
    assert "decide recover" in done.stderr

    decided = run_cli("decide", "latest", "b1", "recover", cwd=repo)
    assert decided.returncode == 0, decided.stderr
    resumed = run_cli("resume", "latest", cwd=repo, env=run_env(temp_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "build.recover" in resumed.stderr
    assert git(repo, "show", "HEAD:app/calc.py") == FIXED_CALC
    message = git(repo, "log", "-1", "--format=%B")
    assert "Recovery-Batch: b1" in message
    assert (repo / "app" / "calc.py").read_text() == FIXED_CALC
    assert (repo / "notes.txt").exists()
    assert git(repo, "status", "--porcelain", "--", "app") == ""
    status = json.loads(run_cli("status", "--json", cwd=repo).stdout)
    assert status["state"] == "completed"
    assert status["batches"][0]["attempts"] == 2


def test_trigger_file_holds_the_failure_context(
    repo: Path, tmp_path: Path, temp_dir: Path
) -> None:
    """The agent gets the trigger's JSON on stdin, and its path in
    RECOVERY_TRIGGER (under .recovery/, out of git): the failure, the diff,
    the faulty files, the code around the error, the failure-log entry."""
    seen = tmp_path / "seen"
    script = tmp_path / "agent.py"
    script.write_text(
        "import json, os, sys, pathlib\n"
        f"out = pathlib.Path({str(seen)!r})\n"
        "(out / 'stdin.json').write_text(sys.stdin.read())\n"
        "(out / 'path').write_text(os.environ['RECOVERY_TRIGGER'])\n"
        "(out / 'cwd').write_text(os.getcwd())\n"
        "sys.exit(1)\n"
    )
    seen.mkdir()
    plan(repo)
    done = run_cli(
        "run",
        "plan.json",
        "--agent",
        python_command(script),
        cwd=repo,
        env=run_env(temp_dir),
    )
    assert done.returncode == 3, done.stderr
    trigger_file = Path((seen / "path").read_text())
    assert trigger_file == repo / ".recovery" / "recovery_plan_trigger.json"
    assert Path((seen / "cwd").read_text()) == repo.resolve()
    trigger = json.loads((seen / "stdin.json").read_text())
    assert json.loads(trigger_file.read_text()) == trigger
    assert set(trigger) >= TRIGGER_KEYS
    reference = EXAMPLES.parents[1] / "docs" / "reference" / "agent-protocol.md"
    documented = reference.read_text(encoding="utf-8")
    assert [key for key in trigger if f"| `{key}` |" not in documented] == []
    assert trigger["batch_id"] == "b1" and trigger["attempt"] == 1
    assert trigger["step"] == "post_build_validation.syntax_check"
    assert trigger["changed_files"] == ["app/calc.py"]
    assert trigger["files"] == {"app/calc.py": FAULTY_CALC}
    assert (
        "-def add(a: int, b: int) -> int:\n+def add(a: int, b: int) -> int\n"
        in trigger["diff"]
    )
    assert trigger["diff"].startswith("diff --git a/app/calc.py b/app/calc.py")
    code = trigger["code_around_error"]
    assert (code["file"], code["line"]) == ("app/calc.py", 1)
    assert code["lines"][0] == "def add(a: int, b: int) -> int"
    assert trigger["quarantine_ref"].endswith("/b1/1/quarantine")
    assert trigger["failure_log_entry"]["step"] == "post_build_validation.syntax_check"
    assert (
        trigger["failure_log_entry"]["state"]["quarantine_ref"]
        == trigger["quarantine_ref"]
    )
    assert git(
        repo, "status", "--porcelain", "--ignored", "--", ".recovery"
    ).strip() in (
        "",
        "!! .recovery/",
    )
    outcome = attempted(repo).outcome
    assert outcome["proposal"] is False
    assert "exited with 1: no proposal" in outcome["analysis"]


def test_without_an_agent_the_analysis_names_file_line_and_hunk(
    repo: Path, temp_dir: Path
) -> None:
    """With no agent command the strategy still quarantines, restores and
    says where the error is and which hunk of the batch introduced it."""
    plan(repo)
    env = run_env(temp_dir)
    done = run_cli(
        "run", "plan.json", "--strategy", "architect-agent", cwd=repo, env=env
    )
    assert done.returncode == 3, done.stderr
    outcome = attempted(repo).outcome
    assert outcome["proposal"] is False and outcome["patch_digest"] is None
    assert "the error is at app/calc.py line 1" in outcome["analysis"]
    assert "+def add(a: int, b: int) -> int" in outcome["analysis"]
    details = outcome["details"]
    assert details["location"] == {"file": "app/calc.py", "line": 1}
    assert details["hunk"].startswith("@@ -1,2 +1,6 @@")
    assert "-def add(a: int, b: int) -> int:" in details["hunk"]
    assert "no agent command" in outcome["analysis"]
    assert (repo / "app" / "calc.py").read_text() == APP_CALC
    assert (repo / ".recovery" / "recovery_plan_trigger.json").is_file()
    refused = run_cli("decide", "latest", "b1", "recover", cwd=repo)
    assert refused.returncode == 2


def patch_agent(tmp_path: Path, patch: str) -> str:
    """An agent that answers with ``patch``."""
    (tmp_path / "answer.diff").write_text(patch)
    script = tmp_path / "patch_agent.py"
    script.write_text(
        "import sys, pathlib\n"
        "sys.stdin.read()\n"
        f"sys.stdout.write(pathlib.Path({str(tmp_path / 'answer.diff')!r}).read_text())\n"
    )
    return python_command(script)


GIT_DIR_PATCH = """\
diff --git a/.git/hooks/pre-commit b/.git/hooks/pre-commit
new file mode 100755
--- /dev/null
+++ b/.git/hooks/pre-commit
@@ -0,0 +1,2 @@
+#!/bin/sh
+echo pwned
"""
OUTSIDE_PATCH = """\
diff --git a/../outside.txt b/../outside.txt
new file mode 100644
--- /dev/null
+++ b/../outside.txt
@@ -0,0 +1 @@
+escaped
"""
SYMLINK_PATCH = """\
diff --git a/app/secrets b/app/secrets
new file mode 120000
--- /dev/null
+++ b/app/secrets
@@ -0,0 +1 @@
+../../../etc
\\ No newline at end of file
"""
ABSOLUTE_LINK_PATCH = SYMLINK_PATCH.replace("+../../../etc", "+/etc/passwd")
NOT_APPLYING_PATCH = """\
diff --git a/app/calc.py b/app/calc.py
--- a/app/calc.py
+++ b/app/calc.py
@@ -1,2 +1,2 @@
-def multiply(a: int, b: int) -> int
+def multiply(a: int, b: int) -> int:
     return a * b
"""


@pytest.mark.parametrize(
    ("patch", "check", "words"),
    [
        (GIT_DIR_PATCH, "git_dir", "under .git/"),
        (OUTSIDE_PATCH, "inside", "outside the workspace"),
        (SYMLINK_PATCH, "symlink", "symbolic link"),
        (ABSOLUTE_LINK_PATCH, "symlink", "outside the workspace"),
        (NOT_APPLYING_PATCH, "applies", "does not apply to the faulty tree"),
    ],
    ids=["git-dir", "outside", "symlink-out", "absolute-symlink", "not-applying"],
)
def test_refused_patch_has_its_reason_and_leaves_the_tree_alone(
    repo: Path, tmp_path: Path, temp_dir: Path, patch: str, check: str, words: str
) -> None:
    """A patch touching .git/, a path outside the workspace, a symbolic link
    out, or one that does not apply, is refused with its reason in the
    events; nothing of it reaches the user's tree (byte for byte as before),
    no proposal is kept and recover cannot be decided."""
    plan(repo)
    (repo / "notes.txt").write_text("mine\n")
    (repo / "tests" / "test_calc.py").write_text(
        (repo / "tests" / "test_calc.py").read_text() + "# my edit\n"
    )
    before = user_files(repo)
    hooks = sorted((repo / ".git" / "hooks").iterdir())
    agent = patch_agent(tmp_path, patch)
    done = run_cli(
        "run", "plan.json", "--agent", agent, cwd=repo, env=run_env(temp_dir)
    )
    assert done.returncode == 3, done.stderr
    outcome = attempted(repo).outcome
    details = outcome["details"]
    assert outcome["proposal"] is False
    assert details["refused"]["check"] == check
    assert words in details["refused"]["reason"]
    assert details["checks"][-1] == {
        "check": check,
        "what": details["checks"][-1]["what"],
        "passed": False,
        "reason": details["refused"]["reason"],
    }
    assert "refused" in outcome["analysis"] and words in outcome["analysis"]
    assert details["patch_digest"].startswith("sha256:")
    assert "proposal_ref" not in details and "prevalidation" not in details
    assert user_files(repo) == before
    assert sorted((repo / ".git" / "hooks").iterdir()) == hooks
    assert not (repo.parent / "outside.txt").exists()
    assert not (repo / "app" / "secrets").is_symlink()
    assert "proposal" not in git(repo, "for-each-ref", "refs/recovery/")
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert list(temp_dir.iterdir()) == []
    decided = run_cli("decide", "latest", "b1", "recover", cwd=repo)
    assert decided.returncode == 2


def test_a_fix_that_fails_prevalidation_is_recorded_as_such(
    repo: Path, tmp_path: Path, temp_dir: Path
) -> None:
    """A patch that applies but breaks the unit tests is kept as a proposal
    with its failed pre-validation (the step and its error) recorded."""
    broken = """\
diff --git a/app/calc.py b/app/calc.py
--- a/app/calc.py
+++ b/app/calc.py
@@ -1,3 +1,3 @@
-def add(a: int, b: int) -> int
-    return a + b
+def add(a: int, b: int) -> int:
+    return a + b + 1
 \n"""
    plan(repo)
    agent = patch_agent(tmp_path, broken)
    done = run_cli(
        "run", "plan.json", "--agent", agent, cwd=repo, env=run_env(temp_dir)
    )
    assert done.returncode == 3, done.stderr
    outcome = attempted(repo).outcome
    assert outcome["proposal"] is True, outcome["analysis"]
    assert outcome["prevalidation"].startswith("failed at unit_tests")
    steps = outcome["details"]["prevalidation"]["steps"]
    assert [(s["name"], s["passed"]) for s in steps] == [
        ("syntax_check", True),
        ("unit_tests", False),
    ]
    assert "pre-validation in a sandbox worktree: failed at unit_tests" in done.stderr
    assert list(temp_dir.iterdir()) == []


def test_an_agent_that_hangs_is_killed_at_its_timeout(
    repo: Path, tmp_path: Path, temp_dir: Path
) -> None:
    """The plan's agent (with its timeout_s) that never answers is ended with
    its whole process group at the timeout; there is no proposal."""
    pids = tmp_path / "pids"
    script = tmp_path / "hang.py"
    script.write_text(
        "import os, subprocess, sys, time, pathlib\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"pathlib.Path({str(pids)!r}).write_text(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(600)\n"
    )
    plan(repo, agent={"run": [sys.executable, str(script)], "timeout_s": 1})
    started = time.monotonic()
    done = run_cli(
        "run",
        "plan.json",
        "--strategy",
        "architect-agent",
        cwd=repo,
        env=run_env(temp_dir),
    )
    assert done.returncode == 3, done.stderr
    assert time.monotonic() - started < 60
    details = attempted(repo).outcome["details"]
    assert details["agent"]["timed_out"] is True
    assert details["agent"]["source"] == "plan"
    assert details["agent"]["exit_code"] is None
    assert "killed at its timeout (1 s)" in attempted(repo).outcome["analysis"]
    for pid in map(int, pids.read_text().split()):
        assert not _alive(pid), f"process {pid} of the agent's group survived"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie whose parent has not reaped it yet is gone for our purposes.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


class _Stub(http.server.BaseHTTPRequestHandler):
    """A chat-completions endpoint that answers with a canned diff."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        reply = "The header of add() lost its colon.\n\n```diff\n" + FIX_PATCH + "```\n"
        data = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": reply}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def stub_server() -> Iterator[str]:
    """A stub OpenAI-compatible server on 127.0.0.1; its base URL."""
    _Stub.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_openai_compatible_agent_against_a_stub_server(
    repo: Path, temp_dir: Path, stub_server: str
) -> None:
    """openai_chat.py (named by RECOVERY_AGENT_COMMAND) sends the failure to
    the endpoint with the model and key from the environment; the canned diff
    of the reply is proposed and passes pre-validation."""
    plan(repo)
    env = run_env(
        temp_dir,
        RECOVERY_AGENT_COMMAND=python_command(EXAMPLES / "openai_chat.py"),
        RECOVERY_AGENT_BASE_URL=stub_server,
        RECOVERY_AGENT_MODEL="stub-model",
        OPENAI_API_KEY="sk-test",
    )
    done = run_cli(
        "run", "plan.json", "--strategy", "architect-agent", cwd=repo, env=env
    )
    assert done.returncode == 3, done.stderr
    (request,) = _Stub.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "stub-model"
    user = request["body"]["messages"][-1]["content"]
    assert "app/calc.py" in user and "def add(a: int, b: int) -> int" in user
    outcome = attempted(repo).outcome
    assert outcome["proposal"] is True and outcome["prevalidation"] == "passed"
    details = outcome["details"]
    assert details["agent"]["source"] == "RECOVERY_AGENT_COMMAND"
    assert details["agent_analysis"] == "The header of add() lost its colon."
    assert (repo / "app" / "calc.py").read_text() == APP_CALC


def test_agent_given_to_another_strategy_is_refused(repo: Path) -> None:
    """`--agent` belongs to architect-agent: with another strategy it is bad
    input (exit 2), and nothing is written."""
    plan(repo)
    done = run_cli("run", "plan.json", "--strategy", "noop", "--agent", "x", cwd=repo)
    assert done.returncode == 2
    assert "--agent is for the architect-agent strategy" in done.stderr
    assert not (repo / ".recovery").exists()


def test_architect_agent_is_a_built_in_strategy(repo: Path) -> None:
    """`recovery strategies` lists architect-agent."""
    done = run_cli("strategies", "--json", cwd=repo)
    assert done.returncode == 0
    assert "architect-agent" in done.stdout


def test_host_runs_architect_agent_and_recovers_from_code(repo: Path) -> None:
    """A host hands `architect_agent(agent=...)` to its runner: the halt offers
    `recover`, and a decision from code makes attempt 2 with the fix."""
    plan_path = plan(repo)
    strategy = architect_agent(agent=(sys.executable, str(EXAMPLES / "fix_syntax.py")))
    assert isinstance(strategy, ArchitectAgentStrategy)
    assert isinstance(strategy, RecoveryStrategy)
    app = RecoveryApp.open("memory://")
    with GitWorkspace(repo, exclude=[plan_path]) as workspace:
        runner = app.runner(
            load_plan(plan_path), workspace=workspace, strategy=strategy
        )
        halted = runner.run()
        assert isinstance(halted, Halted)
        assert "recover" in halted.decisions
        app.decide(halted.run_id, "b1", "recover", operator="host")
        assert isinstance(runner.run(), Completed)
    assert git(repo, "show", "HEAD:app/calc.py") == FIXED_CALC


def test_recover_over_the_users_new_edit_fails_the_attempt_and_keeps_it(
    repo: Path, temp_dir: Path
) -> None:
    """When the user edited the batch's file after the halt, the proposal does
    not apply: build.recover fails with the reason, the user's edit stays, and
    the operator decides again."""
    plan(repo)
    agent = python_command(EXAMPLES / "fix_syntax.py")
    env = run_env(temp_dir)
    assert (
        run_cli("run", "plan.json", "--agent", agent, cwd=repo, env=env).returncode == 3
    )
    mine = "def add(a: int, b: int) -> int:\n    return b + a  # mine\n"
    (repo / "app" / "calc.py").write_text(mine)
    assert run_cli("decide", "latest", "b1", "recover", cwd=repo).returncode == 0
    resumed = run_cli("resume", "latest", cwd=repo, env=env)
    assert resumed.returncode == 3, resumed.stderr
    assert "build.recover" in resumed.stderr
    assert "does not apply to the working tree" in resumed.stderr
    failed = [e for e in events(repo) if isinstance(e, Run.StepFailed)]
    assert failed[-1].failure["step"] == "recover"
    assert (repo / "app" / "calc.py").read_text() == mine


@pytest.fixture
def sandbox_repo(repo: Path) -> Iterator[tuple[Sandbox, str]]:
    """The sandbox of a workspace on the repository (through the port), and a
    commit whose tree has a symbolic link `linked` to a folder outside it."""
    (repo / "linked").symlink_to("/tmp")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a link")
    with GitWorkspace(repo) as workspace:
        sandbox = workspace.sandbox()
        assert isinstance(sandbox, Sandbox)
        yield sandbox, git(repo, "rev-parse", "HEAD").strip()


def test_patch_through_a_symlinked_folder_is_refused(
    sandbox_repo: tuple[Sandbox, str],
) -> None:
    """A patch that writes a file through a folder that is a symbolic link in
    the faulty tree is refused by name."""
    sandbox, commit = sandbox_repo
    patch = (
        b"diff --git a/linked/x b/linked/x\nnew file mode 100644\n"
        b"--- /dev/null\n+++ b/linked/x\n@@ -0,0 +1 @@\n+x\n"
    )
    with pytest.raises(PatchRefused) as caught:
        sandbox.check_patch(commit, patch)
    assert caught.value.check == "symlink"
    assert "through the symbolic link 'linked'" in caught.value.reason


def test_rename_out_of_the_workspace_is_refused(
    sandbox_repo: tuple[Sandbox, str],
) -> None:
    """Both sides of a rename are checked: renaming a file to ../x is refused."""
    sandbox, commit = sandbox_repo
    patch = (
        b"diff --git a/app/calc.py b/../calc.py\nsimilarity index 100%\n"
        b"rename from app/calc.py\nrename to ../calc.py\n"
    )
    with pytest.raises(PatchRefused) as caught:
        sandbox.check_patch(commit, patch)
    assert caught.value.check == "inside"


def test_fixed_tree_and_checks_of_a_good_patch(
    sandbox_repo: tuple[Sandbox, str], repo: Path
) -> None:
    """A good patch gives the patched tree, with the file as the patch makes
    it, and names the paths it touches."""
    sandbox, commit = sandbox_repo
    patch = (
        b"--- a/app/calc.py\n+++ b/app/calc.py\n@@ -1,2 +1,2 @@\n"
        b"-def add(a: int, b: int) -> int:\n+def add(a: int, b: int) -> int:  # ok\n"
        b"     return a + b\n"
    )
    checked = sandbox.check_patch(commit, patch)
    assert isinstance(checked, CheckedPatch)
    assert checked.paths == ("app/calc.py",)
    content = git(repo, "cat-file", "blob", f"{checked.tree}:app/calc.py")
    assert content.startswith("def add(a: int, b: int) -> int:  # ok")


def test_a_removed_line_that_looks_like_a_header_is_no_path(repo: Path) -> None:
    """A hunk that removes a line starting with `-- ` (a SQL comment naming
    ../x) is read as a removed line, not as a file header: the patch passes."""
    (repo / "schema.sql").write_text("select 1;\n-- ../x is old\nselect 2;\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sql")
    patch = (
        b"diff --git a/schema.sql b/schema.sql\n--- a/schema.sql\n+++ b/schema.sql\n"
        b"@@ -1,3 +1,2 @@\n select 1;\n--- ../x is old\n select 2;\n"
    )
    commit = git(repo, "rev-parse", "HEAD").strip()
    with GitWorkspace(repo) as workspace:
        sandbox = workspace.sandbox()
        checked = sandbox.check_patch(sandbox.tree(commit), patch)
    assert checked.paths == ("schema.sql",)


def _worktrees(repo: Path) -> list[Path]:
    with GitWorkspace(repo) as workspace:
        return workspace.sandbox().worktrees()


KILLED_IN_SANDBOX = """\
import os, signal, sys
from pathlib import Path
from recovery_adapters.git import GitWorkspace
sandbox = GitWorkspace(Path(sys.argv[1])).sandbox()
commit = sandbox.kept("refs/heads/main")
with sandbox.worktree(commit) as path:
    print(path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # as a runner killed mid-pre-validation
"""


def test_a_sandbox_left_by_a_killed_runner_is_swept_by_the_next_one(
    repo: Path, temp_dir: Path
) -> None:
    """A runner SIGKILLed while it tried a proposal out leaves its sandbox
    worktree (git's record and the temporary folder); the next runner to hold
    the workspace removes both, and the user's tree is untouched."""
    before = user_files(repo)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_IN_SANDBOX, str(repo)],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(temp_dir)},
        check=False,
    )
    left = Path(done.stdout.strip())
    assert left.is_dir(), done.stderr
    assert len(_worktrees(repo)) == 2
    with GitWorkspace(repo) as workspace, workspace.locked({"pid": "1"}):
        pass
    assert not left.exists()
    assert not left.parent.exists()
    assert _worktrees(repo) == [repo.resolve()]
    assert user_files(repo) == before


def test_a_policy_lets_the_agents_prevalidated_fix_recover_without_the_operator(
    repo: Path, temp_dir: Path
) -> None:
    """The issue's whole loop with nobody at hand: the batch's policy names
    architect-agent with two automatic recoveries and the batch's own agent
    (fix_syntax.py). The batch fails on a syntax error, the agent's fix passes
    the checks and the pre-validation in a sandbox, the policy decides
    recover (the events say so, with its rule), the fix is applied as attempt
    2, and the run completes with the fix in the batch's commit; no operator
    was notified or asked."""
    agent = {"run": [sys.executable, str(EXAMPLES / "fix_syntax.py")]}
    plan(repo, agent=agent, policy={"strategy": "architect-agent", "auto_recover": 2})
    done = run_cli("run", "plan.json", cwd=repo, env=run_env(temp_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = [type(e).__name__ for e in events(repo)]
    assert "PolicyDecided" in kinds
    assert "OperatorDecided" not in kinds and "OperatorNotified" not in kinds
    (decided,) = [e for e in events(repo) if isinstance(e, Run.PolicyDecided)]
    assert (decided.decision, decided.rule) == ("recover", "auto_recover 1 of 2")
    assert attempted(repo).strategy == "architect-agent"
    assert git(repo, "show", "HEAD:app/calc.py") == FIXED_CALC
    status = json.loads(run_cli("status", "--json", cwd=repo).stdout)
    assert status["state"] == "completed"
    assert status["batches"][0]["attempts"] == 2
    assert list(temp_dir.iterdir()) == []
