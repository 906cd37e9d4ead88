"""The webhook notifier: an HTTP POST of the notification's JSON, retried with
backoff within a bound, optionally signed with HMAC-SHA256."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

from recovery_adapters.notify.schema import SCHEMA, notification_body, notification_id
from recovery_adapters.usage import UsageError, positive_setting
from recovery_core.ports import Notification

__all__ = [
    "WEBHOOK_BACKOFF_S",
    "WEBHOOK_SECRET_ENV",
    "WEBHOOK_TIMEOUT_S",
    "WEBHOOK_TRIES",
    "WebhookNotifier",
    "signature",
    "webhook_notifier",
]

#: How many times a POST is tried in all.
WEBHOOK_TRIES: Final = 3
#: The wait before the second, third, ... try (the last value repeats).
WEBHOOK_BACKOFF_S: Final = (0.5, 1.0)
#: How long one request may take (connecting, sending and the answer).
WEBHOOK_TIMEOUT_S: Final = 10.0
#: The environment variable whose value signs the body.
WEBHOOK_SECRET_ENV: Final = "RECOVERY_WEBHOOK_SECRET"  # noqa: S105 - its name
#: Answers worth another try besides 5xx: too many requests.
_RETRIED_4XX: Final = frozenset({408, 429})


def signature(secret: str, body: bytes) -> str:
    """The ``X-Recovery-Signature`` of ``body``: ``sha256=`` and the hex
    HMAC-SHA256 of the exact bytes, keyed with ``secret`` (as UTF-8)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer of its own: following it would turn the POST
    into a GET without the body."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class WebhookNotifier:
    """POSTs the notification's JSON to ``url`` (http or https).

    Delivered on a 2xx answer. A connection error, a timeout, a 5xx, 408 or
    429 answer is tried again after ``backoff_s`` (``tries`` in all); any other
    answer (a 4xx, a redirect) fails at once. With ``secret``, the request has
    ``X-Recovery-Signature: sha256=<hex>`` (see :func:`signature`); a user and
    password in the URL are sent as HTTP basic authentication. Every
    request has ``X-Recovery-Schema`` and ``X-Recovery-Notification`` (the
    notification's id, the same on every try, for a receiver to drop repeats).
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        tries: int = WEBHOOK_TRIES,
        backoff_s: Sequence[float] = WEBHOOK_BACKOFF_S,
        timeout_s: float = WEBHOOK_TIMEOUT_S,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"a webhook URL is http:// or https:// with a host, not {url!r}"
            )
        if tries < 1:
            raise UsageError(f"a webhook is tried at least once, not {tries}")
        parts.port  # noqa: B018 - a port that is no number raises ValueError here
        # Credentials in the URL go in an Authorization header (urllib would
        # take them for part of the host name).
        host = parts.netloc.rpartition("@")[2]
        self._authorization: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
            self._authorization = f"Basic {token}"
        self.url = urlunsplit(parts._replace(netloc=host))
        self.secret = secret or None
        self.tries = tries
        self.backoff_s = tuple(backoff_s) or (0.0,)
        self.timeout_s = timeout_s
        #: The URL without credentials, path or query (which may hold tokens):
        #: what the channel and the errors name.
        self.where = f"{parts.scheme}://{host}"
        self._opener = urllib.request.build_opener(_NoRedirect)

    @property
    def channel(self) -> str:
        """``webhook:SCHEME://HOST[:PORT]`` (the path and query left out)."""
        return f"webhook:{self.where}"

    def notify(self, notification: Notification) -> None:
        """POSTs the notification; raises once the tries are spent, or at an
        answer that another try would not change."""
        body = notification_body(notification)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "recovery-core",
            "X-Recovery-Schema": SCHEMA,
            "X-Recovery-Notification": notification_id(notification),
        }
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        if self.secret is not None:
            headers["X-Recovery-Signature"] = signature(self.secret, body)
        problems: list[str] = []
        for attempt in range(1, self.tries + 1):
            if attempt > 1:
                index = min(attempt - 2, len(self.backoff_s) - 1)
                time.sleep(self.backoff_s[index])
            problem, retry = self._post(body, headers)
            if problem is None:
                return
            problems.append(problem)
            if not retry:
                raise RuntimeError(f"webhook {self.where}: {problem} (not retried)")
        raise RuntimeError(
            f"webhook {self.where}: gave up after {self.tries} tries: "
            + "; ".join(problems)
        )

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[str | None, bool]:
        """One POST: None when delivered, else what went wrong and whether
        another try may go better."""
        # The scheme was checked to be http or https when the notifier was made.
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body, headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as answer:
                answer.read(65536)
                status: int = answer.status
        except urllib.error.HTTPError as exc:
            reason = exc.reason
            exc.close()
            retry = exc.code >= 500 or exc.code in _RETRIED_4XX
            return f"HTTP {exc.code} {reason}", retry
        except urllib.error.URLError as exc:
            return f"cannot connect: {exc.reason}", True
        except (TimeoutError, ConnectionError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}", True
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", status >= 500


def webhook_notifier(arg: str) -> WebhookNotifier:
    """The ``webhook:URL`` kind of ``--notify``; signed when
    ``RECOVERY_WEBHOOK_SECRET`` is set (and not empty). ``RECOVERY_WEBHOOK_TRIES``
    and ``RECOVERY_WEBHOOK_TIMEOUT_S`` change the bound and the time one request
    may take."""
    return WebhookNotifier(
        arg,
        secret=os.environ.get(WEBHOOK_SECRET_ENV) or None,
        tries=int(positive_setting("RECOVERY_WEBHOOK_TRIES") or WEBHOOK_TRIES),
        timeout_s=positive_setting("RECOVERY_WEBHOOK_TIMEOUT_S") or WEBHOOK_TIMEOUT_S,
    )
