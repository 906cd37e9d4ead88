"""Plugin registries: things found by name, from explicit registration or from
entry points.

An explicit :meth:`Registry.register` wins over an entry point of the same name.
Entry points are looked up on first use and loaded only when their name is
asked for; one that fails to load becomes one :class:`PluginError` naming the
plugin and its package.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from recovery_core.errors import RecoveryError

__all__ = ["PluginError", "Registry"]

T = TypeVar("T")


class PluginError(RecoveryError, LookupError):
    """No plugin is registered under the name, or its plugin failed to load."""

    exit_code = 2


class Registry(Generic[T]):
    """Named plugins of one kind (``what``), from the entry point ``group``."""

    def __init__(
        self,
        what: str,
        group: str,
        *,
        builtins: dict[str, T] | None = None,
        check: Callable[[object], bool] | None = None,
    ) -> None:
        self.what = what
        self.group = group
        self._builtins = dict(builtins or {})
        self._registered: dict[str, T] = {}
        self._loaded: dict[str, T] = {}
        self._check = check

    def register(self, name: str, plugin: T) -> None:
        """Registers ``plugin`` under ``name``; it wins over an entry point."""
        self._registered[name] = plugin

    def unregister(self, name: str) -> None:
        """Forgets an explicit registration (tests, and hosts that swap plugins)."""
        self._registered.pop(name, None)

    def _entry_points(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> dict[str, str]:
        """Every name with where it comes from: ``built-in``, ``registered`` or the
        distribution that declares the entry point."""
        found = {
            name: ep.dist.name if ep.dist else ep.value
            for name, ep in self._entry_points().items()
        }
        found.update(dict.fromkeys(self._builtins, "built-in"))
        found.update(dict.fromkeys(self._registered, "registered"))
        return dict(sorted(found.items()))

    def get(self, name: str) -> T:
        """The plugin registered under ``name``."""
        for source in (self._registered, self._loaded):
            if name in source:
                return source[name]
        entry = self._entry_points().get(name)
        if entry is None:
            if name in self._builtins:
                return self._builtins[name]
            known = ", ".join(self.names()) or "none"
            raise PluginError(f"unknown {self.what} {name!r} (known: {known})")
        package = entry.dist.name if entry.dist else "an unknown package"
        try:
            plugin: T = entry.load()
        except Exception as exc:
            raise PluginError(
                f"{self.what} {name!r} from {package} ({entry.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if self._check is not None and not self._check(plugin):
            raise PluginError(
                f"{self.what} {name!r} from {package} ({entry.value}) is not a valid "
                f"{self.what}"
            )
        self._loaded[name] = plugin
        return plugin

    def all(self) -> dict[str, T]:
        """Every plugin, loaded; the first that fails to load raises."""
        return {name: self.get(name) for name in self.names()}
