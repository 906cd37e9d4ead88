"""Fakes and conformance tests for integrators: people who write a recovery
strategy or a notifier, and hosts that test their own code against the runner.

The fakes stand in for the ports without git, processes, files or a clock:

- :class:`MemoryWorkspace`: a workspace kept in a dict, snapshots included;
- :class:`RecordingNotifier`: keeps every notification, or fails on demand;
- :class:`ScriptedSteps`: a step runner whose steps pass, fail, hang or raise
  as scripted, and may change the workspace first (an action);
- :class:`FakeHost`: a runner host that never waits.

The conformance tests are :class:`unittest.TestCase` classes, in the manner of
``eventsourcing.tests.persistence``: subclass one in your own test suite, fill
in its factory, and run it with pytest or unittest. Import this module, not
the classes, so that the test runner does not collect the base classes too::

    from recovery_core import testing

    class TestMyStrategy(testing.StrategyConformance):
        def make_strategy(self):
            return MyStrategy()

:class:`StrategyConformance` checks what :class:`~recovery_core.ports.RecoveryStrategy`
says a strategy does; :class:`NotifierConformance` what
:class:`~recovery_core.ports.Notifier` says a notifier does. Both also drive a
real run (a ``memory://`` store and the fakes above) with the plugin in it.

This module does no I/O of its own: a workspace that touches the disk (a
``GitWorkspace``) comes from the subclass that needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import unittest
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import attrs

from recovery_core.application import RecoveryApp
from recovery_core.outcomes import Completed, Halted, Outcome
from recovery_core.plan import ExecutionPlan, Step, parse_plan
from recovery_core.ports import (
    Committed,
    FailureContext,
    Notification,
    Notifier,
    Quarantine,
    RecoveryOutcome,
    RecoveryStrategy,
    StepContext,
    StepOutcome,
    Workspace,
)
from recovery_core.records import Failure
from recovery_core.registry import Registry
from recovery_core.strategies import get_strategy

__all__ = [
    "BASELINE_FILES",
    "FAULTY_FILES",
    "ODD_FAILURES",
    "CommitCall",
    "FakeHost",
    "MemoryWorkspace",
    "NotifierConformance",
    "RecordingNotifier",
    "Scripted",
    "ScriptedSteps",
    "StepCall",
    "StrategyConformance",
    "json_problems",
]


# -- fakes ------------------------------------------------------------------


@attrs.frozen
class CommitCall:
    """One call of :meth:`MemoryWorkspace.commit`: what it was asked to commit,
    the files' contents at that moment, and the commit id it answered."""

    baseline: str | None
    files: tuple[str, ...]
    message: str
    trailers: Mapping[str, str]
    contents: Mapping[str, str | None]
    commit: str


