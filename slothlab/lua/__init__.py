"""Lua in slothlab: a sandboxed Lua 5.4 runtime (lupa), value conversion, the module registry and
a pool of worker processes for Lua from elsewhere."""

from __future__ import annotations

from slothlab.lua.modules.base import LuaModule
from slothlab.lua.pool import WorkerPool
from slothlab.lua.runtime import Capabilities, OutputSink, Runtime

__all__ = ["Capabilities", "LuaModule", "OutputSink", "Runtime", "WorkerPool"]
