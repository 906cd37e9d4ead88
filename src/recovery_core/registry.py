"""Plugin registries: things found by name, from explicit registration or from
entry points.

An explicit :meth:`Registry.register` wins over an entry point of the same name.
Entry points are looked up on first use and loaded only when their name is
asked for; one that fails to load becomes one :class:`PluginError` naming the
plugin and its package.

:func:`provenance_of` says which installed package (and version) a plugin's
code comes from, for the record: it reads the installed packages' metadata,
and writes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from importlib.metadata import (
    EntryPoint,
    PackageNotFoundError,
    entry_points,
    packages_distributions,
    version,
)
from typing import Final, Generic, TypeVar

import attrs

from recovery_core.errors import RecoveryError

__all__ = ["OWN_DISTRIBUTION", "PluginError", "Provenance", "Registry", "provenance_of"]

T = TypeVar("T")

#: The distribution package this code ships in, and its top-level packages.
OWN_DISTRIBUTION: Final = "recovery-core"
_OWN_PACKAGES: Final = frozenset({"recovery_core", "recovery_adapters"})


@attrs.frozen
class Provenance:
    """Where a plugin's code comes from: the distribution package that ships
    it (as pip names it) and that package's version; None for code in no
    installed package (a script, a test module, a host's own code)."""

    package: str | None = None
    version: str | None = None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@functools.cache
def _module_owners() -> Mapping[str, list[str]]:
    # Read once per process: it walks every installed package's file list.
    return packages_distributions()


@functools.cache
def _provenance(top: str, group: str | None) -> Provenance:
    if top in _OWN_PACKAGES:
        return Provenance(OWN_DISTRIBUTION, _version(OWN_DISTRIBUTION))
    # A package installed in development mode lists no modules of its own,
    # but its entry points name them.
    for entry in entry_points(group=group) if group else ():
        if entry.dist is not None and entry.module.partition(".")[0] == top:
            return Provenance(entry.dist.name, entry.dist.version)
    owners = _module_owners().get(top) or []
    if not owners:
        return Provenance()
    return Provenance(owners[0], _version(owners[0]))


def provenance_of(plugin: object, group: str | None = None) -> Provenance:
    """The installed package that ships ``plugin`` (an object, its class, or a
    function), found by its module: recovery-core for the built-in ones, a
    package that declares an entry point in ``group`` for that module, else
    the package whose files hold the module."""
    module = getattr(plugin, "__module__", None) or type(plugin).__module__
    return _provenance(str(module).partition(".")[0], group)


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

    def provenance(self, name: str) -> Provenance:
        """Where the plugin registered under ``name`` comes from: the package
        that declares its entry point, recovery-core for a built-in one, or
        the package of a registered factory's module."""
        if name in self._registered:
            return provenance_of(self._registered[name], self.group)
        entry = self._entry_points().get(name)
        if entry is not None and entry.dist is not None:
            return Provenance(entry.dist.name, entry.dist.version)
        if name in self._builtins:
            return Provenance(OWN_DISTRIBUTION, _version(OWN_DISTRIBUTION))
        return Provenance()

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
