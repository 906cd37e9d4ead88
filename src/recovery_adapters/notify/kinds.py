"""The notifier kinds of ``--notify KIND[:ARG]``: factories that take the text
after the colon and return a :class:`~recovery_core.ports.Notifier`, found by
name in the entry point group ``recovery_core.notifiers`` (a third-party
package adds a kind by declaring one there) or registered by a host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from recovery_adapters.notify.apprise_notifier import apprise_notifier
from recovery_adapters.notify.command import command_notifier
from recovery_adapters.notify.console import console_notifier
from recovery_adapters.notify.inbox import inbox_notifier
from recovery_adapters.notify.webhook import webhook_notifier
from recovery_adapters.usage import UsageError
from recovery_core import Notifier, PluginError
from recovery_core.registry import Registry

__all__ = ["NOTIFIERS", "NotifierFactory", "make_notifier"]

#: Makes a notifier from the argument of its spec (``""`` when none is given).
NotifierFactory = Callable[[str], Notifier]

#: The notifier kinds by name. The built-in ones are declared as entry points
#: too; they are kept here so that an install whose entry points are stale
#: still has them.
NOTIFIERS: Final = Registry[NotifierFactory](
    "notifier",
    "recovery_core.notifiers",
    builtins={
        "apprise": apprise_notifier,
        "command": command_notifier,
        "console": console_notifier,
        "inbox": inbox_notifier,
        "webhook": webhook_notifier,
    },
    check=callable,
)


def make_notifier(spec: str) -> Notifier:
    """The notifier of one ``KIND[:ARG]`` spec; a :class:`UsageError` that
    names the spec when the kind is unknown (listing the known ones) or its
    argument is refused."""
    kind, _, arg = spec.partition(":")
    known = NOTIFIERS.names()
    if kind not in known:
        raise UsageError(
            f"--notify {spec!r}: unknown notifier {kind!r} "
            f"(available: {', '.join(known)})"
        )
    factory = NOTIFIERS.get(kind)
    try:
        notifier = factory(arg)
    except (UsageError, ValueError) as exc:
        raise UsageError(f"--notify {spec!r}: {exc}") from exc
    if not isinstance(notifier, Notifier):
        raise PluginError(
            f"notifier {kind!r} ({known[kind]}) made {type(notifier).__name__}, "
            "which has no channel and notify()"
        )
    return notifier
