"""The submission fast path: plain ``POST /v1/tasks`` and ``/v1/tasks:batch`` before the framework.

FastAPI's middleware, routing and dependency layers cost a request a few hundred microseconds of
the agent's one event loop, as much as the rest of a no-op task's bookkeeping. :class:`AgentAPI`
takes the plain case of a submission itself: a JSON body with a ``Content-Length`` under the
cap, a valid bearer token, no query but ``?wait=S`` (0 to 60), a body the route's model
validates, no ``NaN``/``Infinity`` and no nesting the body guard would refuse. It submits,
waits when asked, and answers the same bytes the route would (:mod:`slothlab.agent._answers`).

Everything else — a missing or wrong token (401), a malformed, deep, oversized or chunked body
(400/413), an invalid field (422) — is replayed into the full app unchanged, so those answers
come from the one place that defines them (the routes, which also keep the OpenAPI document).
An error of the executor (429, 503, 409) is answered by the app's own exception handler. When
RBAC lands, :meth:`SubmitPath.take` must check the ``exec-shell``/``exec-lua`` capabilities as
the routes do.

>>> from fastapi.testclient import TestClient
>>> from slothlab.agent import Executor, create_app
>>> executor = Executor("doc", capacity=1)
>>> app = create_app(executor, token="t")
>>> with TestClient(app, headers={"Authorization": "Bearer t"}) as client:
...     done = client.post("/v1/tasks?wait=20", json={"kind": "lua", "source": "return 6 * 7"})
...     bad = client.post("/v1/tasks", json={"kind": "perl", "source": "1"})
>>> done.status_code, done.json()["result"], bad.status_code, app.fast_path.taken
(200, [42], 422, 1)
>>> executor.shutdown()
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request

from slothlab._asgi import (
    MAX_JSON_DEPTH,
    check_json,
    plain_json_post,
    read_body,
    replay_body,
)
from slothlab.agent._answers import batch_data, send_json, wait_all, wait_done
from slothlab.errors import AgentBusyError, AgentError
from slothlab.protocol import MAX_WAIT_S, BatchRequest, TaskRequest

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from slothlab.agent.executor import Executor

__all__ = ["AgentAPI", "SubmitPath"]

_PATHS = {"/v1/tasks": False, "/v1/tasks:batch": True}  # path -> is a batch
_REFUSED_BY_GUARD = (b"NaN", b"Infinity")  # the body guard answers 400 to these literals


class SubmitPath:
    """Takes plain submissions; hands every other request back for the full app.

    Args:
        executor: runs the tasks.
        max_body_bytes: the body cap (larger bodies go to the full app: 413).
        max_json_depth: the nesting the body guard allows (deeper bodies go to the full app).
    """

    def __init__(
        self, executor: Executor, *, max_body_bytes: int, max_json_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.executor = executor
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.taken = 0

    async def take(
        self, app: FastAPI, scope: Scope, receive: Receive, send: Send
    ) -> Receive | None:
        """Answer a plain submission (None), or return the ``receive`` the full app should use."""
        batch = _PATHS[scope["path"]]
        wait = _wait_of(scope.get("query_string", b""))
        if wait is None or not plain_json_post(
            scope, self.max_body_bytes, app.state.verifier.check_header
        ):
            return receive
        body = await read_body(receive)
        if body is None:
            return None  # the client went away: nothing to answer
        parsed = self._parse(body, batch)
        if parsed is None:
            return replay_body(body, receive)
        try:
            records = self.executor.submit_many(parsed)
        except (AgentBusyError, AgentError) as exc:
            await _refusal(app, exc, scope)(scope, receive, send)
            return None
        self.taken += 1
        if batch:
            done = wait > 0 and await wait_all(records, wait)
            data: Any = batch_data(records)
        else:
            record = records[0]
            if wait > 0 and not record.done:
                await wait_done(record, wait)
            done = wait > 0 and record.done
            data = record.as_dict()
        await send_json(send, data, 200 if done else 202)  # what the routes' responses write
        return None

    def _parse(self, body: bytes, batch: bool) -> list[TaskRequest] | None:
        """The tasks, or None when the full app must answer (400, 422)."""
        if any(word in body for word in _REFUSED_BY_GUARD):
            return None
        # The guard counts a scalar inside the deepest brackets as a level: n brackets can be
        # n + 1 levels, so a body is safe only below the limit.
        limit = self.max_json_depth
        deep = body.count(b"[") + body.count(b"{") >= limit and _nesting(body, limit) >= limit
        if deep and check_json(body, limit) is not None:
            return None
        try:
            if batch:
                return list(BatchRequest.model_validate_json(body).tasks)
            return [TaskRequest.model_validate_json(body)]
        except ValidationError:
            return None


class AgentAPI(FastAPI):
    """The agent's FastAPI app; ``fast_path`` (when set) takes plain submissions first."""

    fast_path: SubmitPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self.fast_path
        if (
            path is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in _PATHS
        ):
            rest = await path.take(self, scope, receive, send)
            if rest is None:
                return
            receive = rest
        await super().__call__(scope, receive, send)


def _refusal(app: FastAPI, exc: Exception, scope: Scope) -> Any:
    """The ASGI answer the app's own exception handler gives (same status, body, headers)."""
    handler = next(
        app.exception_handlers[c] for c in type(exc).__mro__ if c in app.exception_handlers
    )

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope), exc)  # type: ignore[misc]  # the app's are async
        await response(scope, receive, send)

    return answer


def _nesting(body: bytes, limit: int) -> int:
    """How deep the brackets of ``body`` nest outside its strings (``limit + 1``: deeper, or
    brackets that do not pair up, so the full check must decide). The body guard counts a
    scalar inside the deepest brackets as one level more, so below ``limit`` is safe.

    A batch of 500 tasks has 1,000 brackets but nests 3 deep; this answers with a regex pass
    per level instead of parsing the body a second time.

    >>> _nesting(b'{"tasks": [{"args": ["[[[", {"a": []}]}]}', 64), _nesting(b"[[[]]]", 2)
    (6, 3)
    """
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= limit:
        inner = _PAIR.sub(b"", brackets)  # one level: only pairs that were innermost before
        if len(inner) == len(brackets):
            return limit + 1
        brackets, depth = inner, depth + 1
    return depth if not brackets else limit + 1


# A string; an unterminated one runs to the end of the body (else every escaped quote in it is
# tried as a new start: quadratic time, minutes for a crafted body of a few hundred KiB).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_PAIR = re.compile(rb"\{\}|\[\]")


def _wait_of(query: bytes) -> float | None:
    """The ``?wait=`` seconds (0 without one), or None for any other query (the route's).

    >>> _wait_of(b""), _wait_of(b"wait=2.5"), _wait_of(b"wait=61"), _wait_of(b"x=1")
    (0.0, 2.5, None, None)
    """
    if not query:
        return 0.0
    if query.startswith(b"wait=") and query[5:].replace(b".", b"", 1).isdigit():  # the usual
        wait = float(query[5:])
        return wait if wait <= MAX_WAIT_S else None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "wait":
        return None
    try:
        wait = float(pairs[0][1])
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_WAIT_S else None
