"""The ``workflow`` Lua module: ``workflow.define`` and the global ``task(name)`` builder.

The builders are Lua (``slothlab/workflow/_dsl.lua``); definitions stay in the runtime and
:func:`slothlab.workflow.dsl.collect` reads them. ``workflow.duration("1h30m")`` gives seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = ["WorkflowModule"]


class WorkflowModule(LuaModule):
    """Installs ``workflow`` (define, duration) and ``task``."""

    name = "workflow"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """``duration``; ``define`` is written in Lua."""
        from slothlab.workflow.durations import parse_duration

        return {"duration": lambda value=None: parse_duration(value)}

    def install(self, runtime: Runtime) -> None:
        """Install the table, run the Lua builders and keep their registry in the context."""
        from slothlab.workflow.dsl import LUA_SOURCE, REGISTRY_KEY

        table = runtime.module_table(self.functions(runtime), prefix="workflow.")
        runtime.env[self.name.encode()] = table
        chunk = runtime.load(LUA_SOURCE, "slothlab.workflow")
        (lister,) = runtime.call_raw(chunk, table)
        runtime.context[REGISTRY_KEY] = lister


class TaskModule(LuaModule):
    """The global ``task(name)`` builder, defined by the ``workflow`` module.

    Modules are installed when a script first names them; a script may call ``task(...)``
    before it names ``workflow``, so naming ``task`` installs ``workflow`` too.
    """

    name = "task"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """Nothing: ``task`` is a Lua function, not a table."""
        return {}

    def install(self, runtime: Runtime) -> None:
        """Install ``workflow`` (which defines ``task``) unless it is there already."""
        runtime.env[b"workflow"]
