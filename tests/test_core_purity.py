"""recovery_core does no I/O but the event store: a whole run, through a
failure, a decision and a completion, on a ``memory://`` store with in-memory
adapters, under an audit hook that fails on any file write, folder made,
process started, signal sent, socket used or sleep. It proves the rule instead
of grepping for it (the hook runs in a child interpreter: audit hooks cannot be
removed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    '''
    import contextlib, os, sys
    sys.dont_write_bytecode = True
    from pathlib import Path

    from recovery_core import (
        Committed, Completed, Halted, NoopStrategy, Quarantine, RecoveryApp,
        StepOutcome, parse_plan,
    )
    from recovery_core.ports import ProjectionUpdate

    class Workspace:
        """A workspace kept in memory."""
        root = Path("/nowhere/workspace")
        def __init__(self):
            self.files, self.snapshots = {}, {}
        def ignore(self, path): pass
        @contextlib.contextmanager
        def locked(self, holder):
            yield
        def prepare(self, *, commits=False): pass
        def check(self, baseline): return ()
        def snapshot(self, *, run_id, batch_id, attempt):
            name = f"snap-{len(self.snapshots)}"
            self.snapshots[name] = dict(self.files)
            return name
        def changed_files(self, baseline):
            was = self.snapshots.get(baseline, {})
            return tuple(sorted(p for p in {*was, *self.files} if was.get(p) != self.files.get(p)))
        def read(self, snapshot, paths):
            return {p: self.snapshots[snapshot].get(p) for p in paths}
        def quarantine(self, *, run_id, batch_id, attempt, baseline):
            files = self.changed_files(baseline)
            self.restore(baseline, files)
            return Quarantine(ref=f"mem/{batch_id}/{attempt}", files=files, tree_id="t")
        def restore(self, baseline, files):
            was = self.snapshots[baseline]
            for path in files:
                if path in was:
                    self.files[path] = was[path]
                else:
                    self.files.pop(path, None)
        def commit(self, *, baseline, files, message, trailers):
            return Committed(commit="c" * 40)

    workspace = Workspace()
    calls = []

    def step(step, context):
        calls.append(step.name)
        if step.name == "make":
            workspace.files["app.py"] = f"v{len(calls)}"
            return StepOutcome(passed=True, duration_s=0.0)
        passed = len(calls) > 2  # the first check fails, the retry passes
        return StepOutcome(passed=passed, duration_s=0.0, error="" if passed else "boom",
                           exit_code=None if passed else 1)

    class Inbox:
        channel = "inbox"
        def __init__(self): self.got = []
        def notify(self, n): self.got.append(n)

    class Kept:
        name = "memory"
        def __init__(self): self.updates = []
        def project(self, update): self.updates.append(update)

    class Host:
        host, pid = "test-host", 4242
        def alive(self, host, pid): return True
        def sleep(self, seconds): raise AssertionError("no waiting here")

    plan = parse_plan({"plan_id": "pure", "batches": [{
        "batch_id": "b1", "commit_strategy": "commit",
        "actions": [{"name": "make", "run": ["make"]}],
        "validation": [{"name": "check", "kind": "command", "run": ["check"]}]}]})
    app = RecoveryApp.open("memory://")
    inbox, kept = Inbox(), Kept()
    runner = app.runner(plan, workspace=workspace, strategy=NoopStrategy(),
                        notifiers=[inbox], projections=[kept], host=Host(),
                        step_runners={"command": step})

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
    assert [n.failure.error for n in inbox.got] == ["boom"]
    assert kept.updates[-1].view.state == "completed"
    assert any(u.failure_log for u in kept.updates)
    assert calls == ["make", "check", "make", "check"], calls
    try:
        open("/tmp/recovery-core-purity-probe", "w")
    except RuntimeError:
        pass
    assert violations and violations[-1][0] == "open", "the hook is not live"
    print("pure", len(app.history(first.run_id)), "events")
    '''
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
