"""The crash sweep: the real ``recovery`` command, SIGKILLed at every crossing
of every point where it writes, then finished and checked for damage.

For one plan (a :class:`Scenario`), the sweep

1. builds a git workspace with the user's own work in it (an unstaged edit of a
   tracked file, a staged edit, untracked files and an ignored file) and the
   plan file, once, as a template;
2. drives the plan through the real command line, uninterrupted, with the
   plan's scripted decisions (:func:`drive`), in each of its *slots* (one
   folder per worker thread): in slot 0 in count mode (the crash kit's
   ``RECOVERY_CRASH_TRACE``), which lists every crossing of every call, and in
   every slot keeping a copy of the folder before each call;
3. for each crossing (call ``i``, point ``p``, ``n``), in a free slot: puts the
   folder back as it was before call ``i`` (a copy, at the same path, so that
   what the store recorded about the workspace holds), runs call ``i`` with
   ``RECOVERY_CRASH_AT=p:n`` (the process SIGKILLs itself there), finishes the
   run with the real command line as an operator would (the killed command
   again, ``decide`` with the scripted decision, ``resume``, until the run
   completes), then checks the folder (:func:`check_case`).

A plan whose case starts with a dead runner (:attr:`Scenario.dies_after`) has
its first runner SIGKILLed after a chosen event, afresh in each case (so that
its process is surely gone, whatever pids the machine hands out meanwhile),
and only the next command, the one that takes the dead runner's claim over,
is killed at each of its crossings.

Every check failure is a :class:`Violation` naming the call, the point and n.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery_adapters.git.lock import LOCK_NAME
from recovery_adapters.projections import write_plan_status
from recovery_core import IntegrityError, RecoveryApp, RunView, verify_chain
from recovery_core.projections import plan_status_fields

__all__ = [
    "KIT",
    "SCENARIOS",
    "CaseResult",
    "Scenario",
    "SweepResult",
    "Violation",
    "check_case",
    "check_claim",
    "check_decisions",
    "drive",
    "format_report",
    "make_template",
    "sweep",
]

#: This folder: put first on the PYTHONPATH of the ``recovery`` processes.
KIT = Path(__file__).resolve().parent
#: Every faulty change of the plans holds this text; no branch may ever.
FAULTY = "CRASHKIT-FAULTY"
PY = sys.executable

GOOD_EXTRA = "def double(x: int) -> int:\n    return 2 * x\n"
APP_CALC = "def add(a: int, b: int) -> int:\n    return a + b\n"
GOOD_CALC = APP_CALC + "\n\ndef sub(a: int, b: int) -> int:\n    return a - b\n"
FAULTY_CALC = f"def add(a: int, b: int) -> int:\n    return a +  # {FAULTY}\n"
FAULTY_BROKEN = f"def broken(:\n    pass  # {FAULTY}\n"

#: The user's own work, set up before the run: path -> bytes in the working tree.
README_COMMITTED = b"# calc\n\nA tiny app.\n"
GUIDE_COMMITTED = b"# Guide\n\nStep one.\n"
USER_WORK: Mapping[str, bytes] = {
    "README.md": README_COMMITTED + b"\nThe user's unstaged edit.\n",
    "docs/guide.md": GUIDE_COMMITTED + b"\nThe user's staged edit.\n",
    "notes.txt": b"the user's untracked notes\n",
    "app/user_notes.txt": b"untracked, beside the batches' files\n",
    "build/cache.log": b"the user's ignored file\n",
}
#: The user's staged path (its staged content is its USER_WORK bytes).
STAGED = "docs/guide.md"

GIT_ENV: Mapping[str, str] = {
    "GIT_AUTHOR_NAME": "Crash Kit",
    "GIT_AUTHOR_EMAIL": "crashkit@example.com",
    "GIT_COMMITTER_NAME": "Crash Kit",
    "GIT_COMMITTER_EMAIL": "crashkit@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}
CLI_TIMEOUT_S = 180.0


# -- plans ---------------------------------------------------------------------


def _write(name: str, path: str, content: str) -> dict[str, Any]:
    code = "import pathlib,sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
    return {"name": name, "run": [PY, "-c", code, path, content]}


def _first_time(
    name: str, marker: str, path: str, first: str, later: str
) -> dict[str, Any]:
    """An action writing ``first`` the first time it runs (a marker file outside
    the workspace remembers), ``later`` after."""
    code = (
        "import pathlib,sys; m=pathlib.Path(sys.argv[1]); once=not m.exists(); "
        "m.write_text('ran'); "
        "pathlib.Path(sys.argv[2]).write_text(sys.argv[3] if once else sys.argv[4])"
    )
    return {"name": name, "run": [PY, "-c", code, marker, path, first, later]}


def _checks(module: str) -> list[dict[str, Any]]:
    return [
        {"name": "syntax_check", "kind": "syntax"},
        {"name": "imports", "kind": "command", "run": [PY, "-c", f"import {module}"]},
    ]


def _batch(batch_id: str, action: dict[str, Any], module: str) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "actions": [action],
        "validation": _checks(module),
        "commit_strategy": "commit",
    }


@dataclass(frozen=True)
class Scenario:
    """A plan to sweep: its batches, the operator's decision for each batch's
    failures (any other failure, such as an interrupted attempt, is retried),
    the batches it skips, and the strategy (``--strategy``) it runs with."""

    name: str
    batches: tuple[dict[str, Any], ...]
    decisions: Mapping[str, str] = field(default_factory=dict)
    strategy: str | None = None
    #: Whether the runner waits for each decision (``--wait``), which the
    #: operator then records from another process while it waits.
    wait: bool = False
    #: When set, each case starts with a runner SIGKILLed right after the
    #: first save of this event (its claim left to a dead process), and the
    #: sweep kills only the command that takes that claim over.
    dies_after: str | None = None

    @property
    def plan(self) -> dict[str, Any]:
        return {
            "plan_id": f"crash-{self.name}",
            "owner": "crashkit",
            "batches": [dict(b) for b in self.batches],
        }

    @property
    def skipped(self) -> frozenset[str]:
        return frozenset(b for b, d in self.decisions.items() if d == "skip")

    @property
    def strategy_args(self) -> tuple[str, ...]:
        wait = ("--wait", "--poll", "0.05") if self.wait else ()
        return (*(("--strategy", self.strategy) if self.strategy else ()), *wait)


SCENARIOS: Mapping[str, Scenario] = {
    s.name: s
    for s in (
        # (a) two passing batches, each committed.
        Scenario(
            "commit",
            (
                _batch(
                    "a1", _write("generate", "app/extra.py", GOOD_EXTRA), "app.extra"
                ),
                _batch("a2", _write("generate", "app/calc.py", GOOD_CALC), "app.calc"),
            ),
        ),
        # (b) a batch whose first attempt writes a syntax error: retried, it
        # passes.
        Scenario(
            "retry",
            (
                _batch(
                    "b2",
                    _first_time(
                        "generate",
                        "../state/b2.ran",
                        "app/calc.py",
                        FAULTY_CALC,
                        GOOD_CALC,
                    ),
                    "app.calc",
                ),
            ),
            decisions={"b2": "retry"},
        ),
        # (c) a batch that always fails, skipped; then a passing one.
        Scenario(
            "skip",
            (
                _batch(
                    "c1",
                    _write("generate", "app/broken.py", FAULTY_BROKEN),
                    "app.broken",
                ),
                _batch(
                    "c2", _write("generate", "app/extra.py", GOOD_EXTRA), "app.extra"
                ),
            ),
            decisions={"c1": "skip"},
        ),
        # (e) the retry plan, with a runner that waits for the decision
        # (``--wait``) while the operator records it from another process:
        # kills while it notifies, waits, takes over the dead runner's claim
        # and carries the decision out.
        Scenario(
            "wait",
            (
                _batch(
                    "e2",
                    _first_time(
                        "generate",
                        "../state/e2.ran",
                        "app/calc.py",
                        FAULTY_CALC,
                        GOOD_CALC,
                    ),
                    "app.calc",
                ),
            ),
            decisions={"e2": "retry"},
            wait=True,
        ),
        # (f) the wait plan's batch, in a case that starts with a dead runner:
        # one SIGKILLed once its attempt's action wrote the faulty change
        # (after BatchStarted and the build step's StepPassed), so that its
        # claim is a dead process's and its attempt never ended. The sweep
        # kills the next ``run --wait``, which takes the claim over, records
        # the lost attempt (quarantining its change), notifies, waits and
        # carries out the operator's retry, at each of its crossings.
        Scenario(
            "takeover",
            (
                _batch(
                    "f1",
                    _first_time(
                        "generate",
                        "../state/f1.ran",
                        "app/calc.py",
                        FAULTY_CALC,
                        GOOD_CALC,
                    ),
                    "app.calc",
                ),
            ),
            decisions={"f1": "retry"},
            wait=True,
            dies_after="StepPassed",
        ),
        # (d) a batch that always fails, recovered by the crash kit's own
        # strategy (crashkit_fixer.py, an entry point beside this file).
        Scenario(
            "recover",
            (_batch("d1", _write("generate", "app/calc.py", FAULTY_CALC), "app.calc"),),
            decisions={"d1": "recover"},
            strategy="crashkit-fixer",
        ),
    )
}


# -- processes -----------------------------------------------------------------


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Runs git (no optional locks: a check never writes) and returns stdout."""
    env = {**os.environ, **GIT_ENV, "GIT_OPTIONAL_LOCKS": "0"}
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, env=env, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args)}: {done.stderr.decode(errors='replace')}"
        )
    return done.stdout.decode("utf-8", "surrogateescape")


