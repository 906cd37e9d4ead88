"""Recovery strategies: the registry, and the built-in ``noop``.

Strategies are found by name: an explicit :func:`register_strategy` first, then
the entry points of the group ``recovery_core.strategies`` (loaded lazily, on
first lookup). A plugin that fails to load becomes one :class:`RecoveryError`
naming the plugin and its package.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Final

import attrs

from recovery_core.errors import RecoveryError
from recovery_core.ports import FailureContext, RecoveryOutcome, RecoveryStrategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "NoopStrategy",
    "StrategyFactory",
    "UnknownStrategy",
    "available_strategies",
    "get_strategy",
    "register_strategy",
]

ENTRY_POINT_GROUP: Final = "recovery_core.strategies"

StrategyFactory = Callable[[], RecoveryStrategy]


class UnknownStrategy(RecoveryError, LookupError):
    """No strategy is registered under the name, or its plugin failed to load."""

    exit_code = 2


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


_registered: dict[str, StrategyFactory] = {"noop": NoopStrategy}


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Registers a strategy factory under ``name``; it wins over an entry point."""
    _registered[name] = factory


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_strategies() -> dict[str, str]:
    """Every strategy name with where it comes from (``built-in`` or a package)."""
    found = {
        name: (ep.dist.name if ep.dist else ep.value)
        for name, ep in _entry_points().items()
    }
    for name in _registered:
        found[name] = "registered" if name != "noop" else "built-in"
    return dict(sorted(found.items()))


def get_strategy(name: str) -> RecoveryStrategy:
    """A new strategy instance for ``name``."""
    factory = _registered.get(name)
    if factory is None:
        entry = _entry_points().get(name)
        if entry is None:
            known = ", ".join(available_strategies())
            raise UnknownStrategy(f"unknown strategy {name!r} (known: {known})")
        try:
            factory = entry.load()
        except Exception as exc:
            package = entry.dist.name if entry.dist else "an unknown package"
            raise UnknownStrategy(
                f"strategy {name!r} from {package} ({entry.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        _registered[name] = factory
    strategy = factory()
    if not isinstance(strategy, RecoveryStrategy):
        raise UnknownStrategy(f"strategy {name!r} does not have name and on_failure")
    return strategy
