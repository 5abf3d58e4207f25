"""Registration with the master and the heartbeat loop, with backoff and jitter.

The agent posts its :class:`~slothlab.protocol.AgentInfo` to ``{master}/v1/agents/register``,
then a :class:`~slothlab.protocol.Heartbeat` to ``{master}/v1/agents/{name}/heartbeat`` every
``interval_s``. When the master cannot be reached (or answers 5xx) the agent waits longer each
time — ``base * 2**(failures-1)`` capped at ``max_backoff_s``, times a jitter in [0.5, 1) so a
fleet does not come back in step — and keeps running its queue meanwhile. A 404 on a heartbeat
means the master forgot the agent (it restarted without its registry): it registers again at
once. A 401/403 is logged as a token problem and retried slowly.

:meth:`Registrar.step` does one exchange and returns the delay before the next, so tests drive
it without threads; :meth:`Registrar.start` runs it in a daemon thread.

>>> backoff_delay(1, base_s=0.5, max_s=30, jitter=1.0), backoff_delay(10, 0.5, 30, 1.0)
(0.5, 30.0)
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import requests

from slothlab.protocol import AgentInfo, Heartbeat

__all__ = ["Registrar", "backoff_delay"]

log = logging.getLogger("slothlab.agent.registration")


def backoff_delay(failures: int, base_s: float, max_s: float, jitter: float) -> float:
    """The wait after ``failures`` failures in a row; ``jitter`` in [0.5, 1] scales it."""
    raw = base_s * 2 ** max(failures - 1, 0) if failures < 64 else max_s
    return min(raw, max_s) * jitter


class Registrar:
    """Keeps an agent registered with its master.

    Args:
        master_url: the master's base URL (``http://host:8700``).
        token: the cluster token (sent as ``Authorization: Bearer``).
        info: returns the agent's current :class:`AgentInfo`.
        heartbeat: returns the current :class:`Heartbeat`.
        interval_s: seconds between heartbeats.
        timeout_s: the deadline of each request.
        base_backoff_s: the first wait after a failure.
        max_backoff_s: the longest wait.
        session: the HTTP session (keep-alive; tests may pass their own).
        rng: returns floats in [0, 1) for the jitter.
    """

    def __init__(
        self,
        master_url: str,
        token: str,
        info: Callable[[], AgentInfo],
        heartbeat: Callable[[], Heartbeat],
        *,
        interval_s: float = 5.0,
        timeout_s: float = 5.0,
        base_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        session: requests.Session | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self.master_url = master_url.rstrip("/")
        self.info = info
        self.heartbeat = heartbeat
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.rng = rng
        self.registered = False
        self.failures = 0
        self.registrations = 0
        self.heartbeats = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one exchange -----------------------------------------------------------------------------

    def step(self) -> float:
        """Register or heartbeat once; the seconds to wait before the next step."""
        try:
            if not self.registered:
                return self._register()
            return self._beat()
        except requests.RequestException as exc:
            return self._failed(f"master at {self.master_url} unreachable: {_short(exc)}")

    def _register(self) -> float:
        agent = self.info()
        response = self._post("/v1/agents/register", agent.model_dump(mode="json"))
        if response.status_code in (200, 201, 202, 204):
            if self.failures or self.registrations:
                log.info("agent %s registered again with %s", agent.name, self.master_url)
            self.registered, self.failures = True, 0
            self.registrations += 1
            return self.interval_s
        return self._refused("registration", response)

    def _beat(self) -> float:
        name = self.info().name
        beat = self.heartbeat()
        response = self._post(f"/v1/agents/{name}/heartbeat", beat.model_dump(mode="json"))
        if response.status_code == 404:
            log.warning(
                "master %s does not know agent %s; registering again", self.master_url, name
            )
            self.registered = False
            return 0.0
        if response.status_code in (200, 202, 204):
            if self.failures:
                log.info("master %s is back", self.master_url)
            self.failures = 0
            self.heartbeats += 1
            return self.interval_s
        return self._refused("heartbeat", response)

    def _post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(self.master_url + path, json=body, timeout=self.timeout_s)

    def _refused(self, what: str, response: requests.Response) -> float:
        detail = _error_message(response)
        if response.status_code in (401, 403):
            detail += " (the agent's token is not the master's: check --token / SLOTHLAB_TOKEN)"
        return self._failed(f"master refused the {what}: HTTP {response.status_code} {detail}")

    def _failed(self, message: str) -> float:
        self.failures += 1
        if message != self.last_error or self.failures in (1, 10) or self.failures % 100 == 0:
            log.warning(
                "%s (attempt %d); the agent keeps running its queue", message, self.failures
            )
        self.last_error = message
        jitter = 0.5 + 0.5 * self.rng()
        return backoff_delay(self.failures, self.base_backoff_s, self.max_backoff_s, jitter)

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> Registrar:
        """Run the loop in a daemon thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="agent-heartbeat", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop (a request in flight finishes first)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        self.session.close()

    def _loop(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            try:
                delay = self.step()
            except Exception:  # a bug in one step must not end the heartbeats
                log.exception("heartbeat step failed")
                delay = self.max_backoff_s


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
