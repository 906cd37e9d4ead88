"""The Apprise notifier: a short text through the Apprise library (an optional
extra, ``pip install 'recovery-core[apprise]'``), which reaches Slack, Teams,
Discord, e-mail, ntfy and about a hundred other services by URL."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from recovery_adapters.usage import UsageError
from recovery_adapters.words import kept_change_commands, next_commands
from recovery_core.ports import Notification

__all__ = ["AppriseNotifier", "apprise_notifier", "apprise_text"]

INSTALL_HINT = "pip install 'recovery-core[apprise]'"


def _apprise() -> ModuleType:
    """The Apprise library, imported when first asked for."""
    try:
        return importlib.import_module("apprise")
    except ImportError as exc:
        raise UsageError(
            f"the apprise notifier needs the Apprise library, which is not "
            f"installed: {INSTALL_HINT}"
        ) from exc


def apprise_text(n: Notification) -> tuple[str, str]:
    """The title and the body Apprise sends: the run, the batch, the step, the
    error's gist, the command that shows the quarantined change and the
    commands that decide."""
    failure = n.failure
    title = f"recovery: run {n.run_id[:8]} halted at batch {n.batch_id}"
    commands = next_commands(n.run_id, n.open, n.store)
    kept = kept_change_commands(n)
    lines = [
        f"Run {n.run_id} of plan {n.plan_id} halted: batch {n.batch_id} "
        f"attempt {n.attempt} failed.",
        f"Step: {failure.step_id}"
        + (f" in {failure.component}" if failure.component else ""),
        f"Error: {failure.summary or failure.error or '(none)'}",
        f"Workspace: {n.workspace}",
        *(() if kept is None else (f"See the change: {kept.show}",)),
        "Decide with one of:",
        *(f"  {c}" for c in commands.decide),
        f"then: {commands.resume}",
    ]
    return title, "\n".join(lines)


class AppriseNotifier:
    """Sends :func:`apprise_text` to one Apprise URL (``slack://...``,
    ``mailto://...``, ``ntfy://...``, ``json://...``); raises when Apprise
    reports that the service did not take it, with what Apprise logged."""

    def __init__(self, url: str) -> None:
        module = _apprise()
        self._module = module
        self._apprise: Any = module.Apprise()
        if not self._apprise.add(url):
            raise UsageError(
                "Apprise does not know the URL (see "
                "https://github.com/caronc/apprise/wiki for the services' URLs)"
            )
        #: The URL's scheme only: the rest often holds tokens.
        self.scheme = urlsplit(url).scheme or url.partition(":")[0]

    @property
    def channel(self) -> str:
        """``apprise:SCHEME`` (the rest of the URL left out)."""
        return f"apprise:{self.scheme}"

    def notify(self, notification: Notification) -> None:
        """Sends the title and body; raises unless Apprise delivered them."""
        title, body = apprise_text(notification)
        capture = self._module.LogCapture(level=logging.WARNING)
        with capture as logged:
            delivered = self._apprise.notify(
                body=body, title=title, notify_type=self._module.NotifyType.FAILURE
            )
            said = logged.getvalue().strip().splitlines()[-3:]
        if not delivered:
            detail = f": {' / '.join(said)}" if said else ""
            raise RuntimeError(f"apprise {self.scheme}:// did not deliver{detail}")


def apprise_notifier(arg: str) -> AppriseNotifier:
    """The ``apprise:URL`` kind of ``--notify``."""
    if not arg.strip():
        raise UsageError("apprise needs a URL: apprise:URL")
    return AppriseNotifier(arg)