def child_env(sweep_root: Path) -> dict[str, str]:
    """The environment of every ``recovery`` process: ours less any store,
    git redirection or crash setting, plus a git identity, no global or
    system git settings, an operator name, the crash kit first on PYTHONPATH,
    and byte code cached outside the source tree."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RECOVERY_", "GIT_"))
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(GIT_ENV)
    env["GIT_CONFIG_GLOBAL"] = str(sweep_root / "no-global-gitconfig")
    env["RECOVERY_OPERATOR"] = "crash-operator"
    # A heartbeat is saved from a thread of its own once per interval: on a
    # loaded machine a traced run that waits past it would count crossings
    # a faster case never reaches. None falls in a sweep's case.
    env["RECOVERY_HEARTBEAT_S"] = "3600"
    env["PYTHONPYCACHEPREFIX"] = str(sweep_root / "pycache")
    path = [str(KIT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(path)
    return env


@dataclass(frozen=True)
class Call:
    """One ``recovery`` command and how it ended."""

    argv: tuple[str, ...]
    code: int
    stderr: str = ""

    @property
    def kind(self) -> str:
        return self.argv[0]


def cli(
    case: Path,
    argv: Sequence[str],
    env: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    scenario: Scenario | None = None,
) -> Call:
    """Runs the real ``recovery`` command in the case's workspace. A runner
    that waits (``--wait``) is decided for, from another process (without
    ``extra``), each time it halts."""
    if "--wait" in argv and scenario is not None:
        return _waiting_cli(case, argv, env, extra or {}, scenario)
    try:
        done = subprocess.run(
            [PY, "-m", "recovery_adapters.cli", *argv],
            cwd=case / "work",
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Call(tuple(argv), -1000, f"timed out after {CLI_TIMEOUT_S}s")
    return Call(tuple(argv), done.returncode, done.stderr)


def _waiting_cli(
    case: Path,
    argv: Sequence[str],
    env: Mapping[str, str],
    extra: Mapping[str, str],
    scenario: Scenario,
) -> Call:
    """``run``/``resume --wait``, with the operator deciding while it waits."""
    runner = subprocess.Popen(
        [PY, "-m", "recovery_adapters.cli", *argv],
        cwd=case / "work",
        env={**env, **extra},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + CLI_TIMEOUT_S
    decided: set[tuple[object, ...]] = set()  # each failure decided once
    refused: list[str] = []
    try:
        while runner.poll() is None and time.monotonic() < deadline:
            with open_store(case) as app:
                try:
                    view = latest_view(app)
                except Exception:  # copied mid-write: look again
                    view = None
            decide = None if view is None else _decide_argv(view, scenario)
            # The operator acts on the notification: once it is recorded.
            if decide is not None and view is not None and view.open_decision:
                key = (*decide, view.open_decision.attempt)
                # Recorded once; a decide that did not record (a refusal)
                # is typed again, as an operator would.
                if key not in decided and view.batch(decide[2]).notified:
                    typed = cli(case, decide, env)
                    if typed.code == 0:
                        decided.add(key)
                    else:
                        tail = " | ".join(typed.stderr.strip().splitlines()[-2:])
                        refused.append(f"decide exited {typed.code}: {tail}")
            time.sleep(0.05)
    finally:
        timed_out = runner.poll() is None
        if timed_out:
            runner.kill()
        _, stderr = runner.communicate()
    if timed_out:
        told = (
            f" ({len(refused)} decides refused, the last: {refused[-1]})"
            if refused
            else ""
        )
        return Call(tuple(argv), -1000, f"timed out after {CLI_TIMEOUT_S}s{told}")
    return Call(tuple(argv), runner.returncode, stderr)


# -- the workspace -------------------------------------------------------------


def make_template(case: Path, scenario: Scenario) -> None:
    """``case/work``: a repository with a tiny app, one commit, the user's own
    work on top (see :data:`USER_WORK`) and the plan file (untracked);
    ``case/state``: where the plan's actions keep their markers."""
    work = case / "work"
    (work / "app").mkdir(parents=True)
    (work / "docs").mkdir()
    (case / "state").mkdir()
    (work / "app" / "__init__.py").write_text("")
    (work / "app" / "calc.py").write_text(APP_CALC)
    (work / "README.md").write_bytes(README_COMMITTED)
    (work / "docs" / "guide.md").write_bytes(GUIDE_COMMITTED)
    (work / ".gitignore").write_text("build/\n__pycache__/\n")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    for path, data in USER_WORK.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    git(work, "add", "--", STAGED)
    (work / "plan.json").write_text(json.dumps(scenario.plan, indent=2) + "\n")


