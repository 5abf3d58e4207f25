"""Typed values in one SQLite row: a one-letter type tag plus a native SQLite value.

Tags: ``z`` nil, ``b`` boolean, ``i`` integer, ``f`` float, ``s`` string, ``y`` bytes and ``j``
a table (list or dict) as canonical JSON (sorted keys, no spaces), so equal tables have equal text.
Integers stay integers: ``2`` and ``2.0`` come back as they went in.

>>> encode(2), encode(2.0), encode(True), encode({"b": 1, "a": [1.5]})
(('i', 2), ('f', 2.0), ('b', 1), ('j', '{"a":[1.5],"b":1}'))
>>> decode("j", '{"a":[1.5],"b":1}')
{'a': [1.5], 'b': 1}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from slothlab.errors import StateTypeError

__all__ = ["TYPE_NAMES", "canonical_json", "decode", "encode", "type_name"]

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1

TYPE_NAMES = {
    "z": "nil",
    "b": "boolean",
    "i": "integer",
    "f": "float",
    "s": "string",
    "y": "binary string",
    "j": "table",
}
"""The type a tag stands for, as error messages name it."""


def type_name(tag: str, value: Any = None) -> str:
    """The readable type of a stored value (``list`` or ``table`` for ``j``)."""
    if tag == "j" and isinstance(value, str) and value.startswith("["):
        return "list"
    return TYPE_NAMES.get(tag, "unknown")


def encode(value: Any) -> tuple[str, Any]:
    """The ``(tag, sqlite value)`` of a Python value; raises StateTypeError for anything else."""
    if value is None:
        return "z", None
    if value is True or value is False:
        return "b", int(value)
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise StateTypeError(f"integer {value} does not fit in 64 bits; store it as a string")
        return "i", int(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise StateTypeError("NaN cannot be stored; store nil or a string instead")
        return "f", value
    if isinstance(value, str):
        return "s", value
    if isinstance(value, bytes | bytearray):
        return "y", bytes(value)
    if isinstance(value, Mapping | list | tuple):
        return "j", canonical_json(value)
    raise StateTypeError(
        f"cannot store a {type(value).__name__}; store nil, booleans, numbers, strings or tables"
    )


def decode(tag: str, raw: Any) -> Any:
    """The Python value of a stored ``(tag, raw)`` pair."""
    if tag == "s" or tag == "i":
        return raw
    if tag == "j":
        return json.loads(raw)
    if tag == "f":
        return float(raw)
    if tag == "b":
        return bool(raw)
    if tag == "y":
        return bytes(raw)
    return None


def canonical_json(value: Any) -> str:
    """Canonical JSON text of a table: keys as strings, sorted, no spaces, no NaN."""
    try:
        return json.dumps(_plain(value, 0), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise StateTypeError(f"cannot store this table: {exc}") from None


def _plain(value: Any, depth: int) -> Any:
    if depth > 100:
        raise StateTypeError("table nested deeper than 100 levels (or it contains a cycle)")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {_key(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_plain(v, depth + 1) for v in value]
    kind = "binary string" if isinstance(value, bytes | bytearray) else type(value).__name__
    raise StateTypeError(
        f"a table to store holds a {kind}; tables may hold nil, booleans, numbers, strings "
        "and tables"
    )


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, int | float):
        return str(key)
    raise StateTypeError(f"a table key of type {type(key).__name__} cannot be stored")
