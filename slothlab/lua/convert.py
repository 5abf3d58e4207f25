"""Values across the Lua boundary, both ways.

Lua strings are bytes; they come back as ``str`` when they are valid UTF-8 and as ``bytes``
otherwise. Integers stay integers and floats stay floats (Lua 5.4 keeps the two apart). A table
whose keys are exactly the integers ``1..n`` (holes allowed, as long as at least half are
present) comes back as a list with ``None`` in the holes; any other table as a dict. An empty
table is ``{}``.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slothlab.errors import LuaError

if TYPE_CHECKING:
    from lupa.lua54 import LuaRuntime

__all__ = ["MAX_DEPTH", "is_lua_function", "is_lua_table", "to_lua", "to_python"]

MAX_DEPTH = 100
"""Tables nested deeper than this are refused (and cycles are reported) in both directions."""


def _lua_type(obj: Any) -> str | None:
    from lupa.lua54 import lua_type

    return lua_type(obj)  # type: ignore[no-any-return]


def is_lua_table(obj: Any) -> bool:
    """True when ``obj`` is a Lua table seen from Python."""
    return _lua_type(obj) == "table"


def is_lua_function(obj: Any) -> bool:
    """True when ``obj`` is a Lua function (or other callable Lua value) seen from Python."""
    return _lua_type(obj) in {"function", "thread"}


def to_python(value: Any, *, keep_functions: bool = True, _depth: int = 0) -> Any:
    """Convert a value returned by Lua into plain Python data.

    Args:
        value: what lupa handed over.
        keep_functions: keep Lua functions as callables (True) or replace them with the
            string ``"<function>"`` (False), e.g. before JSON output.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    kind = _lua_type(value)
    if kind == "table":
        if _depth >= MAX_DEPTH:
            raise LuaError(f"table nested deeper than {MAX_DEPTH} levels (or it contains a cycle)")
        return _table_to_python(value, keep_functions, _depth + 1)
    if kind in {"function", "thread"}:
        return value if keep_functions else f"<{kind}>"
    if kind == "userdata":
        return "<userdata>"
    return value


def _table_to_python(table: Any, keep_functions: bool, depth: int) -> Any:
    items = [
        (to_python(k, _depth=depth), to_python(v, keep_functions=keep_functions, _depth=depth))
        for k, v in table.items()
    ]
    if not items:
        return {}
    keys = [k for k, _ in items]
    if all(type(k) is int and k >= 1 for k in keys):
        size = max(keys)
        if size <= 2 * len(keys):
            out: list[Any] = [None] * size
            for k, v in items:
                out[k - 1] = v
            return out
    return {_key(k): v for k, v in items}


def _key(k: Any) -> Any:
    return k.decode("utf-8", "replace") if isinstance(k, bytes) else k


def to_lua(lua: LuaRuntime, value: Any, _depth: int = 0) -> Any:
    """Convert plain Python data into Lua values (tables for mappings and sequences).

    Strings become Lua strings (UTF-8), ``None`` becomes ``nil``, a mapping a table keyed by its
    keys, a list or tuple an array starting at 1, a date or time its ISO 8601 text, a DataFrame a
    list of row tables. Anything else raises :class:`TypeError` naming the type.
    """
    if value is None or isinstance(value, bool | int | bytes):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if _lua_type(value) is not None:
        return value  # already a Lua value
    if _depth >= MAX_DEPTH:
        raise LuaError(f"value nested deeper than {MAX_DEPTH} levels (or it contains a cycle)")
    if isinstance(value, Mapping):
        table = lua.table()
        for k, v in value.items():
            table[to_lua(lua, k, _depth + 1)] = to_lua(lua, v, _depth + 1)
        return table
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytearray):
        table = lua.table()
        for i, v in enumerate(value, 1):
            table[i] = to_lua(lua, v, _depth + 1)
        return table
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return _to_lua_other(lua, value, _depth)


def _to_lua_other(lua: LuaRuntime, value: Any, depth: int) -> Any:
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat().encode()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
        return to_lua(lua, value.to_dict(orient="records"), depth + 1)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, pandas Series
        return to_lua(lua, value.tolist(), depth + 1)
    if hasattr(value, "item") and callable(value.item):
        item = value.item()
        if isinstance(item, float) and math.isnan(item):
            return item
        return to_lua(lua, item, depth + 1)
    raise TypeError(
        f"cannot pass a {type(value).__name__} to Lua; pass numbers, strings, booleans, None, "
        "lists or dicts of them"
    )