class MemoryWorkspace:
    """A :class:`~recovery_core.ports.Workspace` kept in memory: ``files`` maps
    a relative path to its text, and a snapshot is a copy of them. It never
    touches the disk; ``root`` is a path that is only a name.

    Nothing is ever off limits (``check`` finds nothing), ``commit`` always
    commits, recording the call in ``commits``; ``quarantine`` keeps the
    faulty files under ``kept[ref]``. ``holders`` and ``ignored`` keep what
    ``locked`` and ``ignore`` were given."""

    def __init__(
        self,
        root: Path = Path("/nowhere/workspace"),
        files: Mapping[str, str] | None = None,
    ) -> None:
        self._root = root
        self.files: dict[str, str] = dict(files or {})
        self.snapshots: dict[str, dict[str, str]] = {}
        self.kept: dict[str, dict[str, str]] = {}
        self.commits: list[CommitCall] = []
        self.ignored: list[Path] = []
        self.holders: list[dict[str, str]] = []
        self._quarantines: dict[str, Quarantine] = {}

    @property
    def root(self) -> Path:
        return self._root

    def write(self, files: Mapping[str, str | None]) -> None:
        """Changes files as a batch would: a text writes the file, None
        deletes it."""
        for path, text in files.items():
            if text is None:
                self.files.pop(path, None)
            else:
                self.files[path] = text

    def ignore(self, path: Path) -> None:
        self.ignored.append(path)

    @contextlib.contextmanager
    def locked(self, holder: Mapping[str, str]) -> Iterator[None]:
        self.holders.append(dict(holder))
        yield

    def prepare(self, *, commits: bool = False) -> None:
        pass

    def check(self, baseline: str | None) -> tuple[str, ...]:
        return ()

    def snapshot(self, *, run_id: str, batch_id: str, attempt: int) -> str | None:
        name = f"snap-{len(self.snapshots)}"
        self.snapshots[name] = dict(self.files)
        return name

    def changed_files(self, baseline: str | None) -> tuple[str, ...]:
        was = self.snapshots.get(baseline, {}) if baseline is not None else {}
        paths = {*was, *self.files}
        return tuple(sorted(p for p in paths if was.get(p) != self.files.get(p)))

    def read(self, snapshot: str, paths: Sequence[str]) -> Mapping[str, bytes | None]:
        kept = self.snapshots.get(snapshot)
        if kept is None:  # the commit a quarantine kept
            [ref] = [q.ref for q in self._quarantines.values() if q.commit == snapshot]
            kept = self.kept[ref]
        return {
            p: None if kept.get(p) is None else kept[p].encode("utf-8") for p in paths
        }

    def quarantine(
        self, *, run_id: str, batch_id: str, attempt: int, baseline: str
    ) -> Quarantine:
        ref = f"mem/{run_id}/{batch_id}/{attempt}/quarantine"
        done = self._quarantines.get(ref)
        if done is not None:  # called again for the same attempt: finish it
            self.restore(baseline, done.files)
            return done
        files = self.changed_files(baseline)
        tree = dict(self.files)
        self.kept[ref] = tree
        digest = hashlib.sha1(  # an id for the tree, as git names one
            json.dumps(sorted(tree.items())).encode("utf-8"), usedforsecurity=False
        ).hexdigest()
        kept = Quarantine(ref=ref, files=files, tree_id=digest, commit=digest)
        self._quarantines[ref] = kept
        self.restore(baseline, files)
        return kept

    def sandbox(self) -> None:
        return None  # no place to try a fix out: a proposing strategy says so

    def restore(self, baseline: str, files: Sequence[str]) -> None:
        was = self.snapshots[baseline]
        for path in files:
            if path in was:
                self.files[path] = was[path]
            else:
                self.files.pop(path, None)

    def commit(
        self,
        *,
        baseline: str | None,
        files: Sequence[str],
        message: str,
        trailers: Mapping[str, str],
    ) -> Committed:
        commit = f"{len(self.commits) + 1:040x}"
        self.commits.append(
            CommitCall(
                baseline=baseline,
                files=tuple(files),
                message=message,
                trailers=dict(trailers),
                contents={f: self.files.get(f) for f in files},
                commit=commit,
            )
        )
        return Committed(commit=commit)


class RecordingNotifier:
    """A :class:`~recovery_core.ports.Notifier` that keeps every notification
    in ``got``; with ``fail``, it raises after keeping it (the delivery
    failed)."""

    def __init__(self, channel: str = "recording", *, fail: bool = False) -> None:
        self._channel = channel
        self.fail = fail
        self.got: list[Notification] = []

    @property
    def channel(self) -> str:
        return self._channel

    def notify(self, notification: Notification) -> None:
        self.got.append(notification)
        if self.fail:
            raise RuntimeError(f"{self._channel} is down")


#: What a scripted step does: ``"pass"``, ``"fail"`` (exit code 1), ``"hang"``
#: (timed out), a :class:`~recovery_core.ports.StepOutcome` as it is, or an
#: exception, raised (a step runner that crashes).
Scripted = Literal["pass", "fail", "hang"] | StepOutcome | BaseException


@attrs.frozen
class StepCall:
    """One call of a :class:`ScriptedSteps`: which step of which attempt."""

    batch_id: str
    attempt: int
    phase: str
    step: str


