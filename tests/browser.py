"""Opening a page in headless Chromium (Debian's ``chromium``, driven by
Playwright, never a browser Playwright downloads), and noting what went wrong
there: console errors, uncaught script errors, and every request the page
made.

Skipped where Chromium or Playwright is missing, unless
``RECOVERY_REQUIRE_CHROMIUM=1`` (as in CI), where that fails the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: The flags that keep a headless Chromium off the network and quiet, as root.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """Debian's Chromium; skips (or fails, where it is required) without it
    or without Playwright."""
    required = os.environ.get("RECOVERY_REQUIRE_CHROMIUM") == "1"
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    problem = None
    if found is None:
        problem = "chromium is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is not None:
        if required:
            pytest.fail(f"RECOVERY_REQUIRE_CHROMIUM=1 but {problem}")
        pytest.skip(problem)
    assert found is not None
    return found


@attrs.define
class PageLog:
    """What a page did while it was open: console errors, uncaught script
    errors, and the URL of every request."""

    console_errors: list[str] = attrs.Factory(list)
    page_errors: list[str] = attrs.Factory(list)
    requests: list[str] = attrs.Factory(list)

    @property
    def errors(self) -> list[str]:
        """Every console and script error."""
        return [*self.console_errors, *self.page_errors]


@contextmanager
def opened(
    path: Path, *, width: int = 1200, height: int = 900
) -> Iterator[tuple[Page, PageLog]]:
    """``path`` opened in headless Chromium, loaded; the page and its log."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    log = PageLog()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_FLAGS)
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})

            def on_console(message: Any) -> None:
                if message.type == "error":
                    log.console_errors.append(message.text)

            page.on("console", on_console)
            page.on("pageerror", lambda error: log.page_errors.append(str(error)))
            page.on("request", lambda request: log.requests.append(request.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            yield page, log
        finally:
            browser.close()


def visible(page: Page, texts: Sequence[str]) -> dict[str, bool]:
    """Whether each text shows on the page (its first match is visible)."""
    return {text: page.get_by_text(text).first.is_visible() for text in texts}