def restore(snapshot: Path, case: Path) -> None:
    """Puts ``case`` back as ``snapshot`` (a copy of it, at this same path) is."""
    if case.exists():
        shutil.rmtree(case)
    shutil.copytree(snapshot, case, symlinks=True)


@contextlib.contextmanager
def open_store(case: Path) -> Iterator[RecoveryApp | None]:
    """The case's event store, read from a copy (reading never writes to the
    store itself); None when there is none yet."""
    store = case / "work" / ".recovery" / "events.sqlite3"
    if not store.is_file():
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="crashkit-store-") as folder:
        for suffix in ("", "-wal", "-shm", "-journal"):
            source = store.with_name(store.name + suffix)
            # A journal may go while it is copied (a live runner, with --wait,
            # committed meanwhile): then the store needs none.
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(source, Path(folder) / (store.name + suffix))
        app = RecoveryApp.open(f"sqlite:///{folder}/{store.name}", create=False)
        try:
            yield app
        finally:
            app.close()


def latest_view(app: RecoveryApp | None) -> RunView | None:
    if app is None:
        return None
    runs = app.runs()
    return app.view(runs[-1].run_id) if runs else None


# -- driving a run ------------------------------------------------------------


def _decide_argv(view: RunView, scenario: Scenario) -> tuple[str, ...] | None:
    """The operator's ``decide`` for the failure awaiting a decision, if any:
    the plan's decision for the batch, else retry."""
    decision = view.open_decision
    if decision is None or decision.recorded is not None:
        return None
    wanted = scenario.decisions.get(decision.batch_id, "retry")
    if wanted not in decision.choices:
        wanted = "retry"
    return ("decide", view.run_id, decision.batch_id, wanted)


def next_call(
    view: RunView | None, scenario: Scenario, last: Sequence[str] | None
) -> tuple[str, ...] | None:
    """What an operator types next: ``run`` when there is no run yet, ``decide``
    (the plan's decision for the batch, else retry) when a failure awaits one,
    else the command that was stopped again (``run`` or ``resume``), else
    ``resume``; None once the run has ended."""
    if view is None:
        return ("run", "plan.json", *scenario.strategy_args)
    if view.state in ("completed", "aborted"):
        return None
    if (decide := _decide_argv(view, scenario)) is not None:
        return decide
    if last is not None and last[0] == "run":
        return ("run", "plan.json", *scenario.strategy_args)
    return ("resume", view.run_id, *scenario.strategy_args)


#: The exit codes a command may end with while the plan is driven.
_FINE = {"run": (0, 3), "resume": (0, 3), "decide": (0,)}


def drive(
    case: Path,
    scenario: Scenario,
    env: Mapping[str, str],
    *,
    last: Sequence[str] | None = None,
    before_call: Callable[[int, tuple[str, ...]], Mapping[str, str]] | None = None,
    limit: int = 14,
) -> tuple[list[Call], list[str]]:
    """Drives the run in ``case`` until it ends, with the real command line;
    returns the calls and the problems met (an unexpected exit code, a run
    that does not end). ``last``: the command that was stopped, typed again
    first. ``before_call(i, argv)`` may give extra environment for call i and
    see the folder before it."""
    calls: list[Call] = []
    seen: Counter[tuple[object, ...]] = Counter()
    again = last is not None and last[0] in ("run", "resume")
    for index in range(limit):
        with open_store(case) as app:
            try:
                view = latest_view(app)
            except Exception as exc:  # what the store holds is not a run
                return calls, [f"the store cannot be read: {type(exc).__name__}: {exc}"]
        # After a kill, the operator first types the stopped command again,
        # unless the run has ended (``recovery status`` says so): ``run`` of a
        # plan whose run completed starts a new run, by design.
        ended = view is not None and view.state in ("completed", "aborted")
        argv = (
            tuple(last)
            if again and last is not None and not ended
            else next_call(view, scenario, last)
        )
        again = False
        if argv is None:
            if view is not None and view.state == "aborted":
                return calls, [f"the run was aborted: {view.abort_reason}"]
            return calls, []
        state = (argv[0], None if view is None else (view.version, view.state))
        seen[state] += 1
        if seen[state] > 2:
            return calls, [f"stuck: `recovery {' '.join(argv)}` changes nothing"]
        extra = before_call(index, argv) if before_call is not None else {}
        call = cli(case, argv, env, extra, scenario)
        calls.append(call)
        last = argv
        if call.code not in _FINE[argv[0]]:
            tail = " | ".join(call.stderr.strip().splitlines()[-3:])
            return calls, [f"`recovery {argv[0]}` exited {call.code}: {tail}"]
    return calls, [f"the run did not end after {limit} commands"]


