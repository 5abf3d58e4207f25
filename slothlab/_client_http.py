"""The HTTP transport under :mod:`slothlab.client`: one keep-alive session, deadlines, safe retries.

* Every call has a timeout: ``(connect, read)`` seconds, never "wait for ever".
* Retries only where a second try cannot do harm: GET, DELETE (cancel is idempotent) and POSTs
  that carry an idempotency key; a POST without one is sent exactly once.
* Failures become :class:`~slothlab.errors.ClientError` (the server answered with an error) or
  :class:`~slothlab.errors.AgentUnreachableError` (no answer), and the message names the server
  and the request.

>>> parse_sse(["event: stdout", "data: hello", "", ": ping", "data: a", "data: b", "",
...            "event: end", ""])
[('stdout', 'hello'), ('message', 'a\\nb'), ('end', '')]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlencode

import pydantic
import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from slothlab.errors import AgentUnreachableError, ClientError

__all__ = ["DEFAULT_TIMEOUT", "Transport", "parse_sse"]

DEFAULT_TIMEOUT = (3.05, 30.0)
"""Seconds to connect and to wait for an answer (a bit over 3 s: a lost SYN is resent at 3 s)."""

_RETRY_STATUS = frozenset({502, 503, 504})
_Model = TypeVar("_Model", bound=pydantic.BaseModel)
_STATUS_MESSAGE = {
    401: "the token was refused",
    403: "the token may not do this",
    404: "not found",
    413: "the request is too large",
    429: "too many requests",
}


class Transport:
    """A ``requests.Session`` bound to one server, with its token and a name for messages.

    Args:
        url: the server's base URL (``http://127.0.0.1:8700``).
        token: the bearer token (``None``: send none; only ``/health`` will answer).
        label: who the server is, for messages (``"master"``, ``"agent web-1"``).
        timeout: ``(connect, read)`` seconds for each request.
        retries: extra tries of a safe request after a failure without an answer or a 502-504.
        pool_size: keep-alive connections kept open (one per thread that calls at once).
        session: the session to use (inject one in tests); default a new one.
        sleep: the wait between tries (inject a fake to test without waiting).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        label: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 2,
        pool_size: int = 16,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ClientError(
                f"{label}: {url!r} is not an http(s) URL (e.g. http://127.0.0.1:8700)",
                server=label,
            )
        self.url = url.rstrip("/")
        self.label = label
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        if session is None:
            session = requests.Session()
            _read_environment_once(session, self.url)
        self.session = session
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @property
    def server(self) -> str:
        """``"<label> at <url>"``: how messages name this server."""
        return f"{self.label} at {self.url}"

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.session.close()

    # -- requests -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: tuple[float, float] | None = None,
        safe: bool | None = None,
        stream: bool = False,
        ok_status: Iterable[int] = (),
    ) -> requests.Response:
        """Send one request; retry it only when ``safe`` (default: GET and DELETE).

        Raises:
            AgentUnreachableError: no answer (refused, reset, timed out) after the tries.
            ClientError: the server answered with an error status (not in ``ok_status``).
        """
        retry = (method in ("GET", "DELETE")) if safe is None else safe
        tries = 1 + (self.retries if retry else 0)
        limits = timeout or self.timeout
        allowed = set(ok_status)
        target = self.url + path
        if params:  # encoded here: cheaper than requests' own handling of params
            kept = {k: v for k, v in params.items() if v is not None}  # as requests drops them
            target += ("&" if "?" in path else "?") + urlencode(kept, doseq=True)
        for attempt in range(1, tries + 1):
            try:
                response = self.session.request(
                    method, target, json=json, timeout=limits, stream=stream
                )
            except requests.exceptions.InvalidJSONError as exc:  # nothing was sent: no retry
                raise ClientError(
                    f"{self.server}: {method} {path}: the request cannot be sent as JSON "
                    f"({_short(exc)}); leave out NaN and infinities",
                    server=self.server,
                ) from None
            except requests.RequestException as exc:
                if attempt >= tries:
                    raise self._unreachable(method, path, exc, limits, attempt) from None
            else:
                if response.status_code < 400 or response.status_code in allowed:
                    return response
                if attempt >= tries or response.status_code not in _RETRY_STATUS:
                    raise self._refused(method, path, response)
                response.close()
            self.sleep(min(0.1 * 2 ** (attempt - 1), 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request` and the decoded JSON body."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"{self.server}: {method} {path} answered {response.status_code} with a body that "
                f"is not JSON: {response.text[:200]!r}",
                server=self.server,
                status=response.status_code,
            ) from None

    def parse(self, model: type[_Model], method: str, path: str, **kwargs: Any) -> _Model:
        """:meth:`request`, its JSON body read straight into ``model`` (pydantic's parser).

        Raises:
            ClientError: also when the answer is no such JSON document (the message says
                what was wrong).
        """
        response = self.request(method, path, **kwargs)
        try:
            return model.model_validate_json(response.content)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "the body"
            raise ClientError(
                f"{self.server}: {method} {path} answered {response.status_code} with a body "
                f"that is not a {model.__name__} ({where}: {first.get('msg', 'invalid')}): "
                f"{response.text[:200]!r}",
                server=self.server,
                status=response.status_code,
            ) from None

    def events(
        self, path: str, *, idle_timeout_s: float, params: dict[str, Any] | None = None
    ) -> Iterator[tuple[str, str]]:
        """Server-Sent Events from ``GET path`` as ``(event, data)`` pairs, until the stream ends.

        ``idle_timeout_s`` bounds the wait for the next line (the server's keep-alive comments
        reset it).
        """
        timeout = (self.timeout[0], idle_timeout_s)
        response = self.request("GET", path, params=params, timeout=timeout, stream=True)
        try:
            lines = response.iter_lines(decode_unicode=True)
            yield from _sse_events(lines)
        except requests.RequestException as exc:
            raise self._unreachable("GET", path, exc, timeout, 1) from None
        finally:
            response.close()

    # -- messages -------------------------------------------------------------------------------

    def _unreachable(
        self,
        method: str,
        path: str,
        exc: requests.RequestException,
        limits: tuple[float, float],
        attempts: int,
    ) -> AgentUnreachableError:
        if isinstance(exc, requests.ConnectTimeout):
            what = f"no connection within {limits[0]:g} s"
        elif isinstance(exc, requests.ReadTimeout):
            what = f"no answer within {limits[1]:g} s (is it stopped or overloaded?)"
        elif isinstance(exc, requests.ConnectionError) and "refused" in str(exc).lower():
            what = "connection refused (is it running? is the port right?)"
        elif isinstance(exc, requests.ConnectionError):
            what = f"connection failed ({_short(exc)})"
        else:
            what = _short(exc)
        tries = f" after {attempts} tries" if attempts > 1 else ""
        return AgentUnreachableError(
            f"{self.server}: {method} {path}: {what}{tries}", server=self.server
        )

    def _refused(self, method: str, path: str, response: requests.Response) -> ClientError:
        status = response.status_code
        code, message = "", ""
        try:
            body = response.json()
            detail = body.get("error", {}) if isinstance(body, dict) else {}
            code, message = str(detail.get("code", "")), str(detail.get("message", ""))
        except ValueError:
            message = response.text[:200]
        message = message or _STATUS_MESSAGE.get(status, response.reason or "error")
        return ClientError(
            f"{self.server}: {method} {path} failed with {status}: {message}",
            server=self.server,
            status=status,
            code=code,
        )


def _short(exc: BaseException) -> str:
    text = str(exc)
    # urllib3 nests the reason deep inside; its last part says what happened
    for marker in ("Errno", "Caused by", "reason:"):
        if marker in text:
            text = text[text.rindex(marker) :]
            break
    return text.strip("()' ")[:200] or type(exc).__name__


def _sse_events(lines: Iterable[str | bytes]) -> Iterator[tuple[str, str]]:
    event, data = "message", list[str]()
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if line == "":
            if data or event != "message":  # "event: end" may come without data
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value or "message"
        elif field == "data":
            data.append(value)
    if data or event != "message":
        yield event, "\n".join(data)


def _read_environment_once(session: requests.Session, url: str) -> None:
    """Take the environment's proxy and CA bundle settings now, not on every request.

    With ``trust_env`` on, requests reads them again for each request (it walks ``os.environ``
    twice; it stood out in profiles of a no-op task's round trip), and lets a
    ``~/.netrc`` entry for the server replace the bearer token with Basic credentials.
    """
    session.proxies.update(get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


def parse_sse(lines: Iterable[str | bytes]) -> list[tuple[str, str]]:
    """Server-Sent Events lines as ``(event, data)`` pairs (comments and ids are dropped)."""
    return list(_sse_events(lines))
