"""The cluster-wide ``state``: the master's :class:`~slothlab.state.Store` over HTTP.

Routes (capability ``manage-state``):

* ``GET /v1/state/{key}`` -> ``{"key", "value", "ttl_s"}`` (404 when absent),
* ``PUT /v1/state/{key}`` with ``{"value", "ttl_s"?}`` -> ``{"ok": true}``,
* ``DELETE /v1/state/{key}`` -> ``{"deleted": bool}``,
* ``POST /v1/state:op`` with a :class:`StateOp` -> ``{"result": ...}``.

Locks work as on the local store (leases with fencing tokens), except that the owner id comes
from the caller (``owner``, e.g. ``host:pid:random`` of the agent's Lua runtime), and ``unlock``
and ``renew_lock`` match the ``fence`` the caller was granted. Errors carry a code the
:class:`~slothlab.master.state_client.RemoteStore` turns back into the same exception:
``state_type`` (400), ``invalid`` (400), ``lock`` (409), ``state`` (503).

>>> import tempfile, pathlib
>>> store = CallerStore(pathlib.Path(tempfile.mkdtemp()) / "state.db")
>>> run_op(store, StateOp(op="try_lock", name="deploy", owner="a:1:x"))
1
>>> run_op(store, StateOp(op="try_lock", name="deploy", owner="b:2:y")) is None
True
>>> run_op(store, StateOp(op="unlock", name="deploy", owner="a:1:x", fence=1))
True
"""

from __future__ import annotations

import contextvars
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from slothlab._asgi import error_response, require
from slothlab.errors import LockError, StateError, StateTypeError
from slothlab.state import Store

__all__ = ["LOCK_OPS", "CallerStore", "StateOp", "router", "run_op"]

_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("state_owner", default=None)

_MAX_LOCK_WAIT_S = 60.0

LOCK_OPS = frozenset({"try_lock", "lock", "unlock", "renew_lock"})
"""Operations that act for an owner (``owner`` is required)."""

Op = Literal[
    "get", "set", "delete", "exists", "keys", "clear", "set_with_ttl", "set_ttl", "get_ttl",
    "persist", "increment", "decrement", "append", "compare_swap", "set_if_absent", "get_set",
    "list_push", "list_pop", "list_shift", "list_length", "list_range", "try_lock", "lock",
    "unlock", "renew_lock", "is_locked", "lock_info", "locks", "stats",
]  # fmt: skip


class CallerStore(Store):
    """A :class:`~slothlab.state.Store` whose lock owner is the caller's, set per request."""

    def _owner(self) -> str:
        owner = _caller.get()
        return owner if owner else super()._owner()


class StateOp(BaseModel):
    """One state operation; which fields count depends on ``op`` (as in the Store method)."""

    model_config = ConfigDict(extra="forbid")

    op: Op
    key: str | None = Field(default=None, max_length=1024)
    name: str | None = Field(default=None, max_length=1024, description="a lock name")
    value: Any = None
    old: Any = None
    new: Any = None
    default: Any = None
    delta: int | float = 1
    text: str | None = None
    item: Any = None
    ttl_s: float | None = None
    timeout_s: float | None = Field(default=None, ge=0, le=_MAX_LOCK_WAIT_S)
    pattern: str = Field(default="*", max_length=1024)
    first: int = 1
    last: int = -1
    owner: str | None = Field(default=None, min_length=1, max_length=300)
    fence: int | None = None


def _need(value: str | None, what: str, op: str) -> str:
    if value is None:
        raise ValueError(f"{op} needs {what!r}")
    return value


def run_op(store: CallerStore, op: StateOp) -> Any:
    """Run one operation on ``store``; the plain-data result."""
    if op.op in LOCK_OPS:
        owner = _need(op.owner, "owner", op.op)
        token = _caller.set(owner)
        try:
            return _lock_op(store, op, owner)
        finally:
            _caller.reset(token)
    return _plain_op(store, op)


