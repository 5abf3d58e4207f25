"""Where alert notifications go: the :class:`Notifier` hook, a webhook and the log.

The alert manager calls ``notifier.notify(notification)`` from its evaluation; a notifier must
return quickly. :class:`WebhookNotifier` therefore only queues the notification; a worker
thread POSTs it, in Alertmanager's webhook format, with a timeout and bounded retries.

>>> seen = []
>>> notifier = CallbackNotifier(seen.append)
>>> notifier.notify(Notification("firing", (), 0.0))
>>> seen[0].to_webhook()["status"]
'firing'
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import requests

    from slothlab.metrics.alerts import Alert

__all__ = [
    "CallbackNotifier",
    "LogNotifier",
    "Notification",
    "Notifier",
    "WebhookNotifier",
]

log = logging.getLogger("slothlab.alerts")


@dataclass(frozen=True)
class Notification:
    """Alerts that started firing (or were re-notified) or resolved, sent together.

    Attributes:
        status: ``"firing"`` or ``"resolved"``.
        alerts: the alerts, all of that status.
        at: when the manager sent it (epoch seconds).
    """

    status: Literal["firing", "resolved"]
    alerts: Sequence[Alert]
    at: float

    def to_webhook(self, receiver: str = "slothlab", external_url: str = "") -> dict[str, Any]:
        """The payload Alertmanager's webhook receiver sends (version 4)."""
        alerts = [a.to_webhook() for a in self.alerts]
        common_labels = _common([a["labels"] for a in alerts])
        return {
            "version": "4",
            "groupKey": "{}:" + _group_key(common_labels),
            "truncatedAlerts": 0,
            "status": self.status,
            "receiver": receiver,
            "groupLabels": {k: v for k, v in common_labels.items() if k == "alertname"},
            "commonLabels": common_labels,
            "commonAnnotations": _common([a["annotations"] for a in alerts]),
            "externalURL": external_url,
            "alerts": alerts,
        }


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = dict(maps[0])
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def _group_key(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@runtime_checkable
class Notifier(Protocol):
    """Anything that takes notifications; ``notify`` must not block for long."""

    def notify(self, notification: Notification) -> None:
        """Deliver (or queue) one notification."""
        ...


class CallbackNotifier:
    """Calls a function with every notification (tests, notebooks, custom channels)."""

    def __init__(self, callback: Callable[[Notification], None]) -> None:
        self.callback = callback

    def notify(self, notification: Notification) -> None:
        """Call the function."""
        self.callback(notification)


class LogNotifier:
    """Writes one log line per alert: firing critical/error at ERROR, other firing at WARNING,
    resolved at INFO.

    Args:
        logger: the logger (default ``slothlab.alerts``).
    """

    _LEVELS: ClassVar[dict[str, int]] = {
        "critical": logging.ERROR,
        "error": logging.ERROR,
        "warning": logging.WARNING,
        "info": logging.INFO,
    }

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def notify(self, notification: Notification) -> None:
        """Log the alerts."""
        for alert in notification.alerts:
            level = logging.INFO
            if notification.status == "firing":
                level = self._LEVELS.get(alert.severity, logging.WARNING)
            summary = alert.annotations.get("summary", "")
            self.logger.log(
                level,
                "alert %s %s [%s]: %s",
                alert.name,
                notification.status,
                alert.severity,
                summary,
            )


class WebhookNotifier:
    """POSTs notifications as Alertmanager webhook JSON from a worker thread.

    Args:
        url: the receiver.
        timeout_s: the timeout of one POST.
        retries: further attempts after a failed one (connection error, 5xx, 429).
        backoff_s: the wait before the first retry; it doubles each time.
        queue_size: notifications waiting at most; when full the oldest is dropped.
        session: the ``requests.Session`` to use (default: one of its own).
        headers: extra request headers (an ``Authorization``, say).
        receiver: the ``receiver`` field of the payload.

    Attributes:
        sent, failed, dropped: counts of notifications delivered, given up on, and dropped
            because the queue was full.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        queue_size: int = 1000,
        session: requests.Session | None = None,
        headers: Mapping[str, str] | None = None,
        receiver: str = "slothlab",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {url!r} must start with http:// or https://")
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.headers, self.receiver = dict(headers or {}), receiver
        self.sent = self.failed = self.dropped = 0
        self._session, self._owns_session = session, session is None
        self._queue: collections.deque[Notification] = collections.deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, notification: Notification) -> None:
        """Queue the notification (never blocks); the worker sends it."""
        with self._cond:
            if self._stop.is_set():
                raise RuntimeError("this WebhookNotifier is closed")
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
                log.warning("webhook %s: queue full, dropping the oldest notification", self.url)
            self._queue.append(notification)
            self._ensure_worker()
            self._cond.notify_all()

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="slothlab-webhook", daemon=True)
            self._thread.start()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued notification was sent or given up on; False at timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (waiting at most ``timeout_s``), then stop the worker."""
        self.flush(timeout_s)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._owns_session and self._session is not None:
            self._session.close()
            self._session = None

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if not self._queue:
                    return
                notification, self._busy = self._queue.popleft(), True
            try:
                self._deliver(notification)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, notification: Notification) -> None:
        payload = notification.to_webhook(self.receiver)
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            error = self._post(payload)
            if error is None:
                self.sent += 1
                return
            if error.startswith("HTTP 4") and not error.startswith("HTTP 429"):
                break  # the receiver refuses this payload; sending it again will not help
            if attempt < self.retries and self._stop.wait(wait):
                break
            wait *= 2
        self.failed += 1
        log.warning(
            "webhook %s: gave up on a %s notification: %s", self.url, notification.status, error
        )

    def _post(self, payload: dict[str, Any]) -> str | None:
        import requests

        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.post(
                self.url, json=payload, headers=self.headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        with response:
            if response.status_code >= 300:
                return f"HTTP {response.status_code}"
        return None
