"""The contract of a Lua module: a named table of functions installed into a runtime."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = ["LuaModule"]


class LuaModule(ABC):
    """A Lua module (``state``, ``log``, ...).

    Subclasses set :attr:`name` and implement :meth:`functions`; the runtime turns the mapping
    into a Lua table (arguments and results converted, exceptions turned into Lua errors) and
    makes it the global :attr:`name`. :attr:`lua_source`, when set, is Lua run after that with
    the module table as ``...`` and the sandbox env as its env, for parts best written in Lua
    (builders with ``:method()`` chains, say). :attr:`capability` names the
    :class:`~slothlab.lua.runtime.Capabilities` flag the module needs; without it the module is
    not installed.
    """

    name: ClassVar[str]
    capability: ClassVar[str | None] = None
    lua_source: ClassVar[str] = ""

    @abstractmethod
    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """The module's Python functions, by their Lua name."""

    def install(self, runtime: Runtime) -> None:
        """Install the module's table as a global of ``runtime``.

        Called again for every fresh env of the same runtime (:meth:`Runtime.fresh_env
        <slothlab.lua.runtime.Runtime.fresh_env>`: a worker runs each task, maybe another
        user's, in a fresh env of one Lua state). Keep a task's state in ``runtime.context``
        (new for each env) or in the env itself, never on the runtime object, in the module
        instance, or keyed by ``id(runtime)``: that would reach the next task.
        """
        table = runtime.module_table(self.functions(runtime), prefix=f"{self.name}.")
        runtime.env[self.name.encode()] = table
        if self.lua_source:
            chunk = runtime.load(self.lua_source, f"slothlab.{self.name}")
            runtime.call_raw(chunk, table)