# -- a dead runner -------------------------------------------------------------


def death_point(
    root: Path, template: Path, scenario: Scenario, env: Mapping[str, str]
) -> str:
    """Where the first runner of ``scenario`` dies (``POINT:N``, for
    ``RECOVERY_CRASH_AT``): right after the first save of
    :attr:`Scenario.dies_after`, as the first command, run uninterrupted in a
    copy of the template, counts it."""
    case = root / "death" / "case"
    restore(template, case)
    trace = root / "death" / "trace.txt"
    argv = next_call(None, scenario, None)
    assert argv is not None
    extra = {"RECOVERY_CRASH_TRACE": str(trace), "RECOVERY_CRASH_ROOT": str(case)}
    cli(case, argv, env, extra, scenario)
    crossings, _seams = read_trace(trace, 0, argv[0])
    for crossing in crossings:
        topics = crossing.detail.partition(" ")[2].split(",")
        if crossing.point == "store.insert:after" and scenario.dies_after in topics:
            return f"{crossing.point}:{crossing.n}"
    raise RuntimeError(f"`recovery {' '.join(argv)}` never saved {scenario.dies_after}")


def kill_first_runner(
    case: Path, scenario: Scenario, env: Mapping[str, str], point: str
) -> tuple[Call, list[str]]:
    """Runs the plan's first command in ``case``, SIGKILLed at ``point``: the
    run is left claimed by a process that is gone. Returns the call and, when
    it was not killed there, the problem."""
    argv = next_call(None, scenario, None)
    assert argv is not None
    extra = {"RECOVERY_CRASH_AT": point, "RECOVERY_CRASH_ROOT": str(case)}
    call = cli(case, argv, env, extra, scenario)
    if call.code == -signal.SIGKILL:
        return call, []
    tail = " | ".join(call.stderr.strip().splitlines()[-2:])
    return call, [
        f"the first runner was not killed at {point}: exited {call.code}: {tail}"
    ]


# -- checks --------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the uninterrupted run left, to compare with."""

    topics: frozenset[str]
    head_tree: str
    index: str
    files: Mapping[str, str]
    status: str


