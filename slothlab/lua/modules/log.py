"""The ``log`` Lua module: ``info``, ``warn``, ``error``, ``debug``, ``print`` and ``table``.

Everything goes to the runtime's output sink (``runtime.output(level, text)``), so a notebook,
the CLI and a test each decide where logs end up.

>>> format_value({"b": 1, "a": [True, None]})
'{\\n  "a": [\\n    true,\\n    null\\n  ],\\n  "b": 1\\n}'
>>> lua_text(2.0), lua_text(False), lua_text(None)
('2.0', 'false', 'nil')
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = ["LogModule", "format_value", "lua_text"]


def lua_text(value: Any) -> str:
    """``value`` as Lua's ``tostring`` would show it (for plain data)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return format_value(value)
    if callable(value):
        return "function"
    return str(value)


def format_value(value: Any) -> str:
    """A table as indented JSON with sorted keys (functions shown as ``"<function>"``)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=_fallback)


def _fallback(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "<function>" if callable(value) else repr(value)


class LogModule(LuaModule):
    """``log.info(msg)`` and friends, written to the runtime's output sink."""

    name = "log"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """The log functions, one per level, plus ``print`` and ``table``."""

        def level(name: str) -> Callable[..., None]:
            def emit(*parts: Any) -> None:
                runtime.output(name, " ".join(lua_text(p) for p in parts))

            return emit

        def print_(*parts: Any) -> None:
            runtime.output("stdout", "\t".join(lua_text(p) for p in parts))

        def table(value: Any = None, title: Any = None) -> None:
            text = format_value(value)
            runtime.output("info", f"{lua_text(title)}:\n{text}" if title is not None else text)

        levels = {n: level(n) for n in ("info", "warn", "error", "debug")}
        return {**levels, "warning": levels["warn"], "print": print_, "table": table}
