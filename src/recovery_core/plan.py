"""The execution plan: batches of actions and validation steps, loaded and checked.

A plan is JSON written by a bootstrap tool. :func:`load_plan` turns it into frozen
attrs values with cattrs and refuses a bad plan with one :class:`PlanError` that
lists every problem with its path. The raw JSON is kept, so that writing the
status back (``recovery_adapters.projections.write_plan_status``) leaves every
other key as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal, NewType, get_args

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)

from recovery_core.errors import PlanError
from recovery_core.steps import BUILTIN_STEP_KINDS, STEP_KINDS

__all__ = [
    "BUILTIN_STEP_KINDS",
    "Action",
    "AgentCommand",
    "Batch",
    "BatchStatus",
    "CommitStrategy",
    "ExecutionPlan",
    "LintFailOn",
    "Policy",
    "Step",
    "load_plan",
    "parse_plan",
    "plan_digest",
]

#: The step kinds that the design names. Plugins may add more.

CommitStrategy = Literal["commit", "none"]
#: Which lint findings fail a ``lint`` step: those the batch introduced, or any.
LintFailOn = Literal["new", "any"]
BatchStatus = Literal["pending", "running", "verified", "failed", "skipped"]

#: The keys of a batch that the library writes back; everything else is the user's.
STATUS_KEYS: Final = ("status", "verified", "failure_reason")

Identifier = NewType("Identifier", str)
ModuleName = NewType("ModuleName", str)
RelativePath = NewType("RelativePath", str)
StepKind = NewType("StepKind", str)
Argv = NewType("Argv", tuple[str, ...])
#: How many times a failed command step is run again before it fails.
Retries = NewType("Retries", int)
#: The most retries a step may ask for.
MAX_RETRIES: Final = 10
#: How many automatic decisions of one kind a batch's policy may allow.
PolicyBudget = NewType("PolicyBudget", int)
#: The most automatic retries, or recoveries, a policy may allow.
MAX_POLICY_BUDGET: Final = 10
#: A recovery strategy's registered name (looked up when a runner is made).
StrategyName = NewType("StrategyName", str)

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@attrs.frozen
class Action:
    """A command that makes a batch's change (phase ``build``)."""

    name: Identifier
    run: Argv
    timeout_s: float | None = None

    def as_step(self) -> Step:
        """The action as the ``command`` step that runs it."""
        return Step(
            name=self.name,
            kind=StepKind("command"),
            run=self.run,
            timeout_s=self.timeout_s,
        )


@attrs.frozen
class AgentCommand:
    """The agent a batch's ``architect-agent`` strategy asks for a fix when the
    batch fails: a command run in the workspace, killed at ``timeout_s``."""

    run: Argv
    timeout_s: float | None = None


@attrs.frozen
class Step:
    """A validation step; which options matter depends on its ``kind``."""

    name: Identifier
    kind: StepKind
    run: Argv | None = None
    timeout_s: float | None = None
    modules: tuple[ModuleName, ...] = ()
    imports: tuple[ModuleName, ...] = ()
    fail_on: LintFailOn = "new"
    retries: Retries = Retries(0)


@attrs.frozen
class Policy:
    """What may be decided for a batch's failures without asking an operator.

    ``strategy`` names the recovery strategy that answers this batch's
    failures instead of the run's. ``auto_recover`` is how many ``recover``
    decisions the policy may take for the batch (each only for a fix the
    strategy proposed and pre-validated), ``auto_retry`` how many ``retry``
    decisions; beyond them, and for an attempt that failed the same way as the
    one before, the operator is asked (see :mod:`recovery_core.policy`)."""

    strategy: StrategyName | None = None
    auto_retry: PolicyBudget = PolicyBudget(0)
    auto_recover: PolicyBudget = PolicyBudget(0)

    @property
    def automatic(self) -> bool:
        """Whether the policy may decide anything by itself."""
        return self.auto_retry > 0 or self.auto_recover > 0


