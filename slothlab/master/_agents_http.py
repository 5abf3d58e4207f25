"""HTTP calls from the master to agents, with failures sorted by what they mean for a task.

* :class:`NotStarted` — the request never reached the agent (connection refused, connect
  timeout, name not found) or the agent refused it before taking it (401, 403, 429): the task
  may go to another agent.
* :class:`InDoubt` — the request was sent and no clear answer came back (read timeout, a reset
  after sending, a 5xx): the task may have started; ask the same agent again with the same
  idempotency key, never another one.
* :class:`Refused` — the agent answered that the request itself is bad (400, 413, 422): no
  other agent would take it either.

One ``requests.Session`` (keep-alive) per thread, with a connect and a read timeout on every
call. (The client's ``AgentClient`` may replace this module later.)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

__all__ = ["AgentsHTTP", "InDoubt", "NotStarted", "Refused"]

_NOT_TAKEN = {401, 403, 429}


class AgentCallError(Exception):
    """A call to an agent failed; ``str()`` says how."""


class NotStarted(AgentCallError):
    """The task cannot have started on that agent: try another one.

    ``status`` is the HTTP status when the agent answered (401, 403, 429), None when no
    connection was made.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InDoubt(AgentCallError):
    """The task may have started: re-query the same agent with the same key."""


class Refused(AgentCallError):
    """The agent refused the request itself (status and error code attached)."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AgentsHTTP:
    """Calls agents' ``/v1`` routes with the cluster token.

    Args:
        token: the cluster token agents accept.
        connect_timeout_s: how long to wait for a connection (a failure means "not started").
        read_timeout_s: how long to wait for an answer once sent (a failure means "in doubt").
        session_factory: makes the per-thread sessions (tests may pass their own).
    """

    def __init__(
        self,
        token: str,
        *,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        session_factory: type[requests.Session] = requests.Session,
    ) -> None:
        self.token = token
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._factory = session_factory
        self._local = threading.local()

    def session(self) -> requests.Session:
        """This thread's keep-alive session."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._factory()
            session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        read_timeout_s: float | None = None,
    ) -> Any:
        """One request; the decoded JSON answer, or NotStarted / InDoubt / Refused."""
        timeout = (self.connect_timeout_s, read_timeout_s or self.read_timeout_s)
        try:
            response = self.session().request(
                method, url, json=json, params=params, timeout=timeout
            )
        except requests.RequestException as exc:
            raise classify(exc, url) from None
        return _answer(response, url)

    def stream(self, url: str, *, read_timeout_s: float = 300.0) -> requests.Response:
        """A streamed GET (Server-Sent Events); the caller closes the response."""
        timeout = (self.connect_timeout_s, read_timeout_s)
        try:
            response = self.session().get(url, stream=True, timeout=timeout)
        except requests.RequestException as exc:
            raise classify(exc, url) from None
        if response.status_code >= 300:
            try:
                _answer(response, url)
            finally:
                response.close()
        return response


def classify(exc: requests.RequestException, url: str) -> AgentCallError:
    """NotStarted when the connection was never made, InDoubt for anything after that.

    >>> classify(requests.ConnectTimeout("slow"), "http://h/").__class__.__name__
    'NotStarted'
    >>> classify(requests.ReadTimeout("slow"), "http://h/").__class__.__name__
    'InDoubt'
    """
    if isinstance(exc, requests.ConnectTimeout):
        return NotStarted(f"connect timeout to {url}")
    if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
        return NotStarted(f"connection refused by {url}")
    if isinstance(exc, requests.Timeout):
        return InDoubt(f"no answer from {url} in time (the task may have started)")
    return InDoubt(f"connection to {url} broke after sending ({type(exc).__name__})")


def _never_connected(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | ConnectTimeoutError | ConnectionRefusedError):
            return True
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return False


def _answer(response: requests.Response, url: str) -> Any:
    status = response.status_code
    if status < 300:
        try:
            return response.json()
        except ValueError:
            raise InDoubt(f"{url} answered {status} with a body that is not JSON") from None
    code, message = _error_of(response)
    text = f"{url} answered {status} {code}: {message}"
    if status in _NOT_TAKEN:
        raise NotStarted(text, status)
    if status >= 500:
        raise InDoubt(text)
    raise Refused(text, status, code)


def _error_of(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
        error = body["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "error", response.text[:200]