class ScriptedSteps:
    """A :class:`~recovery_core.ports.StepRunner` that does what it is told.

    ``script`` maps a step's (or action's) name to what its calls do, in turn;
    once a name's script is used up, or for a name it lacks, the step does
    ``then``. ``effects`` maps a name to a callable run first with the step and
    its context (an action that writes the batch's change). ``calls`` keeps
    every call::

        workspace = MemoryWorkspace()
        steps = ScriptedSteps(
            {"unit_tests": ["fail", "pass"]},
            effects={"generate": lambda step, context: workspace.write({"a.py": "x"})},
        )
    """

    def __init__(
        self,
        script: Mapping[str, Sequence[Scripted]] | None = None,
        *,
        then: Scripted = "pass",
        effects: Mapping[str, Callable[[Step, StepContext], object]] | None = None,
    ) -> None:
        self.script: dict[str, list[Scripted]] = {
            name: list(results) for name, results in (script or {}).items()
        }
        self.then = then
        self.effects = dict(effects or {})
        self.calls: list[StepCall] = []

    def __call__(self, step: Step, context: StepContext) -> StepOutcome:
        self.calls.append(
            StepCall(context.batch.batch_id, context.attempt, context.phase, step.name)
        )
        effect = self.effects.get(step.name)
        if effect is not None:
            effect(step, context)
        queued = self.script.get(step.name)
        result = queued.pop(0) if queued else self.then
        if isinstance(result, BaseException):
            raise result
        if isinstance(result, StepOutcome):
            return result
        if result == "pass":
            return StepOutcome(passed=True, duration_s=0.0)
        if result == "fail":
            return StepOutcome(
                passed=False,
                duration_s=0.0,
                error=f"{step.name} failed (scripted)",
                exit_code=1,
            )
        return StepOutcome(
            passed=False,
            duration_s=0.0,
            error=f"{step.name} timed out (scripted)",
            timed_out=True,
        )


class FakeHost:
    """A :class:`~recovery_core.ports.RunnerHost`: ``host`` and ``pid`` are who
    this runner is; a runner is alive unless its ``(host, pid)`` is in
    ``dead`` (a set the hosts of one test may share). It never waits:
    ``sleep`` raises, so a test that would wait fails instead of hanging."""

    def __init__(
        self,
        pid: int = 4242,
        *,
        host: str = "test-host",
        dead: set[tuple[str, int]] | None = None,
    ) -> None:
        self._host = host
        self._pid = pid
        self.dead: set[tuple[str, int]] = set() if dead is None else dead

    @property
    def host(self) -> str:
        return self._host

    @property
    def pid(self) -> int:
        return self._pid

    def alive(self, host: str, pid: int) -> bool:
        return (host, pid) not in self.dead

    def sleep(self, seconds: float) -> None:
        raise AssertionError(f"a runner waited {seconds}s; no test runner may")


def json_problems(value: object, where: str = "details") -> list[str]:
    """What in ``value`` JSON cannot hold as it is, each with its path: only
    strings, finite numbers, booleans, None, lists (tuples) and dicts with
    string keys are kept as they are by an event; anything else is recorded
    as its text, which is not what the strategy meant."""
    if value is None or isinstance(value, str | bool | int):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{where}: {value} is not JSON"]
    if isinstance(value, list | tuple):
        return [
            p for i, v in enumerate(value) for p in json_problems(v, f"{where}[{i}]")
        ]
    if isinstance(value, Mapping):
        problems = []
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{where}: key {key!r} is not a string")
            problems.extend(json_problems(item, f"{where}[{key!r}]"))
        return problems
    return [f"{where}: a {type(value).__name__} is not a JSON value"]


# -- what the conformance tests run on --------------------------------------

