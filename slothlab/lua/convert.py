"""Values across the Lua boundary, both ways.

Lua to Python (:func:`to_python`):

* strings are bytes in Lua; they come back as ``str`` when they are valid UTF-8 and as ``bytes``
  otherwise, so non-UTF-8 data round-trips unchanged;
* integers stay ``int`` and floats stay ``float`` (Lua 5.4 keeps them apart; ``2.0`` stays a
  float); NaN and infinities pass as they are;
* a table whose keys are exactly integers ``1..n`` (holes allowed while at least half are
  present) becomes a ``list`` with ``None`` in the holes; any other table a ``dict`` (mixed keys
  keep their types: ``{1, 2, x = 3}`` is ``{1: 1, 2: 2, "x": 3}``); an empty table is ``{}``;
* functions stay callable (or become ``"<function>"`` with ``keep_functions=False``);
* a table used as a key, nesting deeper than :data:`MAX_DEPTH` (or a cycle) and more than
  :data:`MAX_ITEMS` values in all raise :class:`~slothlab.errors.LuaError`.

Python to Lua (:func:`to_lua`): ``None`` is ``nil``, ``str`` UTF-8 bytes, ``bytes`` as they
are, mappings tables, lists, tuples and sets arrays from 1 (a ``None`` inside a list is a hole,
and trailing ones vanish). An ``int`` outside 64 bits, a cycle, nesting deeper than
:data:`MAX_DEPTH` or a ``None``/NaN key raise ``ValueError``; an unsupported type ``TypeError``.

>>> from lupa.lua54 import LuaRuntime
>>> lua = LuaRuntime(encoding=None)
>>> to_python(to_lua(lua, {"a": [1, 2.0, None, b"\\xff"]}))
{'a': [1, 2.0, None, b'\\xff']}
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slothlab.errors import LuaError

if TYPE_CHECKING:
    from lupa.lua54 import LuaRuntime

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "is_lua_function", "is_lua_table", "to_lua", "to_python"]

MAX_DEPTH = 100
"""Tables nested deeper than this are refused (and cycles are reported) in both directions."""

MAX_ITEMS = 1_000_000
"""At most this many keys and values are converted from one Lua value (tables shared many times
would otherwise cost exponential time)."""

_INT64 = (-(2**63), 2**63 - 1)


def _lua_type(obj: Any) -> str | None:
    from lupa.lua54 import lua_type

    return lua_type(obj)  # type: ignore[no-any-return]


def is_lua_table(obj: Any) -> bool:
    """True when ``obj`` is a Lua table seen from Python."""
    return _lua_type(obj) == "table"


def is_lua_function(obj: Any) -> bool:
    """True when ``obj`` is a Lua function (or other callable Lua value) seen from Python."""
    return _lua_type(obj) in {"function", "thread"}


def to_python(value: Any, *, keep_functions: bool = True) -> Any:
    """Convert a value returned by Lua into plain Python data.

    Args:
        value: what lupa handed over.
        keep_functions: keep Lua functions as callables (True) or replace them with the
            string ``"<function>"`` (False), e.g. before JSON output.

    Raises:
        LuaError: a table key is a table, nesting is too deep (or cyclic), or too many items.
    """
    return _ToPython(keep_functions).convert(value, 0)


class _ToPython:
    def __init__(self, keep_functions: bool) -> None:
        self.keep_functions = keep_functions
        self.budget = MAX_ITEMS

    def convert(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return value
        kind = _lua_type(value)
        if kind == "table":
            if depth >= MAX_DEPTH:
                raise LuaError(
                    f"table nested deeper than {MAX_DEPTH} levels (or it contains a cycle)"
                )
            return self.table(value, depth + 1)
        if kind in {"function", "thread"}:
            return value if self.keep_functions else f"<{kind}>"
        if kind == "userdata":
            return "<userdata>"
        return value

    def table(self, table: Any, depth: int) -> Any:
        items = []
        for k, v in table.items():
            self.budget -= 1
            if self.budget < 0:
                raise LuaError(f"value too large to convert: more than {MAX_ITEMS:,} items")
            if _lua_type(k) == "table":
                raise LuaError("a table used as a table key cannot be converted to Python")
            items.append((self.convert(k, depth), self.convert(v, depth)))
        if not items:
            return {}
        if all(type(k) is int and k >= 1 for k, _ in items):
            size = max(k for k, _ in items)
            if size <= 2 * len(items):
                out: list[Any] = [None] * size
                for k, v in items:
                    out[k - 1] = v
                return out
        return dict(items)


def to_lua(lua: LuaRuntime, value: Any) -> Any:
    """Convert plain Python data into Lua values (tables for mappings and sequences).

    Strings become Lua strings (UTF-8), ``None`` becomes ``nil``, a mapping a table keyed by its
    keys, a list, tuple or set an array starting at 1, a date or time its ISO 8601 text, a
    DataFrame a list of row tables.

    Raises:
        TypeError: a value of a type Lua cannot hold (the message names it).
        ValueError: an integer outside 64 bits, a cycle, too deep a nesting, a None or NaN key.
    """
    return _ToLua(lua).convert(value, 0)


class _ToLua:
    def __init__(self, lua: LuaRuntime) -> None:
        self.lua = lua
        self.path: set[int] = set()  # ids of the containers being converted (cycle check)

    def convert(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool | float | bytes):
            return value
        if isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise ValueError(
                    f"integer {value} does not fit in Lua's 64-bit integers; "
                    "pass it as a string or a float"
                )
            return value
        if isinstance(value, str):
            return _utf8(value)
        if _lua_type(value) is not None:
            return value  # already a Lua value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        if isinstance(value, Mapping | Sequence | set | frozenset):
            return self.container(value, depth)
        return _to_lua_other(self.lua, value, depth)

    def container(self, value: Any, depth: int) -> Any:
        if id(value) in self.path:
            raise ValueError("cannot pass a value that contains itself (a cycle) to Lua")
        if depth >= MAX_DEPTH:
            raise ValueError(f"cannot pass a value nested deeper than {MAX_DEPTH} levels to Lua")
        self.path.add(id(value))
        table = self.lua.table()
        if isinstance(value, Mapping):
            for k, v in value.items():
                if k is None or (isinstance(k, float) and math.isnan(k)):
                    raise ValueError(f"a Lua table key cannot be {k!r}")
                table[self.convert(k, depth + 1)] = self.convert(v, depth + 1)
        else:
            for i, v in enumerate(value, 1):
                table[i] = self.convert(v, depth + 1)
        self.path.discard(id(value))
        return table


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:  # text decoded with surrogateescape (file names): give the original bytes back
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise ValueError(f"string is not valid Unicode ({exc.reason} at {exc.start})") from None


def _to_lua_other(lua: LuaRuntime, value: Any, depth: int) -> Any:
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat().encode()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
        return _ToLua(lua).convert(value.to_dict(orient="records"), depth + 1)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, pandas Series
        return _ToLua(lua).convert(value.tolist(), depth + 1)
    if hasattr(value, "item") and callable(value.item):
        item = value.item()
        if isinstance(item, float) and math.isnan(item):
            return item
        return _ToLua(lua).convert(item, depth + 1)
    raise TypeError(
        f"cannot pass a {type(value).__name__} to Lua; pass numbers, strings, booleans, None, "
        "lists or dicts of them"
    )