def _short(topic: str) -> str:
    return topic.removeprefix("recovery:")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def worktree_files(work: Path) -> dict[str, str]:
    """Every file of the working tree (less .git/, .recovery/ and the plan
    file) by path, with the digest of its bytes."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(work):
        here = Path(folder)
        if here == work:
            dirs[:] = [d for d in dirs if d not in (".git", ".recovery")]
        for name in files:
            path = here / name
            relative = path.relative_to(work).as_posix()
            if relative != "plan.json":
                found[relative] = _digest(path.read_bytes())
    return found


def status_of(work: Path) -> str:
    return git(work, "status", "--porcelain=v1", "--untracked-files=all")


def expected_of(case: Path, app: RecoveryApp) -> Expected:
    view = latest_view(app)
    assert view is not None
    work = case / "work"
    return Expected(
        topics=frozenset(_short(type(e).TOPIC) for e in app.history(view.run_id)),
        head_tree=git(work, "rev-parse", "HEAD^{tree}").strip(),
        index=git(work, "ls-files", "-s"),
        files=worktree_files(work),
        status=status_of(work),
    )


_ONCE_PER_RUN = {"RunStarted", "RunCompleted", "RunAborted"}
_ONCE_PER_ATTEMPT = {
    "BatchStarted",
    "StepFailed",
    "BatchMarkedFailed",
    "ChangesQuarantined",
    "RecoveryAttempted",
    "OperatorDecided",
    "BatchVerified",
    "BatchCommitted",
    "BatchLeftUncommitted",
}
_FAILED_ATTEMPT = (
    "StepFailed",
    "BatchMarkedFailed",
    "ChangesQuarantined",
    "RecoveryAttempted",
    "OperatorNotified",
    "OperatorDecided",
)

Problems = list[tuple[str, str]]


def check_events(
    app: RecoveryApp, view: RunView, scenario: Scenario, expected: Expected | None
) -> Problems:
    """No event lost, none recorded twice, and the hash chain holds."""
    problems: Problems = []
    try:
        verify_chain(app.stored_records(view.run_id))
    except IntegrityError as exc:
        problems.append(("hash chain", str(exc)))
    if len(runs := app.runs()) != 1:
        problems.append(("events: one run", f"{len(runs)} runs in the store"))
    events: list[Any] = list(app.history(view.run_id))
    topics = [_short(type(e).TOPIC) for e in events]
    keys: Counter[tuple[object, ...]] = Counter()
    by_attempt: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for event, topic in zip(events, topics, strict=True):
        batch, attempt = (
            getattr(event, "batch_id", None),
            getattr(event, "attempt", None),
        )
        if batch is not None and attempt is not None:
            by_attempt[(batch, attempt)].append((topic, event))
        if topic in _ONCE_PER_RUN:
            keys[(topic,)] += 1
        elif topic in _ONCE_PER_ATTEMPT:
            keys[(topic, batch, attempt)] += 1
        elif topic == "StepPassed":
            keys[(topic, batch, attempt, f"{event.phase}.{event.step}")] += 1
        elif topic == "OperatorNotified":
            keys[(topic, batch, attempt, event.channel)] += 1
        elif topic == "BatchSkipped":
            keys[(topic, batch)] += 1
    for key, count in keys.items():
        if count > 1:
            what = " ".join(str(k) for k in key)
            problems.append(("events: duplicated", f"{what} recorded {count} times"))
    if topics[:1] != ["RunStarted"]:
        problems.append(("events: lost", f"the first event is {topics[:1]}"))
    # A killed runner cannot release the run: the next one claims it.
    wanted = (expected.topics if expected else frozenset()) - {"RunnerReleased"}
    if missing := wanted - set(topics):
        problems.append(("events: lost", f"no {', '.join(sorted(missing))} at all"))
    if view.state != "completed" or "RunCompleted" not in topics:
        problems.append(("events: lost", f"run {view.state}, no RunCompleted"))
    for batch in scenario.batches:
        problems += _check_batch(batch, scenario, by_attempt, topics)
    problems += check_decisions(list(zip(topics, events, strict=True)))
    return problems


def check_decisions(events: Sequence[tuple[str, Any]]) -> Problems:
    """Each decision carried out once, after it was recorded (a retry or a
    recover of attempt k starts attempt k+1, a skip skips the batch, an abort
    aborts the run), and no attempt but a batch's first started without the
    decision that asks for it. ``events``: the run's, as (short topic, event)."""
    decided: dict[tuple[str, int], tuple[str, int]] = {}
    starts: dict[tuple[str, int], list[int]] = defaultdict(list)
    skips: dict[str, list[int]] = defaultdict(list)
    aborts: list[int] = []
    for index, (topic, event) in enumerate(events):
        if topic == "OperatorDecided":
            decided[(event.batch_id, event.attempt)] = (event.decision, index)
        elif topic == "BatchStarted":
            starts[(event.batch_id, event.attempt)].append(index)
        elif topic == "BatchSkipped":
            skips[event.batch_id].append(index)
        elif topic == "RunAborted":
            aborts.append(index)
    problems: Problems = []
    for (batch, attempt), (decision, at) in sorted(decided.items()):
        done = {"skip": skips.get(batch, []), "abort": aborts}.get(
            decision, starts.get((batch, attempt + 1), [])
        )
        after = [i for i in done if i > at]
        if len(done) != 1 or len(after) != 1:
            problems.append(
                (
                    "decisions",
                    f"{decision} of batch {batch} attempt {attempt} carried out "
                    f"{len(done)} times ({len(after)} after it was recorded)",
                )
            )
    for batch, attempt in sorted(starts):
        asked = decided.get((batch, attempt - 1), ("", 0))[0]
        if attempt > 1 and asked not in ("retry", "recover"):
            problems.append(
                (
                    "decisions",
                    f"batch {batch} attempt {attempt} started without a retry "
                    "or recover decision",
                )
            )
    return problems


def _processes_in(work: Path) -> list[str]:
    """The live processes whose working directory is ``work`` (every
    ``recovery`` command of a case, and what it starts, runs there), as
    ``pid: command line``."""
    found: list[str] = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "cwd").readlink() != work:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, a zombie, or another user's
        command = " ".join(a.decode(errors="replace") for a in argv if a)
        found.append(f"{entry.name}: {command[:120]}")
    return found


def check_claim(case: Path) -> Problems:
    """The claim ended with its runners: no process runs in the workspace any
    more and its runner lock is free. (The run's last claim stays recorded: a
    completed run has no runner to release it, and its process is gone.)"""
    problems: Problems = []
    work = (case / "work").resolve()
    if live := _processes_in(work):
        problems.append(("claim", "still running: " + "; ".join(live)))
    lock = work / ".git" / LOCK_NAME
    if lock.is_file():
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock.read_text(errors="replace")[:200]
            problems.append(("claim", f"the workspace is still locked: {holder}"))
        finally:
            os.close(fd)  # and with it the lock, if this took it
    return problems


def _check_batch(
    batch: Mapping[str, Any],
    scenario: Scenario,
    by_attempt: Mapping[tuple[str, int], list[Any]],
    topics: list[str],
) -> Problems:
    batch_id = str(batch["batch_id"])
    problems: Problems = []
    attempts = sorted(a for b, a in by_attempt if b == batch_id)
    if attempts != list(range(1, len(attempts) + 1)) or not attempts:
        return [("events: lost", f"batch {batch_id}: attempts {attempts}")]
    for attempt in attempts:
        had = [t for t, _ in by_attempt[(batch_id, attempt)]]
        where = f"batch {batch_id} attempt {attempt}"
        if "BatchStarted" not in had:
            problems.append(("events: lost", f"{where}: no BatchStarted"))
        last = attempt == attempts[-1]
        if not last or batch_id in scenario.skipped:
            if "BatchVerified" in had:
                problems.append(("events: lost", f"{where}: verified, then retried"))
            lost = [t for t in _FAILED_ATTEMPT if t not in had]
            if lost:
                problems.append(
                    ("events: lost", f"{where} (failed): no {', '.join(lost)}")
                )
            continue
        steps = {
            f"{e.phase}.{e.step}"
            for t, e in by_attempt[(batch_id, attempt)]
            if t == "StepPassed"
        }
        decided = [
            e.decision
            for t, e in by_attempt.get((batch_id, attempt - 1), [])
            if t == "OperatorDecided"
        ]
        builds = (
            ["build.recover"]
            if decided == ["recover"]
            else [f"build.{a['name']}" for a in batch["actions"]]
        )
        wanted = [
            *builds,
            *(f"post_build_validation.{s['name']}" for s in batch["validation"]),
        ]
        lost = [s for s in wanted if s not in steps]
        if lost:
            problems.append(
                ("events: lost", f"{where}: no StepPassed {', '.join(lost)}")
            )
        for topic in ("BatchVerified", "BatchCommitted"):
            if topic not in had:
                problems.append(("events: lost", f"{where}: no {topic}"))
        if "BatchLeftUncommitted" in had:
            problems.append(("commits", f"{where}: verified but left uncommitted"))
    if batch_id in scenario.skipped and "BatchSkipped" not in topics:
        problems.append(("events: lost", f"batch {batch_id}: no BatchSkipped"))
    return problems


