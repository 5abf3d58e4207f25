"""What the agent and master HTTP apps share: error bodies, input limits and token checks.

* :class:`BodyGuard` is pure ASGI middleware: it refuses a body over the cap with 413 (from
  ``Content-Length`` before reading, or while counting a chunked body), and a JSON body that is
  malformed, nested deeper than :data:`MAX_JSON_DEPTH`, or carries ``NaN``/``Infinity`` with 400 —
  before FastAPI parses it, where a ``RecursionError`` would otherwise be a 500.
* :func:`install_error_handlers` makes every error the ``{"error": {"code", "message"}}`` body of
  :class:`slothlab.protocol.ErrorBody`, validation errors included (422, naming the field).
* :func:`require` is the route dependency for a capability. Today any valid cluster token holds
  every capability; RBAC (roles mapped to capabilities) plugs in here, and every route already
  declares what it needs (:data:`CAPABILITIES`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request

__all__ = [
    "CAPABILITIES",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "BodyGuard",
    "error_response",
    "install_error_handlers",
    "read_body",
    "replay_body",
    "require",
]

log = logging.getLogger("slothlab.http")

MAX_BODY_BYTES = 2 << 20
"""Largest request body accepted by default (2 MiB)."""

MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted."""

CAPABILITIES = frozenset(
    {"read-metrics", "exec-lua", "exec-shell", "manage-state", "manage-agents", "read-audit",
     "manage-secrets", "admin"}
)  # fmt: skip
"""What a route may require (notes/reliability.md, RBAC)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send numbers as finite values or null")


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def check_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``body`` is not acceptable JSON, or None when it is."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        return f"JSON nested too deeply (at most {max_depth} levels)"
    except UnicodeDecodeError:
        return "the body is not UTF-8 text"
    except ValueError as exc:
        return f"malformed JSON: {exc}"
    if _depth(value, max_depth) > max_depth:
        return f"JSON nested too deeply (at most {max_depth} levels)"
    return None


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """ASGI middleware capping request bodies and vetting JSON before the app parses it.

    Args:
        app: the wrapped ASGI app.
        max_body_bytes: the cap; larger bodies get 413.
        max_json_depth: the deepest JSON nesting accepted.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES, max_json_depth: int = 64
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, 400, "bad_request", "Content-Length is not a number")
                return
            if int(declared) > self.max_body_bytes:
                await self._too_large(send)
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip()
        if body and content_type == b"application/json":
            problem = check_json(body, self.max_json_depth)
            if problem:
                await _send_error(send, 400, "bad_json", problem)
                return
        await self.app(scope, replay_body(body, receive), send)

    async def _too_large(self, send: Send) -> None:
        limit = self.max_body_bytes
        message = f"request body over {limit:,} bytes; send less (or a batch in several requests)"
        await _send_error(send, 413, "too_large", message)


def plain_json_post(
    scope: Scope, max_body_bytes: int, accepts_token: Callable[[bytes | None], bool]
) -> bool:
    """True when a request is what the fast paths (agent submissions, master heartbeats) take:
    a JSON body with a ``Content-Length`` under the cap and a bearer token ``accepts_token``
    takes. Anything else goes to the full app, whose answers (401, 413, 422) are the routes'.
    """
    auth = kind = length = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            auth = value
        elif key == b"content-type":
            kind = value
        elif key == b"content-length":
            length = value
    return (
        length is not None
        and length.isdigit()
        and int(length) <= max_body_bytes
        and kind is not None
        and kind.split(b";", 1)[0].strip().lower() == b"application/json"
        and accepts_token(auth)
    )


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body from ``receive``, or None when the client went away."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the common case: one message
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands ``body`` over once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def error_response(status: int, code: str, message: str) -> Any:
    """A JSONResponse with the error body."""
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


def install_error_handlers(app: FastAPI) -> None:
    """Make every error an :class:`~slothlab.protocol.ErrorBody`, never a bare 500 page."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from slothlab.errors import SlothlabError

    async def on_http(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "bad_method"}.get(
            exc.status_code, "error"
        )
        response = error_response(exc.status_code, code, detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def on_validation(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        return error_response(422, "invalid", "; ".join(parts))

    async def on_slothlab(request: Request, exc: Exception) -> Any:
        return error_response(400, "refused", str(exc))

    async def on_other(request: Request, exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", f"internal error: {type(exc).__name__}")

    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(SlothlabError, on_slothlab)
    app.add_exception_handler(Exception, on_other)


def require(capability: str) -> Any:
    """A FastAPI dependency: the request must carry a bearer token holding ``capability``.

    The app keeps its :class:`~slothlab.security.TokenVerifier` in ``app.state.verifier``.
    """
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; known: {sorted(CAPABILITIES)}")

    def check(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        verifier = request.app.state.verifier
        if scheme.lower() != "bearer" or not verifier.check(token.strip()):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong token: send 'Authorization: Bearer <token>' "
                "(the cluster token, see `slothlab up` or SLOTHLAB_TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return capability

    check.capability = capability  # type: ignore[attr-defined]  # read by the RBAC matrix test
    return check
