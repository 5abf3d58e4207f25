"""How the agent answers for tasks: JSON written from plain dicts, and waiting for the end.

Shared by the FastAPI routes (:mod:`slothlab.agent.app`) and the submission fast path
(:mod:`slothlab.agent._fast`), so both write the same bytes.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pydantic_core
from starlette.responses import Response
from starlette.types import Send

from slothlab.agent.tasks import TaskRecord

__all__ = [
    "batch_data",
    "batch_response",
    "json_body",
    "json_response",
    "send_json",
    "task_response",
    "wait_all",
    "wait_done",
]


def task_response(record: TaskRecord, status: int) -> Response:
    """A task as JSON (a :class:`TaskInfo`), written from a plain dict.

    FastAPI would validate a returned model once more; a validated model per task costs more
    than the rest of a no-op task's bookkeeping.
    """
    return json_response(record.as_dict(), status)


def batch_response(records: list[TaskRecord], status: int) -> Response:
    """Tasks as a :class:`BatchResponse`, written from plain dicts."""
    return json_response(batch_data(records), status)


def batch_data(records: list[TaskRecord]) -> dict[str, Any]:
    """The plain-dict :class:`BatchResponse` of ``records``."""
    return {"tasks": [r.as_dict() for r in records]}


def json_response(data: Any, status: int) -> Response:
    """JSON as pydantic writes it (NaN and infinities as null), 4x quicker than ``json.dumps``."""
    return Response(json_body(data), status_code=status, media_type="application/json")


async def send_json(send: Send, data: Any, status: int) -> None:
    """Write :func:`json_response`'s answer straight to an ASGI ``send`` (the same status,
    headers and bytes, without a response object in between)."""
    body = json_body(data)
    headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_JSON_TYPE = (b"content-type", b"application/json")


def json_body(data: Any) -> bytes:
    """``data`` as JSON bytes, as pydantic writes it (NaN and infinities as null)."""
    try:
        return pydantic_core.to_json(data, inf_nan_mode="null")
    except ValueError:  # text that is not valid UTF-8 (a lone surrogate): escape it instead
        return json.dumps(_finite(data)).encode()


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (what pydantic writes).

    >>> _finite({"r": [float("nan"), 1.5, {"x": float("inf")}]})
    {'r': [None, 1.5, {'x': None}]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


async def wait_done(record: TaskRecord, timeout_s: float) -> None:
    """Return once the task ended or ``timeout_s`` passed (no polling: woken by the record)."""
    deadline = time.monotonic() + timeout_s
    while not record.done:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await record.changed(record.version, left)


async def wait_all(records: list[TaskRecord], timeout_s: float) -> bool:
    """Wait until every task ended or ``timeout_s`` passed; True when all ended."""
    deadline = time.monotonic() + timeout_s
    for record in records:
        await wait_done(record, deadline - time.monotonic())
    return all(r.done for r in records)
