"""``RemoteStore``: the master's state store seen from another process, with Store's methods.

Give it to a Lua runtime as ``Runtime(context={"state_store": RemoteStore(url, token)})`` and
``state.*`` in that script is cluster-wide. Locks carry the fence the master granted; this
object remembers it, so ``unlock`` and ``renew_lock`` only act on the grant it holds. Each
operation costs one HTTP round trip (~0.5-1 ms on loopback).

Failures keep the local store's exceptions: a refused or lost connection is a
:class:`~slothlab.errors.StateError` (Lua's ``state`` then returns ``nil, "message"``), a type
mismatch a :class:`~slothlab.errors.StateTypeError`, bad arguments a ``ValueError``.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests

from slothlab.errors import LockError, StateError, StateTypeError
from slothlab.state.base import LockInfo, StoreStats

__all__ = ["RemoteStore"]

_UPDATE_TRIES = 100


class RemoteStore:
    """The cluster-wide state on the master at ``url``.

    Args:
        url: the master (``http://127.0.0.1:8700``).
        token: the cluster token.
        owner: the lock owner id (default ``host:pid:random``).
        timeout_s: the read timeout of one operation (a ``lock`` wait is added to it).
        session: a ``requests.Session`` to use (default: one per thread, keep-alive).
    """

    backend = "remote"

    def __init__(
        self,
        url: str,
        token: str,
        *,
        owner: str | None = None,
        timeout_s: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.timeout_s = timeout_s
        self._session = session
        self._local = threading.local()
        self._held: dict[str, int] = {}

    # -- transport --------------------------------------------------------------------------

    def _http(self) -> requests.Session:
        if self._session is not None:
            return self._session
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _op(self, op: str, wait_s: float = 0.0, **fields: Any) -> Any:
        body = {"op": op, **{k: v for k, v in fields.items() if v is not None}}
        try:
            response = self._http().post(
                f"{self.url}/v1/state:op",
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=(5.0, self.timeout_s + wait_s),
            )
        except requests.RequestException as exc:
            raise StateError(f"the master's state at {self.url} did not answer: {exc}") from None
        if response.status_code == 200:
            return response.json()["result"]
        raise _error(response, self.url)

    # -- keys -------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._op("get", key=key, default=default)

    def set(self, key: str, value: Any, ttl_s: float | None = None) -> bool:
        """Store ``value`` (JSON types) under ``key``, for ``ttl_s`` seconds if given."""
        return bool(self._op("set", key=key, value=value, ttl_s=ttl_s))

    def delete(self, key: str) -> bool:
        return bool(self._op("delete", key=key))

    def exists(self, key: str) -> bool:
        return bool(self._op("exists", key=key))

    def keys(self, pattern: str = "*") -> list[str]:
        return list(self._op("keys", pattern=pattern))

    def clear(self, pattern: str = "*") -> int:
        return int(self._op("clear", pattern=pattern))

    def set_with_ttl(self, key: str, value: Any, ttl_s: float) -> bool:
        return bool(self._op("set_with_ttl", key=key, value=value, ttl_s=ttl_s))

    def set_ttl(self, key: str, ttl_s: float) -> bool:
        return bool(self._op("set_ttl", key=key, ttl_s=ttl_s))

    def get_ttl(self, key: str) -> float:
        return float(self._op("get_ttl", key=key))

    def persist(self, key: str) -> bool:
        return bool(self._op("persist", key=key))

    # -- atomic operations ------------------------------------------------------------------

    def increment(self, key: str, delta: int | float = 1) -> int | float:
        return self._op("increment", key=key, delta=delta)  # type: ignore[no-any-return]

    def decrement(self, key: str, delta: int | float = 1) -> int | float:
        return self._op("decrement", key=key, delta=delta)  # type: ignore[no-any-return]

    def append(self, key: str, text: str) -> int:
        return int(self._op("append", key=key, text=text))

    def compare_swap(self, key: str, old: Any, new: Any) -> bool:
        return bool(self._op("compare_swap", key=key, old=old, new=new))

    def set_if_absent(self, key: str, value: Any, ttl_s: float | None = None) -> bool:
        return bool(self._op("set_if_absent", key=key, value=value, ttl_s=ttl_s))

    def get_set(self, key: str, value: Any) -> Any:
        return self._op("get_set", key=key, value=value)

    def update(self, key: str, fn: Callable[[Any], Any]) -> Any:
        """Read-modify-write with compare-and-swap retries (``fn`` may run more than once)."""
        for _ in range(_UPDATE_TRIES):
            old = self.get(key)
            new = fn(old)
            if self.compare_swap(key, old, new):
                return new
        raise StateError(f"update of {key!r} lost {_UPDATE_TRIES} races in a row; try later")

    # -- lists ------------------------------------------------------------------------------

    def list_push(self, key: str, item: Any) -> int:
        return int(self._op("list_push", key=key, item=item))

    def list_pop(self, key: str) -> Any:
        return self._op("list_pop", key=key)

    def list_shift(self, key: str) -> Any:
        return self._op("list_shift", key=key)

    def list_length(self, key: str) -> int:
        return int(self._op("list_length", key=key))

    def list_range(self, key: str, first: int = 1, last: int = -1) -> list[Any]:
        return list(self._op("list_range", key=key, first=first, last=last))

    # -- locks ------------------------------------------------------------------------------

    def try_lock(self, name: str, ttl_s: float = 30.0) -> int | None:
        """Take ``name`` for ``ttl_s`` seconds if free; its fence, or None."""
        fence = self._op("try_lock", name=name, ttl_s=ttl_s, owner=self.owner)
        if fence is not None:
            self._held[name] = int(fence)
        return None if fence is None else int(fence)

    def lock(self, name: str, timeout_s: float = 30.0, ttl_s: float | None = None) -> int | None:
        """Wait up to ``timeout_s`` (at most 60 s, on the master) for ``name``; fence or None."""
        fence = self._op(
            "lock", wait_s=timeout_s, name=name, timeout_s=timeout_s, ttl_s=ttl_s, owner=self.owner
        )
        if fence is not None:
            self._held[name] = int(fence)
        return None if fence is None else int(fence)

    def unlock(self, name: str) -> bool:
        fence = self._held.pop(name, None)
        if fence is None:
            return False
        return bool(self._op("unlock", name=name, owner=self.owner, fence=fence))

    def renew_lock(self, name: str, ttl_s: float = 30.0) -> bool:
        fence = self._held.get(name)
        if fence is None:
            return False
        return bool(self._op("renew_lock", name=name, ttl_s=ttl_s, owner=self.owner, fence=fence))

    def with_lock(
        self,
        name: str,
        fn: Callable[[int], Any],
        timeout_s: float = 30.0,
        ttl_s: float | None = None,
    ) -> Any:
        """Run ``fn(fence)`` holding ``name``; released afterwards, even when ``fn`` raises."""
        with self.locked(name, timeout_s, ttl_s) as fence:
            return fn(fence)

    @contextmanager
    def locked(
        self, name: str, timeout_s: float = 30.0, ttl_s: float | None = None
    ) -> Iterator[int]:
        """``with remote.locked("job") as fence:``."""
        fence = self.lock(name, timeout_s, ttl_s)
        if fence is None:
            raise LockError(f"could not take lock {name!r} within {timeout_s:g} s")
        try:
            yield fence
        finally:
            self.unlock(name)

    def is_locked(self, name: str) -> bool:
        return bool(self._op("is_locked", name=name))

    def lock_info(self, name: str) -> LockInfo | None:
        data = self._op("lock_info", name=name)
        return None if not data else LockInfo(**data)

    def locks(self) -> list[LockInfo]:
        return [LockInfo(**d) for d in self._op("locks")]

    def stats(self) -> StoreStats:
        data: StoreStats = self._op("stats")
        data["backend"] = f"remote ({data.get('backend', '?')} at {self.url})"
        return data

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r}, owner={self.owner!r})"


def _error(response: requests.Response, url: str) -> Exception:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "error", response.text[:200]
    kind: dict[str, type[Exception]] = {
        "state_type": StateTypeError,
        "lock": LockError,
        "invalid": ValueError,
    }
    if code in kind:
        return kind[code](message)
    return StateError(f"the master's state at {url} answered {response.status_code}: {message}")