def _lock_op(store: CallerStore, op: StateOp, owner: str) -> Any:
    name = _need(op.name, "name", op.op)
    ttl = 30.0 if op.ttl_s is None else op.ttl_s
    if op.op == "try_lock":
        return store.try_lock(name, ttl)
    if op.op == "lock":
        return store.lock(name, 30.0 if op.timeout_s is None else op.timeout_s, ttl)
    if op.fence is not None:  # the grant the caller holds (survives a master restart)
        store._held[owner, name] = op.fence
    if op.op == "unlock":
        return store.unlock(name)
    return store.renew_lock(name, ttl)


def _plain_op(store: CallerStore, op: StateOp) -> Any:
    o = op.op
    if o in {"keys", "clear"}:
        return getattr(store, o)(op.pattern)
    if o == "locks":
        return [info.as_dict() for info in store.locks()]
    if o == "stats":
        return store.stats()
    if o in {"is_locked", "lock_info"}:
        info = store.lock_info(_need(op.name, "name", o))
        return info is not None if o == "is_locked" else (info and info.as_dict())
    key = _need(op.key, "key", o)
    calls: dict[str, Any] = {
        "get": lambda: store.get(key, op.default),
        "set": lambda: store.set(key, op.value, op.ttl_s),
        "delete": lambda: store.delete(key),
        "exists": lambda: store.exists(key),
        "set_with_ttl": lambda: store.set_with_ttl(key, op.value, _need_ttl(op)),
        "set_ttl": lambda: store.set_ttl(key, _need_ttl(op)),
        "get_ttl": lambda: store.get_ttl(key),
        "persist": lambda: store.persist(key),
        "increment": lambda: store.increment(key, op.delta),
        "decrement": lambda: store.decrement(key, op.delta),
        "append": lambda: store.append(key, _need(op.text, "text", o)),
        "compare_swap": lambda: store.compare_swap(key, op.old, op.new),
        "set_if_absent": lambda: store.set_if_absent(key, op.value, op.ttl_s),
        "get_set": lambda: store.get_set(key, op.value),
        "list_push": lambda: store.list_push(key, op.item),
        "list_pop": lambda: store.list_pop(key),
        "list_shift": lambda: store.list_shift(key),
        "list_length": lambda: store.list_length(key),
        "list_range": lambda: store.list_range(key, op.first, op.last),
    }
    return calls[o]()


def _need_ttl(op: StateOp) -> float:
    if op.ttl_s is None:
        raise ValueError(f"{op.op} needs 'ttl_s'")
    return op.ttl_s


class _PutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any = None
    ttl_s: float | None = None


def _guarded(call: Any) -> Any:
    try:
        return call()
    except StateTypeError as exc:
        return error_response(400, "state_type", str(exc))
    except LockError as exc:
        return error_response(409, "lock", str(exc))
    except StateError as exc:
        return error_response(503, "state", str(exc))
    except (ValueError, TypeError) as exc:
        return error_response(400, "invalid", str(exc))


def router() -> APIRouter:
    """The state routes; the app keeps its :class:`CallerStore` in ``app.state.store``."""
    api = APIRouter(dependencies=[Depends(require("manage-state"))])

    def store_of(request: Request) -> CallerStore:
        return request.app.state.store  # type: ignore[no-any-return]

    @api.post("/v1/state:op")
    def state_op(op: StateOp, request: Request) -> Any:
        store = store_of(request)
        return _guarded(lambda: {"result": run_op(store, op)})

    @api.get("/v1/state/{key:path}")
    def state_get(key: str, request: Request) -> Any:
        store = store_of(request)
        missing = object()

        def read() -> Any:
            value = store.get(key, missing)
            if value is missing:
                return error_response(404, "not_found", f"no state key {key!r}")
            return {"key": key, "value": value, "ttl_s": store.get_ttl(key)}

        return _guarded(read)

    @api.put("/v1/state/{key:path}")
    def state_put(key: str, body: _PutBody, request: Request) -> Any:
        store = store_of(request)
        return _guarded(lambda: {"ok": store.set(key, body.value, body.ttl_s)})

    @api.delete("/v1/state/{key:path}")
    def state_delete(key: str, request: Request) -> Any:
        store = store_of(request)
        return _guarded(lambda: {"deleted": store.delete(key)})

    return api
