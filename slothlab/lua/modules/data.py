"""The ``data`` Lua module: JSON and YAML both ways (also reachable as ``require("data")``).

``parse_json(s)``, ``to_json(v, pretty?)``, ``parse_yaml(s)``, ``to_yaml(v)``. Parsing bad
text returns ``nil, "message"``. Whole numbers stay integers. :class:`RequireModule` is a small
``require`` that returns slothlab's own modules by name (``require("data")``, ``require("log")``)
and nothing else: the sandbox has no package loader.

>>> parse_json('{"a": [1, 2.5, null]}')
{'a': [1, 2.5, None]}
>>> parse_json("[1,")
(None, 'data.parse_json: invalid JSON at line 1 column 4: Expecting value')
>>> to_json({"b": 1, "a": True})
'{"a":true,"b":1}'
>>> parse_yaml("name: web\\nports: [80, 443]\\n")
{'name': 'web', 'ports': [80, 443]}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = [
    "REQUIRABLE",
    "DataModule",
    "RequireModule",
    "parse_json",
    "parse_yaml",
    "to_json",
    "to_yaml",
]

REQUIRABLE = (
    "cache",
    "data",
    "exec",
    "fs",
    "log",
    "metrics",
    "secret",
    "state",
    "system",
    "workflow",
)
"""Module names ``require`` hands out (when the runtime has them installed)."""

MAX_TEXT = 64 << 20  # bytes of JSON / YAML text accepted by the parsers

_REQUIRE_LUA = """
local allowed = ...
local env = _ENV
require = function(name)
    if type(name) ~= "string" then
        error("require: the module name must be a string", 2)
    end
    local found = allowed[name] and env[name] -- may install a lazily loaded module
    if type(found) ~= "table" then
        error("require: no module '" .. name .. "' here; slothlab scripts may require only "
            .. "slothlab's modules (data, log, state, ...), which are also globals", 2)
    end
    return found
end
"""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json(text: Any) -> Any:
    """The value encoded in ``text``, or ``(None, message)``."""
    if not isinstance(text, str | bytes):
        return None, "data.parse_json: the argument must be a string"
    if len(text) > MAX_TEXT:
        return None, f"data.parse_json: text longer than {MAX_TEXT} bytes"
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        return None, f"data.parse_json: invalid JSON at line {exc.lineno} column {exc.colno}: " + (
            exc.msg
        )
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return None, f"data.parse_json: {reason}"


def to_json(value: Any = None, pretty: Any = False) -> Any:
    """``value`` as compact (or, with ``pretty``, indented) JSON with sorted keys."""
    try:
        if pretty:
            return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
        return json.dumps(
            value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        return None, f"data.to_json: cannot encode: {exc}"


def parse_yaml(text: Any) -> Any:
    """The value encoded in YAML ``text`` (safe loader), or ``(None, message)``."""
    import yaml

    if not isinstance(text, str | bytes):
        return None, "data.parse_yaml: the argument must be a string"
    if len(text) > MAX_TEXT:
        return None, f"data.parse_yaml: text longer than {MAX_TEXT} bytes"
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, f"data.parse_yaml: invalid YAML: {' '.join(str(exc).split())}"
    except RecursionError:
        return None, "data.parse_yaml: nested too deeply"


def to_yaml(value: Any = None) -> Any:
    """``value`` as block-style YAML with sorted keys."""
    import yaml

    try:
        return yaml.safe_dump(value, sort_keys=True, allow_unicode=True, default_flow_style=False)
    except yaml.YAMLError as exc:
        return None, f"data.to_yaml: cannot encode: {exc}"


class DataModule(LuaModule):
    """``data.parse_json`` and friends."""

    name = "data"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """The four converters."""
        return {
            "parse_json": parse_json,
            "to_json": to_json,
            "parse_yaml": parse_yaml,
            "to_yaml": to_yaml,
        }


class RequireModule(LuaModule):
    """A global ``require`` that hands out slothlab's modules by name, and nothing else."""

    name = "require"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """Nothing: ``require`` is a Lua function, not a table."""
        return {}

    def install(self, runtime: Runtime) -> None:
        """Define ``require`` in the sandbox env."""
        chunk = runtime.load(_REQUIRE_LUA, "slothlab.require")
        runtime.call_raw(chunk, {name: True for name in REQUIRABLE})