def check_projections(app: RecoveryApp, view: RunView, case: Path) -> Problems:
    """The plan file and the failure log are what the events say."""
    problems: Problems = []
    work = case / "work"
    plan = work / "plan.json"
    with tempfile.TemporaryDirectory(prefix="crashkit-plan-") as folder:
        copy = Path(folder) / "plan.json"
        shutil.copyfile(plan, copy)
        try:
            differs = write_plan_status(copy, plan_status_fields(view))
        except ValueError as exc:
            problems.append(("plan file", f"not JSON: {exc}"))
            differs = False
        if differs:
            raw = json.loads(plan.read_text())
            fields = plan_status_fields(view)
            diffs = [
                f"{b.get('batch_id')}: {b.get('status')!r}/{b.get('verified')!r}"
                f" where the events say {fields[b['batch_id']].status!r}"
                f"/{fields[b['batch_id']].verified!r}"
                for b in raw.get("batches", [])
                if b.get("batch_id") in fields
                and (b.get("status"), b.get("verified"), b.get("failure_reason"))
                != (
                    fields[b["batch_id"]].status,
                    fields[b["batch_id"]].verified,
                    fields[b["batch_id"]].failure_reason,
                )
            ]
            problems.append(("plan file", "; ".join(diffs) or "bytes differ"))
    log = work / ".recovery" / "logs" / "bootstrap_errors.log"
    entries = app.failure_log(workspace=view.workspace)
    text = "".join(entry.to_line() + "\n" for entry in entries)
    if not log.is_file():
        problems.append(("failure log", f"missing ({len(entries)} entries expected)"))
    elif log.read_text(encoding="utf-8") != text:
        have = len(log.read_text(encoding="utf-8").splitlines())
        problems.append(
            ("failure log", f"{have} lines where the events give {len(entries)}")
        )
    return problems


_TEMP_MARKS = (".tmp", ".lock", "tmp_obj_", "tmp_pack_")


def _temporary(name: str) -> bool:
    return any(mark in name for mark in _TEMP_MARKS)


def check_git(
    case: Path, view: RunView, scenario: Scenario, expected: Expected | None
) -> Problems:
    """No faulty change on a branch, each verified batch committed once, the
    user's index and work as they were, no temporary file left or committed."""
    problems: Problems = []
    work = case / "work"
    faulty = git(work, "log", "--branches", "--format=%h %s", "-S", FAULTY)
    if faulty.strip():
        problems.append(
            ("faulty change on a branch", faulty.strip().replace("\n", "; "))
        )
    branches = git(work, "for-each-ref", "--format=%(refname)", "refs/heads/").split()
    if branches != ["refs/heads/main"]:
        problems.append(("branches", f"branches now {branches}"))
    head_ref = git(work, "symbolic-ref", "-q", "HEAD", check=False).strip()
    if head_ref != "refs/heads/main":
        problems.append(("branches", f"HEAD is {head_ref or 'detached'}"))
    log = git(work, "log", "--format=%B%x00", "refs/heads/main")
    messages = [m for m in log.split("\0") if m.strip()]
    verified = [b for b in view.batches if b.status == "verified"]
    for batch in scenario.batches:
        batch_id = str(batch["batch_id"])
        line = f"Recovery-Batch: {batch_id}"
        count = sum(line in m.splitlines() for m in messages)
        want = 0 if batch_id in scenario.skipped else 1
        if count != want:
            problems.append(("commits", f"batch {batch_id} committed {count} times"))
    if len(messages) != 1 + len(verified):
        problems.append(
            (
                "commits",
                f"{len(messages)} commits on main, {1 + len(verified)} expected",
            )
        )
    if expected is not None:
        tree = git(work, "rev-parse", "HEAD^{tree}").strip()
        if tree != expected.head_tree:
            changed = git(work, "diff", "--name-status", expected.head_tree, tree)
            problems.append(
                (
                    "branch content",
                    "HEAD's tree differs: " + changed.strip().replace("\n", "; "),
                )
            )
        index = git(work, "ls-files", "-s")
        if index != expected.index:
            diff = sorted(set(index.splitlines()) ^ set(expected.index.splitlines()))
            problems.append(
                ("user's index", "entries differ: " + "; ".join(diff)[:300])
            )
        status = status_of(work)
        if status != expected.status:
            diff = sorted(set(status.splitlines()) ^ set(expected.status.splitlines()))
            problems.append(("git status", "; ".join(diff)[:300]))
        files = worktree_files(work)
        if files != expected.files:
            odd = sorted(
                p
                for p in files.keys() | expected.files.keys()
                if files.get(p) != expected.files.get(p)
            )
            temp = [p for p in odd if _temporary(Path(p).name)]
            other = [p for p in odd if p not in temp and p not in USER_WORK]
            if temp:
                problems.append(("temp file in the workspace", ", ".join(temp)))
            if other:
                problems.append(("working tree", "differs in " + ", ".join(other)))
    for path, data in USER_WORK.items():
        target = work / path
        if not target.is_file() or target.read_bytes() != data:
            problems.append(("user's work", f"{path} changed"))
    staged = git(work, "rev-parse", f":{STAGED}", check=False).strip()
    blob = USER_WORK[STAGED]
    if staged != hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest():  # noqa: S324
        problems.append(("user's work", f"the staged {STAGED} changed"))
    for folder, _dirs, names in os.walk(work / ".git"):
        if Path(folder).name in ("objects", "pack") or "/objects/" in folder:
            left = [f for f in names if f.startswith(("tmp_obj_", "tmp_pack_"))]
        else:
            left = [f for f in names if _temporary(f)]
        for name in left:
            relative = (Path(folder) / name).relative_to(work).as_posix()
            problems.append(("temp file in .git", relative))
    for sub in ("logs", "tmp"):
        ours = work / ".recovery" / sub
        for entry in sorted(ours.iterdir()) if ours.is_dir() else []:
            if _temporary(entry.name):
                problems.append((f"temp file in .recovery/{sub}", entry.name))
    committed = git(work, "log", "--branches", "--name-only", "--format=")
    for path in sorted(set(committed.split())):
        name = Path(path).name
        if _temporary(name) or path.startswith(".recovery/") or path == "plan.json":
            problems.append(("temp file committed", path))
    return problems


