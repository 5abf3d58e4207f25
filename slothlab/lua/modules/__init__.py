"""Lua modules and their registry.

Built-in modules register themselves here; a plugin adds one through the entry-point group
``slothlab.lua_modules`` (a :class:`~slothlab.lua.modules.base.LuaModule` subclass), and may
replace a built-in of the same name.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from slothlab.errors import SlothlabError
from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Capabilities

__all__ = ["LuaModule", "Registry", "registry"]

# Built-in modules, in install order: (module path, class name).
_BUILTINS: list[tuple[str, str]] = [
    ("slothlab.lua.modules.state", "StateModule"),
    ("slothlab.lua.modules.log", "LogModule"),
    ("slothlab.lua.modules.metrics", "MetricsModule"),
    ("slothlab.lua.modules.data", "DataModule"),
    ("slothlab.lua.modules.data", "RequireModule"),
    ("slothlab.lua.modules.exec", "ExecModule"),
    ("slothlab.lua.modules.fs", "FsModule"),
    ("slothlab.lua.modules.load_balancer", "LoadBalancerModule"),
    ("slothlab.lua.modules.workflow", "WorkflowModule"),
    ("slothlab.lua.modules.workflow", "TaskModule"),
    ("slothlab.lua.modules.system", "SystemModule"),
]


class Registry:
    """Lua modules by name: built-ins first, then entry points (which may override them)."""

    def __init__(self) -> None:
        self._modules: dict[str, LuaModule] = {}
        self._loaded = False
        self._load_lock = threading.Lock()

    def register(self, module: LuaModule) -> None:
        """Add ``module`` (or replace the one of the same name)."""
        self._modules[module.name] = module

    def get(self, name: str) -> LuaModule:
        """The module called ``name``; the error lists the ones there are."""
        self._load()
        try:
            return self._modules[name]
        except KeyError:
            known = ", ".join(sorted(self._modules)) or "none"
            raise SlothlabError(f"no Lua module named {name!r}; known modules: {known}") from None

    def names(self) -> list[str]:
        """Names of every registered module, in install order."""
        self._load()
        return list(self._modules)

    def select(self, names: Iterable[str] | None, caps: Capabilities) -> list[LuaModule]:
        """The modules to install: ``names`` (all when None), less those lacking a capability."""
        self._load()
        chosen = [self.get(n) for n in names] if names is not None else self._modules.values()
        return [m for m in chosen if m.capability is None or getattr(caps, m.capability)]

    def _load(self) -> None:
        # Runtimes are made on several threads at once (an agent, a master): the first loads,
        # the others wait, so none sees a half-filled registry.
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded:
                return
            for path, cls_name in _BUILTINS:
                self.register(getattr(import_module(path), cls_name)())
            for ep in entry_points(group="slothlab.lua_modules"):
                self.register(ep.load()())
            self._loaded = True


registry = Registry()
"""The process-wide registry every :class:`~slothlab.lua.runtime.Runtime` installs from."""