@attrs.frozen
class Batch:
    """One unit of change: actions that make it, steps that validate it."""

    batch_id: Identifier
    description: str = ""
    component: RelativePath | None = None
    actions: tuple[Action, ...] = ()
    validation: tuple[Step, ...] = ()
    commit_strategy: CommitStrategy = "none"
    expected_surface_changes: tuple[str, ...] = ()
    agent: AgentCommand | None = None
    policy: Policy | None = None
    status: BatchStatus = "pending"
    verified: bool = False
    failure_reason: str | None = None


@attrs.frozen
class ExecutionPlan:
    """A loaded, checked plan. ``raw`` is the JSON as read; ``digest`` covers all of
    it but the status keys the library writes back."""

    plan_id: Identifier
    batches: tuple[Batch, ...]
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    source: str = attrs.field(default="<memory>", eq=False)
    digest: str = attrs.field(default="", eq=False)

    def batch(self, batch_id: str) -> Batch:
        """The batch with this id; :class:`KeyError` when there is none."""
        for batch in self.batches:
            if batch.batch_id == batch_id:
                return batch
        raise KeyError(batch_id)

    @property
    def batch_ids(self) -> tuple[str, ...]:
        """The batch ids in plan order."""
        return tuple(b.batch_id for b in self.batches)

    def require_runners(self, available: Collection[str] | None = None) -> None:
        """Refuses (:class:`PlanError`, exit 2) a plan with a step that no runner
        in ``available`` (by default, the registered step kinds) can run, naming
        each such step. A runner checks this before it records anything."""
        kinds = _registered_kinds() if available is None else frozenset(available)
        names = ", ".join(sorted(kinds)) or "none"
        problems = []
        for i, batch in enumerate(self.batches):
            if batch.actions and "command" not in kinds:
                problems.append(f"batches[{i}].actions: no runner for commands")
            for j, step in enumerate(batch.validation):
                if step.kind not in kinds:
                    problems.append(
                        f"batches[{i}].validation[{j}].kind: step kind {step.kind!r} "
                        f"has no runner in this installation (available: {names})"
                    )
        if problems:
            raise PlanError(self.source, problems)


class _Problem(ValueError):
    """A value that has the right type but not an acceptable content."""


def _type_name(value: object) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _expect(value: object, kind: type | tuple[type, ...], wanted: str) -> None:
    if isinstance(value, bool) and bool not in (
        kind if isinstance(kind, tuple) else (kind,)
    ):
        raise _Problem(f"expected {wanted}, got {_type_name(value)}")
    if not isinstance(value, kind):
        raise _Problem(f"expected {wanted}, got {_type_name(value)}")


def _str(value: object, _: type) -> str:
    _expect(value, str, "a string")
    assert isinstance(value, str)
    return value


def _bool(value: object, _: type) -> bool:
    _expect(value, bool, "true or false")
    assert isinstance(value, bool)
    return value


def _float(value: object, _: type) -> float:
    _expect(value, (int, float), "a number")
    assert isinstance(value, int | float)
    if not value > 0 or value != value or value == float("inf"):
        raise _Problem(f"expected a positive number of seconds, got {value!r}")
    return float(value)


def _retries(value: object, _: type) -> Retries:
    _expect(value, int, "a whole number")
    assert isinstance(value, int)
    if not 0 <= value <= MAX_RETRIES:
        raise _Problem(f"expected 0 to {MAX_RETRIES} retries, got {value!r}")
    return Retries(value)


def _policy_budget(value: object, _: type) -> PolicyBudget:
    _expect(value, int, "a whole number")
    assert isinstance(value, int)
    if not 0 <= value <= MAX_POLICY_BUDGET:
        raise _Problem(f"expected 0 to {MAX_POLICY_BUDGET}, got {value!r}")
    return PolicyBudget(value)


def _strategy_name(value: object, _: type) -> StrategyName:
    text = _str(value, str)
    if not text.strip():
        raise _Problem("expected a strategy name, got an empty string")
    return StrategyName(text)


def _identifier(value: object, _: type) -> Identifier:
    text = _str(value, str)
    if not _IDENTIFIER.fullmatch(text) or ".." in text or text.endswith((".", ".lock")):
        raise _Problem(
            f"{text!r} is not a valid id (letters, digits, '.', '_', '-'; "
            "starting with a letter or digit; at most 128 characters)"
        )
    return Identifier(text)


