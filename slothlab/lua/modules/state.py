"""The Lua ``state`` module: the persistent store seen from Lua.

Uses ``runtime.context["state_store"]`` when the runtime was given one, else the process-wide
store at the default path, opened on first use (a script that never touches ``state`` opens no
file).

Errors, following the module contract:

* a store that cannot do its job (disk full, corrupt file, stuck writer) makes every function
  return ``nil, "message"``;
* a lock that is not free is an expected outcome: ``try_lock``/``lock`` return
  ``false, "message"``, ``with_lock`` returns ``nil, "message"``;
* misuse raises a Lua error at the caller's line, as Lua's own functions do: a key that is not a
  string, a bad TTL, ``increment`` of a non-number, a list operation on a non-list, storing a
  function;
* an error inside the function given to ``update`` or ``with_lock`` propagates (the update is
  rolled back; the lock is released).

>>> from slothlab.lua import Runtime
>>> from slothlab.state import Store
>>> rt = Runtime(context={"state_store": Store(":memory:")})
>>> rt.execute("state.set('n', 41); return state.increment('n'), state.get('missing', 'dflt')")
[42, 'dflt']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from slothlab.errors import LuaError, StateError, StateTypeError
from slothlab.lua.convert import is_lua_function
from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime
    from slothlab.state.base import StateBackend

__all__ = ["StateModule"]

# Functions passed straight through to the store (their results need no reshaping).
_PLAIN = (
    "set",
    "get",
    "delete",
    "exists",
    "keys",
    "clear",
    "set_with_ttl",
    "set_ttl",
    "get_ttl",
    "persist",
    "increment",
    "decrement",
    "append",
    "compare_swap",
    "set_if_absent",
    "get_set",
    "list_push",
    "list_pop",
    "list_length",
    "list_range",
    "list_shift",
    "unlock",
    "renew_lock",
    "stats",
)


class StateModule(LuaModule):
    """``state.set``, ``state.get``, ``state.increment``, ``state.lock``, ... (see module doc)."""

    name: ClassVar[str] = "state"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """The module's functions, bound to ``runtime``'s store."""
        return _StateApi(runtime).functions()


class _StateApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._store: StateBackend | None = None

    def store(self) -> StateBackend:
        if self._store is None:
            given = self.runtime.context.get("state_store")
            if given is None:
                from slothlab.state import open_store

                given = open_store()
            self._store = given
        return self._store

    def functions(self) -> dict[str, Callable[..., Any]]:
        table: dict[str, Callable[..., Any]] = {n: self._plain(n) for n in _PLAIN}
        special: dict[str, Callable[..., Any]] = {
            "update": self.update,
            "try_lock": self.try_lock,
            "lock": self.lock,
            "with_lock": self.with_lock,
            "is_locked": self.is_locked,
            "locks": self.locks,
        }
        for name, fn in special.items():
            table[name] = _soft(fn)
        return table

    def _plain(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            return getattr(self.store(), name)(*args)

        call.__name__ = name
        return _soft(call)

    # -- functions that reshape results or call back into Lua ---------------------------------

    def update(self, key: str, fn: Any) -> Any:
        if not is_lua_function(fn):
            raise ValueError("the second argument must be a function(old) returning the new value")
        rt = self.runtime

        def apply(old: Any) -> Any:
            result = _call_lua(fn, rt.to_lua(old))
            first = result[0] if isinstance(result, tuple) else result
            return rt.to_python(first)

        return self.store().update(key, apply)

    def try_lock(self, name: str, ttl_s: float = 30.0) -> tuple[bool, Any]:
        fence = self.store().try_lock(name, ttl_s)
        if fence is None:
            return False, self._held_message(name)
        return True, fence

    def lock(self, name: str, timeout_s: float = 30.0, ttl_s: float | None = None) -> Any:
        fence = self.store().lock(name, timeout_s, ttl_s)
        if fence is None:
            return False, f"timed out after {timeout_s:g} s: {self._held_message(name)}"
        return True, fence

    def with_lock(
        self, name: str, fn: Any, timeout_s: float = 30.0, ttl_s: float | None = None
    ) -> Any:
        if not is_lua_function(fn):
            raise ValueError("the second argument must be a function(fence)")
        store = self.store()
        fence = store.lock(name, timeout_s, ttl_s)
        if fence is None:
            return None, f"timed out after {timeout_s:g} s: {self._held_message(name)}"
        try:
            return _call_lua(fn, fence)
        finally:
            store.unlock(name)

    def is_locked(self, name: str) -> tuple[bool, str | None]:
        info = self.store().lock_info(name)
        return (False, None) if info is None else (True, info.owner)

    def locks(self) -> list[dict[str, Any]]:
        return [info.as_dict() for info in self.store().locks()]

    def _held_message(self, name: str) -> str:
        info = self.store().lock_info(name)
        if info is None:
            return f"lock {name!r} is busy"
        return f"lock {name!r} is held by {info.owner} for {info.ttl_s:.3g} s more"


def _call_lua(fn: Any, *args: Any) -> Any:
    """Call a Lua function from inside a module function; a Lua error keeps its message."""
    from lupa.lua54 import LuaError as LupaError

    try:
        return fn(*args)
    except LupaError as exc:
        raise LuaError(str(exc)) from None


def _soft(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a store failure (not misuse) into Lua's ``nil, "message"``."""

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except StateTypeError:
            raise
        except StateError as exc:
            return None, str(exc)

    call.__name__ = getattr(fn, "__name__", "function")
    return call
