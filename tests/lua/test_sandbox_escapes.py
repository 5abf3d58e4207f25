"""Escape attempts, CPU bombs and memory bombs: each ends in a clear Lua error within its budget,
creates no file, and leaves the host (and the runtime) working."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from slothlab.errors import LuaError, LuaMemoryError, LuaTimeoutError
from slothlab.lua import Runtime, WorkerPool


def probe(x: object = None) -> str:
    return "ok"


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    runtime = Runtime(instruction_limit=3_000_000, max_memory_mb=32)
    runtime.env[b"mod"] = runtime.module_table({"probe": probe}, "mod.")
    runtime.env[b"f"] = runtime.python_function(probe, "f")
    obj = SimpleNamespace(name="web-1", secret="hunter2")
    runtime.env[b"obj"] = runtime.expose(obj, "name")
    runtime.set_global("marker", str(tmp_path / "marker"))
    return runtime


# Each snippet tries to get out; it must fail with a LuaError (anything but a Python error).
ESCAPES = {
    "os.execute": "os.execute('touch ' .. marker)",
    "io.open": "io.open(marker, 'w'):write('x')",
    "os.remove": "os.remove(marker)",
    "load": "load('return 1')()",
    "loadstring": "loadstring('return 1')()",
    "dofile": "dofile(marker)",
    "require": "require('os')",
    "package": "package.loadlib('libc.so.6', 'system')",
    "debug": "debug.sethook()",
    "getmetatable": "getmetatable('').__index.dump(print)",
    "string.dump": "string.dump(function() end)",
    "method dump": "('x').dump(function() end)",
    "collectgarbage": "collectgarbage('stop')",
    "rawset _G": "rawset(_G, 'x', 1)",
    "python global": "python.eval('1')",
    "python.none": "return python.none.__class__",
    "builtins": "python.builtins.open(marker, 'w')",
    "function __class__": "return f.__class__",
    "function __globals__": "return f['__globals__']",
    "function __call__": "return f.__call__",
    "module fn attribute": "return mod.probe.__class__.__base__",
    "module fn item": "return mod.probe[1]",
    "exposed private": "return obj.secret",
    "exposed dunder": "return obj.__class__",
    "exposed item": "return obj['__dict__']",
    "exposed int key": "return obj[1]",
    "exposed table key": "return obj[{}]",
    "exposed set": "obj.name = 'x'",
    "exposed set new": "obj.evil = 1",
    "string metatable": "return rawget(getmetatable(''), '__index')",
    "binary chunk text": "return load(string.char(27) .. 'Lua')",
    "__gc": "setmetatable({}, {__gc = function() while true do end end})",
    "__gc placeholder": "local mt = {__gc = true} setmetatable({}, mt)",
    "resume main thread": "assert(coroutine.resume(coroutine.running()))",
}


@pytest.mark.parametrize("code", ESCAPES.values(), ids=list(ESCAPES))
def test_escape_fails_cleanly(rt: Runtime, tmp_path: Path, code: str) -> None:
    with pytest.raises(LuaError):
        rt.execute(code)
    assert list(tmp_path.iterdir()) == []
    assert rt.execute("return 1 + 1") == [2]


def test_caught_python_error_is_a_plain_string(rt: Runtime) -> None:
    code = "local ok, e = pcall(function() return obj.secret end) return ok, type(e), e.__class__"
    assert rt.execute(code) == [False, "string", None]


def test_exposed_attribute_and_module_function_still_work(rt: Runtime) -> None:
    assert rt.execute("return obj.name, mod.probe(), f()") == ["web-1", "ok", "ok"]


def test_bytecode_refused_by_load(rt: Runtime) -> None:
    from lupa.lua54 import LuaRuntime

    dump = LuaRuntime(encoding=None).eval("string.dump(function() return 1 end)")
    with pytest.raises(LuaError, match="binary chunk"):
        rt.execute(dump)


def test_expose_refuses_private_names(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="public identifier"):
        rt.expose(object(), "__class__")


def test_no_dangerous_globals(rt: Runtime) -> None:
    names = rt.execute(
        "local t = {} for k in pairs(_G) do t[#t + 1] = k end table.sort(t) return t"
    )[0]
    for bad in (
        "load",
        "dofile",
        "loadfile",
        "require",
        "package",
        "debug",
        "io",
        "python",
        "getmetatable",
        "collectgarbage",
        "rawset",
    ):
        assert bad not in names
    assert rt.execute("return os.execute, os.exit, os.getenv, string.dump") == [None] * 4


CPU_BOMBS = {
    "busy loop": "while true do end",
    "pcall swallow": "while true do pcall(function() while true do end end) end",
    "pcall error swallow": "while true do pcall(error, 'x') end",
    "xpcall looping handler": (
        "xpcall(function() while true do end end, function() while true do end end)"
    ),
    "xpcall swallow loop": "while true do xpcall(function() while true do end end, print) end",
    "nested coroutines": (
        "local function deep(n) if n == 0 then while true do end end "
        "local co = coroutine.create(function() deep(n - 1) end) "
        "while true do coroutine.resume(co) end end deep(5)"
    ),
    "coroutine.wrap": "local g = coroutine.wrap(function() while true do end end) pcall(g)",
    "coroutine close": (
        "local co = coroutine.create(function() local x <close> = setmetatable({}, "
        "{__close = function() while true do end end}) coroutine.yield() end) "
        "coroutine.resume(co) coroutine.close(co)"
    ),
    "__close loop": (
        "local x <close> = setmetatable({}, {__close = function() while true do end end}) "
        "while true do end"
    ),
    "sort comparator": (
        "local t = {} for i = 1, 100 do t[i] = i end "
        "table.sort(t, function(a, b) while true do end end)"
    ),
    "gsub callback": "string.gsub(string.rep('a', 10), 'a', function() while true do end end)",
    "__tostring loop": ("error(setmetatable({}, {__tostring = function() while true do end end}))"),
    "recursion": "local function r() return 1 + r() end r()",
}


@pytest.mark.parametrize("code", CPU_BOMBS.values(), ids=list(CPU_BOMBS))
def test_cpu_bomb_stops(rt: Runtime, code: str) -> None:
    with pytest.raises(LuaError) as info:
        rt.execute(code, timeout_s=10)
    assert isinstance(info.value, LuaTimeoutError | LuaMemoryError) or "stack overflow" in str(
        info.value
    )
    assert rt.execute("return 1 + 1") == [2]


MEMORY_BOMBS = {
    "string.rep": "return string.rep('x', 1 << 30)",
    "table growth": "local t = {} local i = 0 while true do i = i + 1 t[i] = {i} end",
    "concat doubling": "local s = 'x' while true do s = s .. s end",
    "table.concat": "local t = {} for i = 1, 40 do t[i] = string.rep('y', 1 << 20) end "
    "return table.concat(t)",
    "in coroutine": "return coroutine.wrap(function() return string.rep('x', 1 << 30) end)()",
}


@pytest.mark.parametrize("code", MEMORY_BOMBS.values(), ids=list(MEMORY_BOMBS))
def test_memory_bomb_stops(rt: Runtime, code: str) -> None:
    with pytest.raises((LuaMemoryError, LuaTimeoutError)):
        rt.execute(code, timeout_s=10)
    assert rt.execute("return #string.rep('x', 1 << 20)") == [1 << 20]


def test_swallowed_memory_errors_end_in_the_budget(rt: Runtime) -> None:
    with pytest.raises(LuaTimeoutError):
        rt.execute("while true do pcall(string.rep, 'x', 1 << 30) end", timeout_s=10)


PATTERN_BOMB = "return string.find(string.rep('a', 40), string.rep('a*', 40) .. 'b')"


def test_pattern_bomb_is_stopped_by_the_pool(tmp_path: Path) -> None:
    with WorkerPool(size=1, max_memory_mb=32) as pool:
        with pytest.raises(LuaTimeoutError, match="worker was killed"):
            pool.run(PATTERN_BOMB, timeout_s=0.5)
        assert pool.run("return 1 + 1") == [2]  # a new worker took the slot
    assert list(tmp_path.iterdir()) == []