#: The entry point group of notifier kinds (``--notify KIND:ARG``).
NOTIFIER_GROUP: Final = "recovery_core.notifiers"
#: The run every conformance test uses.
RUN_ID: Final = "0c0ffee0c0ffee0c0ffee0c0ffee0c0f"
#: The workspace before the failed batch.
BASELINE_FILES: Final[Mapping[str, str]] = {
    "app/__init__.py": "",
    "app/calc.py": "RATE = 2\n",
    "README.md": "# calc\n",
}
#: What the failed batch changed: a broken module, a new one, a removed file.
FAULTY_FILES: Final[Mapping[str, str | None]] = {
    "app/calc.py": "RATE = 1 / 0\n",
    "app/extra.py": "def double(x):\n    return 2 * x\n",
    "README.md": None,
}
_TRACEBACK: Final = (
    "Traceback (most recent call last):\n"
    '  File "<string>", line 1, in <module>\n'
    '  File "app/calc.py", line 1, in <module>\n'
    "    RATE = 1 / 0\n"
    "ZeroDivisionError: division by zero\n"
)
_PLAN: Final[Mapping[str, Any]] = {
    "plan_id": "conformance",
    "batches": [
        {
            "batch_id": "b1",
            "description": "Make the rate configurable",
            "component": "app/calc.py",
            "actions": [{"name": "generate", "run": ["generate"]}],
            "validation": [{"name": "smoke", "kind": "command", "run": ["smoke"]}],
        }
    ],
}
_LONG: Final = "AssertionError: " + "very long error " * 6000
_NON_ASCII: Final = "UnicodeError: «café» — 日本語 ✗ 💥 \u202e reversed"

#: Failures a strategy or notifier is given besides the plain one, by what is
#: odd about them: each changes the plain failure's fields.
ODD_FAILURES: Final[Mapping[str, Mapping[str, Any]]] = {
    "no component": {"component": ""},
    "a long error": {"error": _LONG, "traceback": _TRACEBACK * 200},
    "non-ASCII text": {
        "error": _NON_ASCII,
        "component": "app/ünï côdé.py:3",
        "output_tail": "✗ 1 failed — «boom»\n",
    },
    "no error text": {"error": "", "traceback": "", "exit_code": None},
    "a timeout": {"error": "timed out after 900 s", "timed_out": True},
    "no changed files": {"changed_files": ()},
    "a component that is no file": {"component": "app.calc:Rate.__init__"},
    "a build step": {"phase": "build", "step": "generate", "kind": "action"},
    "an interruption": {
        "phase": "runtime_execution",
        "step": "interrupted",
        "kind": "interruption",
        "error": "the runner was killed during the attempt",
    },
}


def _plan() -> ExecutionPlan:
    return parse_plan(dict(_PLAN), source="<conformance>", step_kinds={"command"})


def _plain_failure(changed: tuple[str, ...], baseline: str | None) -> Failure:
    return Failure(
        batch_id="b1",
        attempt=1,
        step="smoke",
        phase="post_build_validation",
        kind="command",
        component="app/calc.py:1",
        error="ZeroDivisionError: division by zero",
        traceback=_TRACEBACK,
        output_tail=_TRACEBACK,
        exit_code=1,
        duration_s=0.25,
        changed_files=changed,
        baseline=baseline,
        failure_reason="post_build_validation.smoke failed: ZeroDivisionError: "
        "division by zero",
    )


def _events(app: RecoveryApp, run_id: str, name: str) -> list[Any]:
    topic = f"recovery:{name}"
    return [e for e in app.history(run_id) if getattr(type(e), "TOPIC", "") == topic]


class _Conformance(unittest.TestCase):
    """What both kits share: the workspace a run happens in, and the run."""

    # Only the subclasses a plugin author writes are test cases (pytest reads
    # __test__; unittest skips the base in setUp).
    __test__ = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__test__ = not cls.__name__.startswith("_") and cls.__module__ != __name__

    def setUp(self) -> None:
        super().setUp()
        if type(self).__module__ == __name__:
            self.skipTest("a base class: subclass it and fill in its factory")

    def make_workspace(self) -> Workspace:
        """A new, empty workspace for one test; a :class:`MemoryWorkspace`
        unless overridden (a strategy that needs git returns a
        ``GitWorkspace`` of a new repository, and overrides
        :meth:`write_files` too)."""
        return MemoryWorkspace()

    def write_files(
        self, workspace: Workspace, files: Mapping[str, str | None]
    ) -> None:
        """Changes ``files`` in ``workspace`` as a batch would (None deletes).
        Override it with :meth:`make_workspace` for a workspace on disk."""
        if not isinstance(workspace, MemoryWorkspace):
            raise NotImplementedError(
                f"{type(self).__name__} makes a {type(workspace).__name__}: "
                "override write_files to change its files"
            )
        workspace.write(files)

    def run_to_halt(
        self,
        *,
        strategy: RecoveryStrategy | None = None,
        notifiers: Sequence[Notifier] = (),
    ) -> tuple[RecoveryApp, Halted, Workspace, Callable[[], Outcome]]:
        """A real run on a ``memory://`` store in a new workspace, through
        the failure of its one batch (the ``smoke`` step fails after the
        ``generate`` action wrote :data:`FAULTY_FILES`). Returns the app, the
        halt, the workspace and a function that runs on (the step passes the
        next time)."""
        workspace = self.make_workspace()
        self.write_files(workspace, BASELINE_FILES)

        def generate(step: Step, context: StepContext) -> None:
            self.write_files(workspace, FAULTY_FILES)

        steps = ScriptedSteps({"smoke": ["fail"]}, effects={"generate": generate})
        app = RecoveryApp.open("memory://")
        self.addCleanup(app.close)
        runner = app.runner(
            _plan(),
            workspace=workspace,
            strategy=strategy,
            notifiers=notifiers,
            step_runners={"command": steps},
            projections=[],
            host=FakeHost(),
        )
        halted = runner.run()
        self.assertIsInstance(halted, Halted, "the scripted failure did not halt")
        assert isinstance(halted, Halted)
        return app, halted, workspace, runner.run