def check_case(case: Path, scenario: Scenario, expected: Expected | None) -> Problems:
    """Every check on the case's folder once its run has ended."""
    with open_store(case) as app:
        try:
            view = latest_view(app)
        except Exception as exc:  # what the store holds is not a run
            return [("events: unreadable", f"{type(exc).__name__}: {exc}")]
        if app is None or view is None:
            return [("events: lost", "no run in the store")]
        problems = check_events(app, view, scenario, expected)
        problems += check_projections(app, view, case)
        problems += check_git(case, view, scenario, expected)
        problems += check_claim(case)
    return problems


# -- the sweep -----------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    """One crossing of a point in call ``call`` of the uninterrupted run."""

    call: int
    kind: str
    point: str
    n: int
    detail: str


@dataclass(frozen=True)
class Violation:
    scenario: str
    kind: str
    point: str
    n: int
    check: str
    message: str


@dataclass
class CaseResult:
    scenario: str
    crossing: Crossing
    killed: bool
    violations: list[Violation]
    seconds: float


@dataclass
class SweepResult:
    scenario: str
    crossings: int
    cases: list[CaseResult]
    baseline: list[Violation]
    seams: str
    seconds: float
    #: Points of the uninterrupted run that not every traced run crossed (a
    #: projection written by the runner or by the operator's ``decide``,
    #: whichever comes first): not swept, their number reported.
    unsteady: int = 0

    @property
    def killed(self) -> int:
        return sum(c.killed for c in self.cases)


def read_trace(path: Path, call: int, kind: str) -> tuple[list[Crossing], str]:
    crossings: list[Crossing] = []
    seams = ""
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("#patched"):
            seams = line
            continue
        point, n, detail = line.split("\t", 2)
        crossings.append(Crossing(call, kind, point, int(n), detail))
    return crossings, seams


class _Slot:
    """A worker's folder, and copies of it before each call of the
    uninterrupted run."""

    def __init__(self, root: Path, index: int) -> None:
        self.case = root / f"slot-{index}" / "case"
        self.snapshots = root / f"slot-{index}" / "before"
        self.calls: list[Call] = []


def _prepare_slot(
    slot: _Slot,
    template: Path,
    scenario: Scenario,
    env: Mapping[str, str],
    trace: Path,
    death: str | None,
) -> tuple[list[Call], list[str]]:
    restore(template, slot.case)
    last: tuple[str, ...] | None = None
    if death is not None:
        dead, problems = kill_first_runner(slot.case, scenario, env, death)
        if problems:
            return [dead], problems
        last = dead.argv

    def before(index: int, argv: tuple[str, ...]) -> Mapping[str, str]:
        shutil.copytree(slot.case, slot.snapshots / str(index), symlinks=True)
        return {
            "RECOVERY_CRASH_TRACE": str(trace / f"call-{index}.txt"),
            "RECOVERY_CRASH_ROOT": str(slot.case),
        }

    calls, problems = drive(slot.case, scenario, env, last=last, before_call=before)
    slot.calls = calls
    return calls, problems


def _run_case(
    slot: _Slot,
    scenario: Scenario,
    crossing: Crossing,
    env: Mapping[str, str],
    expected: Expected,
    death: tuple[Path, str] | None,
) -> CaseResult:
    started = time.monotonic()
    argv = slot.calls[crossing.call].argv
    dying: list[str] = []
    if death is not None:  # a runner of its own to die: its pid surely gone
        assert crossing.call == 0, "only the takeover is swept"
        template, point = death
        restore(template, slot.case)
        _dead, dying = kill_first_runner(slot.case, scenario, env, point)
    else:
        restore(slot.snapshots / str(crossing.call), slot.case)
    killed_file = slot.case.parent / "killed.txt"
    killed_file.unlink(missing_ok=True)
    crash = {
        "RECOVERY_CRASH_AT": f"{crossing.point}:{crossing.n}",
        "RECOVERY_CRASH_ROOT": str(slot.case),
        "RECOVERY_CRASH_KILLED": str(killed_file),
    }
    first = cli(slot.case, argv, env, crash, scenario)
    killed = first.code == -signal.SIGKILL

    def violation(check: str, message: str) -> Violation:
        return Violation(
            scenario.name, crossing.kind, crossing.point, crossing.n, check, message
        )

    violations = [violation("finish", problem) for problem in dying]
    if not killed and first.code not in _FINE[argv[0]]:
        tail = " | ".join(first.stderr.strip().splitlines()[-2:])
        violations.append(
            violation("finish", f"the crash run exited {first.code}: {tail}")
        )
    _calls, problems = drive(slot.case, scenario, env, last=argv)
    violations += [violation("finish", p) for p in problems]
    if not problems:
        violations += [
            violation(c, m) for c, m in check_case(slot.case, scenario, expected)
        ]
    return CaseResult(
        scenario.name,
        crossing,
        killed,
        violations,
        time.monotonic() - started,
    )