def _module(value: object, _: type) -> ModuleName:
    text = _str(value, str)
    if not _MODULE.fullmatch(text):
        raise _Problem(
            f"{text!r} is not a module name inside the workspace (dotted Python "
            "identifiers, such as 'app.agents')"
        )
    return ModuleName(text)


def _relative_path(value: object, _: type) -> RelativePath:
    text = _str(value, str)
    posix = PurePosixPath(text.replace("\\", "/"))
    if (
        not text
        or "\x00" in text
        or posix.is_absolute()
        or re.match(r"[A-Za-z]:", text)
        or ".." in posix.parts
    ):
        raise _Problem(f"{text!r} is outside the workspace (use a relative path)")
    return RelativePath(text)


def _argv(value: object, _: type) -> Argv:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise _Problem(f"cannot split command {value!r}: {exc}") from None
    elif isinstance(value, list):
        bad = [i for i, a in enumerate(value) if not isinstance(a, str)]
        if bad:
            raise _Problem(
                f"expected an array of strings, item {bad[0]} is "
                f"{_type_name(value[bad[0]])}"
            )
        argv = list(value)
    else:
        raise _Problem(f"expected an array of strings, got {_type_name(value)}")
    if not argv or not argv[0]:
        raise _Problem("the command is empty")
    return Argv(tuple(argv))


def _literal(cl: Any) -> Any:
    allowed = get_args(cl)

    def structure(value: object, _: type) -> object:
        _str(value, str)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise _Problem(f"must be one of {choices}, not {value!r}")
        return value

    return structure


