"""Lua in slothlab: a sandboxed Lua 5.4 runtime (lupa), value conversion and the module registry."""

from __future__ import annotations

from slothlab.lua.modules.base import LuaModule
from slothlab.lua.runtime import Capabilities, OutputSink, Runtime

__all__ = ["Capabilities", "LuaModule", "OutputSink", "Runtime"]