def sweep(
    scenario: Scenario,
    root: Path,
    *,
    workers: int = 2,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Sweeps every crossing of every call of ``scenario``'s uninterrupted run
    (the first ``limit`` ones, when given), ``workers`` cases at a time."""
    started = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    env = child_env(root)
    template = root / "template"
    make_template(template, scenario)
    death = (
        death_point(root, template, scenario, env)
        if scenario.dies_after is not None
        else None
    )
    slots = [_Slot(root, i) for i in range(max(1, workers))]
    trace = root / "trace"
    traces = [trace / f"slot-{i}" for i in range(len(slots))]  # each run traced
    for folder in traces:
        folder.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        prepared = list(
            pool.map(
                lambda s, t: _prepare_slot(s, template, scenario, env, t, death),
                slots,
                traces,
            )
        )
    baseline: list[Violation] = []
    kinds = [c.kind for c in slots[0].calls]
    for index, (calls, problems) in enumerate(prepared):
        for problem in problems:
            baseline.append(
                Violation(scenario.name, f"slot {index}", "-", 0, "finish", problem)
            )
        if [c.kind for c in calls] != kinds:
            baseline.append(
                Violation(
                    scenario.name, f"slot {index}", "-", 0, "finish", f"calls {calls}"
                )
            )
    with open_store(slots[0].case) as app:
        assert app is not None, "the uninterrupted run recorded nothing"
        expected = expected_of(slots[0].case, app)
    for index, slot in enumerate(slots):
        for check, message in check_case(slot.case, scenario, expected):
            baseline.append(
                Violation(scenario.name, f"slot {index}", "-", 0, check, message)
            )
    crossings: list[Crossing] = []
    seams = ""
    unsteady = 0
    for index, call in enumerate(slots[0].calls):
        found, seams_of_call = read_trace(
            traces[0] / f"call-{index}.txt", index, call.kind
        )
        # Only the points every traced run crossed: a crossing that depends
        # on a race with the operator's process is not a point a case surely
        # reaches.
        for other in range(1, len(slots)):
            seen = {
                (c.point, c.n)
                for c in read_trace(
                    traces[other] / f"call-{index}.txt", index, call.kind
                )[0]
            }
            steady = [c for c in found if (c.point, c.n) in seen]
            unsteady += len(found) - len(steady)
            found = steady
        crossings += found
        seams = seams or seams_of_call
    if death is not None:  # the case starts with a dead runner: its takeover
        crossings = [c for c in crossings if c.call == 0]
    selected = crossings[:limit] if limit is not None else crossings
    free: queue.Queue[_Slot] = queue.Queue()
    for slot in slots:
        free.put(slot)
    done = 0
    lock = threading.Lock()

    def one(crossing: Crossing) -> CaseResult:
        nonlocal done
        slot = free.get()
        started = time.monotonic()
        try:
            # A case that raced past its point (the operator's process wrote
            # a projection first) is tried again, twice at most.
            for _try in range(3):
                result = _run_case(
                    slot,
                    scenario,
                    crossing,
                    env,
                    expected,
                    None if death is None else (template, death),
                )
                if result.killed or result.violations:
                    break
        except Exception as exc:  # a bug of the harness: reported, not fatal
            failed = Violation(
                scenario.name,
                crossing.kind,
                crossing.point,
                crossing.n,
                "harness error",
                f"{type(exc).__name__}: {exc}",
            )
            result = CaseResult(
                scenario.name, crossing, False, [failed], time.monotonic() - started
            )
        finally:
            free.put(slot)
        with lock:
            done += 1
            if progress is not None and (done % 25 == 0 or done == len(selected)):
                progress(f"{scenario.name}: {done}/{len(selected)} cases")
        return result

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        cases = list(pool.map(one, selected))
    return SweepResult(
        scenario.name,
        len(crossings),
        cases,
        baseline,
        seams,
        time.monotonic() - started,
        unsteady,
    )


# -- the report -----------------------------------------------------------------


def _ranges(numbers: Sequence[int]) -> str:
    """``1-3,5`` for [1, 2, 3, 5]."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    start = prev = ordered[0]
    for n in [*ordered[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def format_report(results: Sequence[SweepResult]) -> str:
    """The sweep in numbers, and every violation grouped by check, call and
    point (with the n it was seen at, and an example message)."""
    lines = ["crash sweep", ""]
    lines.append(
        f"{'plan':<8} {'crossings':>9} {'killed':>7} {'not reached':>11} {'damaged':>8} {'seconds':>8}"
    )
    for r in results:
        damaged = sum(bool(c.violations) for c in r.cases)
        unreached = sum(not c.killed for c in r.cases)
        lines.append(
            f"{r.scenario:<8} {r.crossings:>9} {r.killed:>7} {unreached:>11} {damaged:>8} {r.seconds:>8.1f}"
        )
    total = sum(r.killed for r in results)
    lines.append(f"killed at {total} points in all")
    for r in results:
        if r.unsteady:
            lines.append(
                f"not swept ({r.scenario}): {r.unsteady} points only some traced "
                "runs crossed"
            )
    for r in results:
        missed = [c.crossing for c in r.cases if not c.killed]
        if missed:
            points = ", ".join(f"{m.kind} {m.point}:{m.n}" for m in missed[:12])
            lines.append(f"not reached ({r.scenario}): {points}")
    for r in results:
        if r.seams:
            lines.append(f"seams ({r.scenario}): {r.seams.split(' argv=')[0]}")
    groups: dict[tuple[str, str, str, str], list[Violation]] = defaultdict(list)
    for r in results:
        for v in r.baseline:
            groups[(v.scenario, v.check, v.kind, v.point)].append(v)
        for c in r.cases:
            for v in c.violations:
                groups[(v.scenario, v.check, v.kind, v.point)].append(v)
    lines += ["", "violations (plan | check | call | point | cases | n | example)"]
    if not groups:
        lines.append("none")
    for (plan, check, kind, point), found in sorted(groups.items()):
        cases = len({v.n for v in found})
        example = found[0].message[:160]
        numbers = _ranges([v.n for v in found]) if point != "-" else "-"
        lines.append(
            f"{plan} | {check} | {kind} | {point} | {cases} | {numbers} | {example}"
        )
    lines.append("")
    slowest = max((c.seconds for r in results for c in r.cases), default=0.0)
    lines.append(f"slowest case: {slowest:.1f}s")
    return "\n".join(lines)
