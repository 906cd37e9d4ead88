"""``recovery run --interactive``: at the halt the operator at the terminal sees
the failure and the attempt's diff, and decides there; the runner carries the
decision out at once. Driven through a real pseudo-terminal."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from support import cli_json, python_step, run_cli, write_file_action, write_plan

FAULTY = "VALUE = 'faulty line 42'\n"


def _plan(repo: Path) -> None:
    write_plan(
        repo / "plan.json",
        {
            "plan_id": "interactive",
            "batches": [
                {
                    "batch_id": "b1",
                    "actions": [write_file_action("write", "app/one.py", FAULTY)],
                    "validation": [python_step("check", "import sys; sys.exit(3)")],
                },
                {
                    "batch_id": "b2",
                    "actions": [write_file_action("write", "app/two.py", "Y = 2\n")],
                    "validation": [{"name": "syntax", "kind": "syntax"}],
                },
            ],
        },
    )


class Terminal:
    """A process on the slave side of a pseudo-terminal, read and typed at."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; saw:\n{self.seen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the process ended: EIO on Linux
                    chunk = b""
                if not chunk:
                    assert text in self.seen, f"ended before {text!r}:\n{self.seen}"
                self.seen += chunk.decode(errors="replace")
        return self.seen

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            assert time.monotonic() < deadline, self.seen
            if select.select([self.master], [], [], 0.1)[0]:
                with contextlib.suppress(OSError):  # EIO once it ended
                    self.seen += os.read(self.master, 65536).decode(errors="replace")
        os.close(self.master)
        return self.process.returncode


def test_the_operator_decides_at_the_terminal_and_the_run_goes_on(repo: Path) -> None:
    _plan(repo)
    cli = [sys.executable, "-m", "recovery_adapters.cli"]
    terminal = Terminal([*cli, "run", "plan.json", "--interactive"], repo)
    try:
        seen = terminal.expect("press Enter to wait")
        assert "post_build_validation.check" in seen  # the failure, as notified
        assert "+VALUE = 'faulty line 42'" in seen  # the attempt's diff
        assert "app/one.py" in seen
        terminal.type("nonsense")
        terminal.expect("is not one of")
        terminal.type("sk")
        terminal.expect("reason (optional): ")
        terminal.type("the check is wrong, not the change")
        terminal.expect("recorded: skip by test-operator")
        code = terminal.finish()
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
    assert code == 0, terminal.seen
    status = cli_json("status", cwd=repo)
    assert status["state"] == "completed"
    assert [b["status"] for b in status["batches"]] == ["skipped", "verified"]
    assert status["decision"]["operator"] == "test-operator"
    assert status["decision"]["reason"] == "the check is wrong, not the change"


def test_enter_waits_for_a_decision_from_elsewhere(repo: Path) -> None:
    _plan(repo)
    cli = [sys.executable, "-m", "recovery_adapters.cli"]
    terminal = Terminal(
        [*cli, "run", "plan.json", "--interactive", "--poll", "0.1"], repo
    )
    try:
        terminal.expect("press Enter to wait")
        terminal.type("")
        terminal.expect("waiting for a decision on batch b1 attempt 1")
        decided = run_cli("decide", "latest", "b1", "abort", cwd=repo)
        assert decided.returncode == 4, decided.stderr
        code = terminal.finish()
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
    assert code == 4, terminal.seen
    assert cli_json("status", cwd=repo)["state"] == "aborted"


def test_interactive_without_a_terminal_is_refused_before_anything_is_written(
    repo: Path,
) -> None:
    _plan(repo)
    done = run_cli("run", "plan.json", "--interactive", cwd=repo)
    assert done.returncode == 2, done.stderr
    assert "--interactive asks for the decision at a terminal" in done.stderr
    assert not (repo / ".recovery").exists()
