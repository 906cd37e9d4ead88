"""recovery_core does no I/O but the event store: a whole run, through a
failure, a decision and a completion, on a ``memory://`` store with the
in-memory fakes of the public kit (:mod:`recovery_core.testing`), then the
kit's conformance tests on the built-in ``noop`` strategy and a recording
notifier, all under an audit hook that fails on any file write, folder made,
process started, signal sent, socket used or sleep. It proves the rule instead
of grepping for it (the hook runs in a child interpreter: audit hooks cannot be
removed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import contextlib, os, sys
    sys.dont_write_bytecode = True
    from pathlib import Path

    from recovery_core import Completed, Halted, NoopStrategy, RecoveryApp, parse_plan
    from recovery_core.ports import ProjectionUpdate
    from recovery_core.testing import (
        FakeHost, MemoryWorkspace, RecordingNotifier, ScriptedSteps,
    )

    workspace = MemoryWorkspace()
    made = []

    def make(step, context):
        made.append(context.attempt)
        workspace.write({"app.py": f"v{len(made)}"})

    # the first check fails, the retry passes
    steps = ScriptedSteps({"check": ["fail", "pass"]}, effects={"make": make})
    inbox = RecordingNotifier("inbox")

    class Kept:
        name = "memory"
        def __init__(self): self.updates = []
        def project(self, update): self.updates.append(update)

    plan = parse_plan({"plan_id": "pure", "batches": [{
        "batch_id": "b1", "commit_strategy": "commit",
        "actions": [{"name": "make", "run": ["make"]}],
        "validation": [{"name": "check", "kind": "command", "run": ["check"]}]}]})
    app = RecoveryApp.open("memory://")
    kept = Kept()
    runner = app.runner(plan, workspace=workspace, strategy=NoopStrategy(),
                        notifiers=[inbox], projections=[kept], host=FakeHost(),
                        step_runners={"command": steps})

    violations = []
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    BANNED = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir",
              "os.symlink", "os.link", "os.truncate", "os.chmod", "os.utime",
              "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
              "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
              "signal.pthread_kill", "time.sleep"}

    def hook(event, args):
        bad = event in BANNED or event.startswith("socket.")
        if event == "open":
            mode, flags = args[1], args[2]
            bad = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE)
        if bad:
            violations.append((event, repr(args)[:200]))
            raise RuntimeError(f"I/O in the core: {event} {args!r}")

    sys.addaudithook(hook)
    first = runner.run()
    assert isinstance(first, Halted), first
    app.decide(first.run_id, "b1", "retry", operator="op")
    second = runner.run()
    assert isinstance(second, Completed), second
    assert not violations, violations
    assert [n.failure.error for n in inbox.got] == ["check failed (scripted)"]
    assert isinstance(kept.updates[-1], ProjectionUpdate)
    assert kept.updates[-1].view.state == "completed"
    assert any(u.failure_log for u in kept.updates)
    calls = [c.step for c in steps.calls]
    assert calls == ["make", "check", "make", "check"], calls
    assert workspace.commits[-1].contents == {"app.py": "v2"}

    import io, unittest
    from recovery_core import testing

    class Noop(testing.StrategyConformance):
        def make_strategy(self): return NoopStrategy()

    class Recording(testing.NotifierConformance):
        def make_notifier(self): return RecordingNotifier("inbox")
        def make_undeliverable_notifier(self): return RecordingNotifier("inbox", fail=True)
        def deliveries(self, notifier): return len(notifier.got)

    load = unittest.defaultTestLoader.loadTestsFromTestCase
    suite = unittest.TestSuite([load(Noop), load(Recording)])
    said = io.StringIO()
    result = unittest.TextTestRunner(stream=said).run(suite)
    assert result.wasSuccessful() and result.testsRun > 15, said.getvalue()
    assert not violations, violations
    try:
        open("/tmp/recovery-core-purity-probe", "w")
    except RuntimeError:
        pass
    assert violations and violations[-1][0] == "open", "the hook is not live"
    print("pure", len(app.history(first.run_id)), "events")
    """
)


def test_a_whole_run_in_the_core_does_no_io_but_the_event_store() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith("pure "), done.stdout