def _make_converter(step_kinds: frozenset[str]) -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    converter.register_structure_hook(str, _str)
    converter.register_structure_hook(bool, _bool)
    converter.register_structure_hook(float, _float)
    converter.register_structure_hook(Identifier, _identifier)
    converter.register_structure_hook(ModuleName, _module)
    converter.register_structure_hook(RelativePath, _relative_path)
    converter.register_structure_hook(Argv, _argv)
    converter.register_structure_hook(Retries, _retries)
    converter.register_structure_hook(PolicyBudget, _policy_budget)
    converter.register_structure_hook(StrategyName, _strategy_name)

    def kind(value: object, _: type) -> StepKind:
        text = _str(value, str)
        if text not in step_kinds:
            known = ", ".join(sorted(step_kinds))
            raise _Problem(f"unknown step kind {text!r} (known: {known})")
        return StepKind(text)

    converter.register_structure_hook(StepKind, kind)
    for literal in (CommitStrategy, BatchStatus, LintFailOn):

        def is_literal(cl: Any, literal: Any = literal) -> bool:
            return bool(cl == literal)

        converter.register_structure_hook_func(is_literal, _literal(literal))

    def sequence(value: object, cl: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Problem(f"expected an array, got {_type_name(value)}")
        (item_type, _ellipsis) = get_args(cl)
        items: list[Any] = []
        errors: list[Exception] = []
        for index, item in enumerate(value):
            try:
                items.append(converter.structure(item, item_type))
            except Exception as exc:
                note = IterableValidationNote(f"index {index}", index, item_type)
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                errors.append(exc)
        if errors:
            raise IterableValidationError("invalid items", errors, cl)
        return tuple(items)

    def is_object(cl: Any) -> bool:
        return attrs.has(cl)

    def structure_object(cl: Any) -> Any:
        inner = converter.gen_structure_attrs_fromdict(cl)

        def structure(value: object, _: type) -> Any:
            if not isinstance(value, dict):
                raise _Problem(f"expected an object, got {_type_name(value)}")
            return inner(value, cl)

        return structure

    converter.register_structure_hook_func(
        lambda cl: (
            getattr(cl, "__origin__", None) is tuple
            and len(get_args(cl)) == 2
            and get_args(cl)[1] is Ellipsis
            and cl != Argv
        ),
        sequence,
    )
    converter.register_structure_hook_factory(is_object, structure_object)
    return converter


_CONVERTERS: dict[frozenset[str], cattrs.Converter] = {}


def _converter(step_kinds: frozenset[str]) -> cattrs.Converter:
    try:
        return _CONVERTERS[step_kinds]
    except KeyError:
        converter = _CONVERTERS[step_kinds] = _make_converter(step_kinds)
        return converter


def _describe(exc: BaseException, cl: type | None) -> str:
    if isinstance(exc, _Problem):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    return cattrs.v.format_exception(exc, cl)


def _structure_errors(exc: BaseException) -> list[str]:
    problems = []
    for message in cattrs.transform_error(exc, path="$", format_exception=_describe):
        text, _, path = message.rpartition(" @ ")
        path = path.removeprefix("$").removeprefix(".") or "(plan)"
        problems.append(f"{path}: {text}")
    return problems


def _dicts(value: object) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


_STEP_NEEDS: Final = {
    "command": (("run",), "a 'command' step needs 'run'"),
    "surface": (("modules",), "a 'surface' step needs 'modules'"),
    "smoke": (("imports", "run"), "a 'smoke' step needs 'imports' or 'run'"),
}


def _distance(a: str, b: str) -> int:
    """The edit distance of two short words (insertions, deletions,
    substitutions)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (x != y)),
            )
    return row[-1]


def _keys(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls) if f.name not in _INTERNAL)


_INTERNAL: Final = frozenset({"raw", "source", "digest"})


def _typos(
    where: str, value: Mapping[str, Any], cls: type
) -> Iterator[tuple[str, str]]:
    """Unknown keys that are likely typos of a key this object lacks (``knd``
    without ``kind``, ``timeout`` without ``timeout_s``): within two edits of
    it. Other unknown keys are the user's, kept as they are. Each with the path
    of the key it stands for."""
    known = _keys(cls)
    missing = [k for k in known if k not in value]
    for key in value:
        if key in known or len(key) < 3:
            continue
        near = [k for k in missing if _distance(key, k) <= 2]
        if near:
            yield (
                f"{where}{key}: unknown key; did you mean {near[0]!r}?",
                (f"{where}{near[0]}"),
            )


def _all_typos(raw: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    yield from _typos("", raw, ExecutionPlan)
    for index, batch in _dicts(raw.get("batches")):
        yield from _typos(f"batches[{index}].", batch, Batch)
        for group, cls in (("actions", Action), ("validation", Step)):
            for position, step in _dicts(batch.get(group)):
                yield from _typos(f"batches[{index}].{group}[{position}].", step, cls)


def _cross_checks(raw: Mapping[str, Any]) -> list[str]:
    """Checks that span several values, made on the raw JSON so that they are made
    even where another part of the plan failed to structure."""
    problems: list[str] = []
    batches = raw.get("batches")
    if isinstance(batches, list) and not batches:
        problems.append("batches: a plan needs at least one batch")
    first_seen: dict[str, int] = {}
    for index, batch in _dicts(batches):
        batch_id = batch.get("batch_id")
        if isinstance(batch_id, str):
            if batch_id in first_seen:
                problems.append(
                    f"batches[{index}].batch_id: duplicate batch id {batch_id!r} "
                    f"(first at batches[{first_seen[batch_id]}])"
                )
            else:
                first_seen[batch_id] = index
        problems += _policy_keys(f"batches[{index}].policy", batch.get("policy"))
        names: dict[str, str] = {}
        for group in ("actions", "validation"):
            for position, step in _dicts(batch.get(group)):
                where = f"batches[{index}].{group}[{position}]"
                name = step.get("name")
                if isinstance(name, str):
                    if name in names:
                        problems.append(
                            f"{where}.name: duplicate step name {name!r} in this "
                            f"batch (first at {names[name]})"
                        )
                    else:
                        names[name] = where
                kind = step.get("kind")
                needs = _STEP_NEEDS.get(kind) if isinstance(kind, str) else None
                if group == "validation" and needs:
                    keys, message = needs
                    if not any(key in step for key in keys):
                        problems.append(f"{where}: {message}")
    return problems


def _policy_keys(where: str, policy: object) -> list[str]:
    """A policy's unknown keys: unlike elsewhere in a plan, refused (a
    misspelt budget would silently ask the operator, or not)."""
    if not isinstance(policy, dict):
        return []
    known = _keys(Policy)
    problems = []
    for key in policy:
        if key in known:
            continue
        near = [k for k in known if k not in policy and _distance(key, k) <= 2]
        hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(known)}"
        problems.append(f"{where}.{key}: unknown key in a policy; {hint}")
    return problems


def plan_digest(raw: Mapping[str, Any]) -> str:
    """The SHA-256 of the plan's canonical JSON, without the keys the library writes
    back: the same plan has the same digest however far it has run."""
    stripped = dict(raw)
    batches = raw.get("batches")
    if isinstance(batches, list):
        stripped["batches"] = [
            {k: v for k, v in b.items() if k not in STATUS_KEYS}
            if isinstance(b, dict)
            else b
            for b in batches
        ]
    canonical = json.dumps(
        stripped, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _registered_kinds() -> frozenset[str]:
    return frozenset(STEP_KINDS.names())


#: How deep a plan's JSON may nest (a real plan nests about six levels).
MAX_DEPTH: Final = 64
_TOO_DEEP: Final = (
    f"(plan): nested more than {MAX_DEPTH} levels deep (arrays and objects "
    "within each other); a plan nests about six"
)


def _depth(raw: object) -> int:
    """How deep ``raw`` nests, counted without recursion (any depth)."""
    deepest, stack = 0, [(raw, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, level + 1) for item in items)
    return deepest


def parse_plan(
    raw: object,
    *,
    source: str = "<memory>",
    step_kinds: Collection[str] | None = None,
) -> ExecutionPlan:
    """Checks already-decoded plan JSON and returns the plan, or raises one
    :class:`PlanError` listing every problem found, each with its path.

    ``step_kinds`` are the kinds a step may have; by default, the design's kinds
    and every registered one (see :mod:`recovery_core.steps`). Whether this
    installation can run them is :meth:`ExecutionPlan.require_runners`."""
    if step_kinds is None:
        step_kinds = BUILTIN_STEP_KINDS | _registered_kinds()
    if not isinstance(raw, dict):
        raise PlanError(source, [f"(plan): expected an object, got {_type_name(raw)}"])
    if _depth(raw) > MAX_DEPTH:
        raise PlanError(source, [_TOO_DEEP])
    problems: list[str] = []
    plan: ExecutionPlan | None = None
    try:
        plan = _converter(frozenset(step_kinds)).structure(raw, ExecutionPlan)
    except (ClassValidationError, IterableValidationError, _Problem) as exc:
        problems.extend(_structure_errors(exc))
    for typo, meant in _all_typos(raw):
        # Said once: the typo, not also the key it stands for as missing.
        problems = [p for p in problems if p != f"{meant}: required field missing"]
        problems.append(typo)
    for problem in _cross_checks(raw):
        if problem not in problems:
            problems.append(problem)
    if problems or plan is None:
        raise PlanError(source, problems)
    return attrs.evolve(plan, raw=raw, source=source, digest=plan_digest(raw))


def load_plan(
    path: str | os.PathLike[str],
    *,
    step_kinds: Collection[str] | None = None,
) -> ExecutionPlan:
    """Reads and checks the plan file at ``path``.

    Raises :class:`PlanError` (exit code 2) for a missing or unreadable file,
    text that is not JSON, or a plan with problems; nothing is written either way.
    """
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(source, ["(file): no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(source, [f"(file): cannot read it: {exc}"]) from None
    try:
        raw = json.loads(text)
    except RecursionError:
        raise PlanError(source, [_TOO_DEEP]) from None
    except json.JSONDecodeError as exc:
        raise PlanError(
            source,
            [
                f"(file): not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ],
        ) from None
    return parse_plan(raw, source=source, step_kinds=step_kinds)


@attrs.frozen
class BatchStatusFields:
    """What the library writes into a batch of the plan file."""

    status: BatchStatus
    verified: bool
    failure_reason: str | None