class StrategyConformance(_Conformance):
    """Checks a recovery strategy against what
    :class:`~recovery_core.ports.RecoveryStrategy` says: subclass it, fill in
    :meth:`make_strategy`, and run it.

    By default the strategy meets a :class:`MemoryWorkspace`; a strategy that
    needs another workspace (a ``GitWorkspace``) overrides
    :meth:`make_workspace` and :meth:`write_files`. Set
    :attr:`registered_name` to also check that ``get_strategy`` finds it by
    that name (its entry point), and :attr:`proposes` to say whether it
    proposes a fix for the plain failure (a syntax error in ``app/calc.py``
    that a batch introduced; see :data:`FAULTY_FILES`)."""

    #: The name an entry point (or ``register_strategy``) gives the strategy.
    registered_name: ClassVar[str | None] = None
    #: Whether the strategy proposes a fix for the plain failure (None: it
    #: may or may not; a proposal is checked either way).
    proposes: ClassVar[bool | None] = None

    def make_strategy(self) -> RecoveryStrategy:
        """A new instance of the strategy under test."""
        raise NotImplementedError("fill in make_strategy")

    # -- helpers ------------------------------------------------------------

    def failure_context(self, **changes: Any) -> FailureContext:
        """A failure of the plain batch in a new workspace, as the runner tells
        it: the workspace holds the faulty change, ``baseline`` is the
        snapshot before it; ``changes`` change the failure's fields."""
        workspace = self.make_workspace()
        self.write_files(workspace, BASELINE_FILES)
        baseline = workspace.snapshot(run_id=RUN_ID, batch_id="b1", attempt=1)
        self.write_files(workspace, FAULTY_FILES)
        changed = workspace.changed_files(baseline)
        failure = attrs.evolve(_plain_failure(changed, baseline), **changes)
        return FailureContext(
            run_id=RUN_ID,
            plan_id="conformance",
            batch=_plan().batch("b1"),
            attempt=1,
            failure=failure,
            root=workspace.root,
            baseline=baseline,
            workspace=workspace,
        )

    def answer(self, context: FailureContext) -> RecoveryOutcome:
        """The strategy's answer to ``context``, checked as the runner records
        it."""
        strategy = self.make_strategy()
        outcome = strategy.on_failure(context)
        self.check_outcome(outcome)
        return outcome

    def check_outcome(self, outcome: object) -> None:
        """Fails unless ``outcome`` is a RecoveryOutcome that an event holds as
        it is."""
        self.assertIsInstance(outcome, RecoveryOutcome, "on_failure's answer")
        assert isinstance(outcome, RecoveryOutcome)
        self.assertIsInstance(outcome.analysis, str, "analysis")
        self.assertTrue(outcome.analysis.strip(), "the analysis says nothing")
        self.assertIsInstance(outcome.proposal, bool, "proposal")
        for name in ("patch_digest", "prevalidation"):
            value = getattr(outcome, name)
            self.assertIsInstance(value, str | None, name)
        self.assertIsInstance(outcome.details, Mapping, "details")
        self.assertEqual(json_problems(dict(outcome.details)), [])
        self.assertIsInstance(outcome.hints, tuple, "hints")
        for hint in outcome.hints:
            self.assertIsInstance(hint, str, "a hint")
        if outcome.quarantine is not None:
            self.assertIsInstance(outcome.quarantine, Quarantine, "quarantine")
            for name in ("ref", "tree_id", "commit"):
                self.assertIsInstance(getattr(outcome.quarantine, name), str, name)
        data = outcome.as_event_data()
        self.assertEqual(json.loads(json.dumps(data, allow_nan=False)), data)

    # -- the Protocol -------------------------------------------------------

    def test_is_a_recovery_strategy(self) -> None:
        """It has the Protocol's members: a name and on_failure."""
        strategy = self.make_strategy()
        self.assertIsInstance(strategy, RecoveryStrategy)
        self.assertTrue(callable(strategy.on_failure))

    def test_name_is_stable_text(self) -> None:
        """Its name is a non-empty string on one line, the same every time it
        is read and for every new instance."""
        strategy = self.make_strategy()
        self.assertIsInstance(strategy.name, str)
        self.assertTrue(strategy.name.strip(), "an empty name")
        self.assertEqual(strategy.name, strategy.name.strip())
        self.assertNotIn("\n", strategy.name)
        self.assertEqual(strategy.name, self.make_strategy().name)

    def test_is_found_by_its_registered_name(self) -> None:
        """``get_strategy(registered_name)`` makes it, and it answers to that
        name (what ``--strategy`` finds and the events record)."""
        if self.registered_name is None:
            self.skipTest("registered_name is not set")
        found = get_strategy(self.registered_name)
        self.assertIs(type(found), type(self.make_strategy()))
        self.assertEqual(found.name, self.registered_name)

    def test_answers_a_failure(self) -> None:
        """on_failure returns a RecoveryOutcome with an analysis, and details,
        hints and a quarantine that an event holds as they are."""
        outcome = self.answer(self.failure_context())
        if self.proposes is not None:
            self.assertEqual(outcome.proposal, self.proposes, "proposal")

    def test_answers_odd_failures(self) -> None:
        """on_failure does not raise for an odd failure (no component, a long
        error, non-ASCII text, no changed files, a timeout, a build step, an
        interruption): it answers each with an analysis."""
        for what, changes in ODD_FAILURES.items():
            with self.subTest(what):
                self.answer(self.failure_context(**changes))

    def test_answers_without_a_baseline(self) -> None:
        """A workspace that cannot snapshot gives no baseline; the strategy
        still answers."""
        context = self.failure_context()
        context = attrs.evolve(
            context, baseline=None, failure=attrs.evolve(context.failure, baseline=None)
        )
        self.answer(context)

    def test_answers_the_same_failure_again(self) -> None:
        """A runner killed before it recorded the answer asks again, for the
        same failure: the second answer comes too, and a quarantine keeps the
        same ref."""
        context = self.failure_context()
        first = self.answer(context)
        second = self.answer(context)
        if first.quarantine is not None:
            self.assertIsNotNone(second.quarantine)
            assert second.quarantine is not None
            self.assertEqual(second.quarantine.ref, first.quarantine.ref)

    def test_a_quarantine_takes_the_change_out(self) -> None:
        """When the strategy says where it kept the faulty change, the
        workspace no longer has that change: its files are as they were at
        the baseline."""
        context = self.failure_context()
        outcome = self.answer(context)
        if outcome.quarantine is None:
            self.skipTest("the strategy keeps no quarantine")
        left = context.workspace.changed_files(context.baseline)
        self.assertEqual(set(left) & set(outcome.quarantine.files), set())

    def test_a_proposal_can_be_applied(self) -> None:
        """A strategy that proposes a fix has ``recover(context)``; called as
        the runner calls it (the next attempt's snapshot as the baseline), it
        changes the workspace."""
        context = self.failure_context()
        strategy = self.make_strategy()
        outcome = strategy.on_failure(context)
        self.check_outcome(outcome)
        if not outcome.proposal:
            self.skipTest("the strategy proposes no fix")
        recover = getattr(strategy, "recover", None)
        self.assertTrue(callable(recover), "a proposal without a recover method")
        assert callable(recover)
        workspace = context.workspace
        baseline = workspace.snapshot(run_id=RUN_ID, batch_id="b1", attempt=2)
        recover(attrs.evolve(context, baseline=baseline))
        self.assertNotEqual(
            workspace.changed_files(baseline), (), "recover changed nothing"
        )

    # -- in a run -----------------------------------------------------------

    def test_answers_in_a_run(self) -> None:
        """In a real run, the runner records the strategy's answer
        (``RecoveryAttempted``) under its name, without it having raised; a
        proposal offers ``recover``, and deciding it applies the fix, which is
        validated and verified."""
        strategy = self.make_strategy()
        app, halted, _, run_on = self.run_to_halt(strategy=strategy)
        (answered,) = _events(app, halted.run_id, "RecoveryAttempted")
        self.assertEqual(answered.strategy, strategy.name)
        analysis = answered.outcome["analysis"]
        self.assertFalse(
            analysis.startswith(f"strategy {strategy.name} raised "), analysis
        )
        proposal = bool(answered.outcome["proposal"])
        self.assertEqual("recover" in halted.decisions, proposal)
        if not proposal:
            return
        app.decide(halted.run_id, "b1", "recover", operator="conformance")
        self.assertIsInstance(run_on(), Completed)
        steps = [
            (e.attempt, e.phase, e.step)
            for e in _events(app, halted.run_id, "StepPassed")
        ]
        self.assertIn((2, "build", "recover"), steps)


