"""Recovery strategies: the registry, and the built-in ``noop``.

Strategies are found by name: an explicit :func:`register_strategy` first, then
the entry points of the group ``recovery_core.strategies`` (loaded lazily, on
first lookup). A plugin that fails to load becomes one error naming the plugin
and its package. An entry point names a factory: a callable with no arguments
that returns a strategy (a class with a no-argument constructor will do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs

from recovery_core.errors import PlanError
from recovery_core.plan import ExecutionPlan
from recovery_core.ports import FailureContext, RecoveryOutcome, RecoveryStrategy
from recovery_core.registry import PluginError, Provenance, Registry, provenance_of

__all__ = [
    "ENTRY_POINT_GROUP",
    "STRATEGIES",
    "NoopStrategy",
    "StrategyFactory",
    "UnknownStrategy",
    "available_strategies",
    "batch_strategies",
    "default_strategy",
    "get_strategy",
    "register_strategy",
    "strategy_provenance",
]

ENTRY_POINT_GROUP: Final = "recovery_core.strategies"

StrategyFactory = Callable[[], RecoveryStrategy]

#: Raised for a name with no strategy, or a strategy plugin that fails to load.
UnknownStrategy = PluginError


@attrs.frozen
class NoopStrategy:
    """Records the failure and nothing else: the faulty change stays in the tree
    for inspection, and no fix is proposed."""

    name: str = "noop"

    def on_failure(self, context: FailureContext) -> RecoveryOutcome:
        """Returns an analysis that names the failed step and component."""
        failure = context.failure
        where = f" in {failure.component}" if failure.component else ""
        return RecoveryOutcome(
            analysis=(
                f"{failure.phase}.{failure.step} failed{where}; the change was left "
                "in the working tree for inspection"
            )
        )


#: The strategy factories by name.
STRATEGIES: Final = Registry[StrategyFactory](
    "strategy", ENTRY_POINT_GROUP, builtins={"noop": NoopStrategy}, check=callable
)


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Registers a strategy factory under ``name``; it wins over an entry point."""
    STRATEGIES.register(name, factory)


def available_strategies() -> dict[str, str]:
    """Every strategy name with where it comes from (``built-in``, ``registered``
    or the package that declares it)."""
    return STRATEGIES.names()


def default_strategy(workspace: object) -> RecoveryStrategy:
    """The workspace's own default strategy (``default_strategy()``, as a git
    workspace has), else ``noop``."""
    make = getattr(workspace, "default_strategy", None)
    strategy = make() if callable(make) else None
    return strategy if isinstance(strategy, RecoveryStrategy) else NoopStrategy()


def strategy_provenance(strategy: object) -> Provenance:
    """The package and version that ship ``strategy`` (what
    ``RecoveryAttempted`` records beside its name): recovery-core for the
    built-in ones, the package of a plugin's entry point, else the installed
    package that holds its module; None for code in no installed package."""
    return provenance_of(strategy, ENTRY_POINT_GROUP)


def get_strategy(name: str) -> RecoveryStrategy:
    """A new strategy instance for ``name``."""
    strategy = STRATEGIES.get(name)()
    if not isinstance(strategy, RecoveryStrategy):
        raise UnknownStrategy(
            f"strategy {name!r} does not have a name and an on_failure method"
        )
    return strategy


def batch_strategies(plan: ExecutionPlan) -> dict[str, RecoveryStrategy]:
    """An instance of each strategy that a batch's policy names, by name;
    refuses (:class:`PlanError`, exit 2) a plan whose policy names a strategy
    that is not registered, or fails to load, with the path of each."""
    found: dict[str, RecoveryStrategy] = {}
    problems: list[str] = []
    for index, batch in enumerate(plan.batches):
        name = batch.policy.strategy if batch.policy is not None else None
        if name is None or name in found:
            continue
        try:
            found[name] = get_strategy(name)
        except PluginError as exc:
            problems.append(f"batches[{index}].policy.strategy: {exc}")
    if problems:
        raise PlanError(plan.source, problems)
    return found