class NotifierConformance(_Conformance):
    """Checks a notifier against what :class:`~recovery_core.ports.Notifier`
    says: subclass it, fill in :meth:`make_notifier`, and run it.

    Fill in :meth:`make_undeliverable_notifier` too (a notifier of the same
    kind whose channel is down: a closed port, a file that cannot be
    written): the kit then checks that a failed delivery raises instead of
    being swallowed. Fill in :meth:`deliveries` to have every delivery
    counted where it arrived."""

    #: The kind an entry point of the group ``recovery_core.notifiers`` gives
    #: the notifier (``--notify KIND:ARG``); when set, the kit checks that
    #: the kind's factory, given :meth:`spec_argument`, makes one.
    registered_kind: ClassVar[str | None] = None

    def make_notifier(self) -> Notifier:
        """A new notifier under test, whose channel delivers."""
        raise NotImplementedError("fill in make_notifier")

    def spec_argument(self) -> str:
        """The ARG of ``--notify KIND:ARG`` for :attr:`registered_kind` (the
        text after the colon; empty by default)."""
        return ""

    def make_undeliverable_notifier(self) -> Notifier | None:
        """A notifier of the same kind whose deliveries fail; None (the
        default) leaves that check out."""
        return None

    def deliveries(self, notifier: Notifier) -> int | None:
        """How many notifications reached ``notifier``'s channel so far; None
        (the default): the test cannot tell."""
        return None

    # -- helpers ------------------------------------------------------------

    def notifications(self) -> dict[str, Notification]:
        """Real notifications of a halt, by what is odd about them: the plain
        one the runner made, and variations of it (see
        :data:`ODD_FAILURES`; also no hints, a store to name, a batch the
        host makes, a decision already recorded, no run state)."""
        collected = RecordingNotifier()
        self.run_to_halt(notifiers=[collected])
        (plain,) = collected.got
        found = {"plain": plain}
        for what, changes in ODD_FAILURES.items():
            found[what] = attrs.evolve(
                plain, failure=attrs.evolve(plain.failure, **changes)
            )
        found["no hints"] = attrs.evolve(plain, hints=())
        found["a store to name"] = attrs.evolve(
            plain, store="postgresql://ops@db.example:5432/recovery?schema=ci"
        )
        found["a batch the host makes"] = attrs.evolve(plain, made_by_host=True)
        found["no run state"] = attrs.evolve(plain, view=None, failure_log_entry=None)
        found["non-ASCII analysis"] = attrs.evolve(
            plain, analysis=_NON_ASCII, hints=("git diff — «x»",)
        )
        return found

    def deliver(self, notifier: Notifier, notification: Notification) -> None:
        """Delivers, checking that it returned and (when counted) arrived."""
        before = self.deliveries(notifier)
        self.assertIsNone(notifier.notify(notification))  # type: ignore[func-returns-value]
        after = self.deliveries(notifier)
        if before is not None and after is not None:
            self.assertEqual(after, before + 1, "the notification did not arrive")

    # -- the Protocol -------------------------------------------------------

    def test_is_a_notifier(self) -> None:
        """It has the Protocol's members: a channel and notify."""
        notifier = self.make_notifier()
        self.assertIsInstance(notifier, Notifier)
        self.assertTrue(callable(notifier.notify))

    def test_channel_is_stable_text(self) -> None:
        """Its channel (what ``OperatorNotified`` records) is a non-empty
        string on one line, the same every time it is read."""
        notifier = self.make_notifier()
        self.assertIsInstance(notifier.channel, str)
        self.assertTrue(notifier.channel.strip(), "an empty channel")
        self.assertNotIn("\n", notifier.channel)
        self.assertEqual(notifier.channel, notifier.channel)

    def test_is_found_by_its_registered_kind(self) -> None:
        """The entry point of :attr:`registered_kind` names a factory that,
        given the spec's argument, makes a notifier of the same class."""
        if self.registered_kind is None:
            self.skipTest("registered_kind is not set")
        kinds = Registry[Callable[[str], object]](
            "notifier", NOTIFIER_GROUP, check=callable
        )
        made = kinds.get(self.registered_kind)(self.spec_argument())
        self.assertIsInstance(made, Notifier)
        self.assertIs(type(made), type(self.make_notifier()))

    def test_delivers_a_halt(self) -> None:
        """notify delivers the runner's notification of a halt and returns."""
        self.deliver(self.make_notifier(), self.notifications()["plain"])

    def test_delivers_odd_notifications(self) -> None:
        """notify does not raise for an odd notification (no component, a
        long error, non-ASCII text, no hints, no run state, ...) while its
        channel works."""
        notifier = self.make_notifier()
        for what, notification in self.notifications().items():
            with self.subTest(what):
                self.deliver(notifier, notification)

    def test_delivers_the_same_notification_again(self) -> None:
        """A runner killed before it recorded a delivery notifies again: the
        second delivery of the same notification works too."""
        notifier = self.make_notifier()
        plain = self.notifications()["plain"]
        self.deliver(notifier, plain)
        self.deliver(notifier, plain)

    def test_raises_when_it_cannot_deliver(self) -> None:
        """A delivery that fails raises an Exception (which the runner records
        as not delivered) instead of being swallowed, and one that is not a
        BaseException that would stop the runner."""
        notifier = self.make_undeliverable_notifier()
        if notifier is None:
            self.skipTest("make_undeliverable_notifier is not filled in")
        plain = self.notifications()["plain"]
        try:
            notifier.notify(plain)
        except Exception as exc:
            self.assertTrue(str(exc).strip(), "an error that says nothing")
        except BaseException as exc:
            self.fail(
                f"a failed delivery raised {type(exc).__name__}, not an Exception"
            )
        else:
            self.fail("a delivery that cannot have worked did not raise")

    # -- in a run -----------------------------------------------------------

    def test_is_recorded_in_a_run(self) -> None:
        """In a real run, the halt's notification is delivered, recorded as
        ``OperatorNotified`` with the notifier's channel; an undeliverable one
        is recorded as not delivered, with its error, and the run halts all
        the same."""
        notifier = self.make_notifier()
        app, halted, _, _ = self.run_to_halt(notifiers=[notifier])
        (notified,) = _events(app, halted.run_id, "OperatorNotified")
        self.assertEqual(notified.channel, notifier.channel)
        self.assertTrue(notified.delivered, notified.error)
        down = self.make_undeliverable_notifier()
        if down is None:
            return
        app, halted, _, _ = self.run_to_halt(notifiers=[down])
        (notified,) = _events(app, halted.run_id, "OperatorNotified")
        self.assertEqual(notified.channel, down.channel)
        self.assertFalse(notified.delivered)
        self.assertTrue(notified.error)
