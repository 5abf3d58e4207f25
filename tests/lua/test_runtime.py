"""The sandboxed runtime: results, errors with chunk/line/traceback, budgets, modules."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest

from slothlab.errors import LuaError, LuaMemoryError, LuaSyntaxError, LuaTimeoutError
from slothlab.lua import Capabilities, LuaModule, Runtime
from slothlab.lua.modules import registry


def fail(message: str) -> None:
    raise ValueError(message)


@pytest.fixture
def rt() -> Runtime:
    runtime = Runtime(instruction_limit=2_000_000, max_memory_mb=32)
    runtime.env[b"m"] = runtime.module_table({"fail": fail, "two": lambda: (1, 2)}, "m.")
    return runtime


def test_results_keep_types(rt: Runtime) -> None:
    assert rt.execute("return 1, 2.0, 'x', true, nil") == [1, 2.0, "x", True, None]
    assert rt.execute("return tostring(2), tostring(2.0), unpack({1, 2})") == ["2", "2.0", 1, 2]


def test_error_in_nested_function_has_line_and_traceback(rt: Runtime) -> None:
    code = (
        "local function inner()\n  error('boom')\nend\n"
        "local function outer()\n  inner()\nend\nouter()"
    )
    with pytest.raises(LuaError) as info:
        rt.execute(code, "job.lua")
    exc = info.value
    assert (str(exc), exc.chunk, exc.line) == ("job.lua:2: boom", "job.lua", 2)
    assert "job.lua:5: in local 'outer'" in exc.traceback
    assert "job.lua:7: in main chunk" in exc.traceback
    assert "?" not in exc.traceback  # no sandbox frames


def test_error_with_table_value_is_readable(rt: Runtime) -> None:
    with pytest.raises(LuaError, match=r'cell:2: error object is a table: \{"code": 2') as info:
        rt.execute("local x = 1\nerror({code = 2, why = 'bad'})")
    assert info.value.line == 2
    with pytest.raises(LuaError, match="cell:1: custom"):
        rt.execute("error(setmetatable({}, {__tostring = function() return 'custom' end}))")


def test_error_level_zero_still_located(rt: Runtime) -> None:
    with pytest.raises(LuaError) as info:
        rt.execute("\n\nerror('plain', 0)")
    assert (str(info.value), info.value.line) == ("cell:3: plain", 3)


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("local x = 1\nreturn m.fail('bad arg')", 2),  # a tail call keeps the caller's line
        ("local function f()\n  local y = m.fail('bad arg')\nend\nf()", 2),
    ],
)
def test_module_error_points_at_callers_line(rt: Runtime, code: str, line: int) -> None:
    with pytest.raises(LuaError) as info:
        rt.execute(code)
    assert (str(info.value), info.value.line) == (f"cell:{line}: m.fail: bad arg", line)


@pytest.mark.parametrize(
    "code",
    [
        "local ok, e = pcall(m.fail, 'bad arg')\nreturn ok, e",
        "local ok, e = pcall(function()\n return m.fail('bad arg') end)\nreturn ok, e",
        "return coroutine.resume(coroutine.create(function()\n return m.fail('bad arg') end))",
    ],
)
def test_module_errors_are_strings_when_caught(rt: Runtime, code: str) -> None:
    ok, message = rt.execute(code)
    assert ok is False
    assert message.endswith("m.fail: bad arg") and message.startswith("cell:")


def test_module_function_several_results(rt: Runtime) -> None:
    assert rt.execute("return m.two()") == [1, 2]


def test_syntax_error(rt: Runtime) -> None:
    with pytest.raises(LuaSyntaxError) as info:
        rt.execute("return +", "x.lua")
    assert info.value.chunk == "x.lua" and info.value.line == 1


def test_timeout_and_reuse(rt: Runtime) -> None:
    with pytest.raises(LuaTimeoutError, match="time limit exceeded") as info:
        Runtime().execute("local n = 0\nwhile true do n = n + 1 end", timeout_s=0.05)
    assert info.value.line == 2
    assert rt.execute("return 1 + 1") == [2]


def test_instruction_budget_is_per_call(rt: Runtime) -> None:
    small = Runtime(instruction_limit=50_000)
    for _ in range(3):
        assert small.execute("local s = 0 for i = 1, 1000 do s = s + i end return s") == [500500]


def test_memory_cap(rt: Runtime) -> None:
    with pytest.raises(LuaMemoryError):
        rt.execute("return string.rep('x', 1 << 30)")
    assert rt.execute("return #string.rep('x', 1000)") == [1000]


def test_interrupt_from_another_thread() -> None:
    rt = Runtime()
    started = threading.Event()
    rt.env[b"started"] = rt.python_function(lambda: started.set(), "started")
    timer = threading.Thread(target=lambda: (started.wait(5), rt.interrupt()))
    timer.start()
    with pytest.raises(LuaTimeoutError, match="interrupted"):
        rt.execute("started() while true do end", timeout_s=10)
    timer.join()


def test_nested_call_shares_the_budget() -> None:
    rt = Runtime(instruction_limit=200_000)
    rt.env[b"call"] = rt.python_function(lambda f: rt.call(f)[0], "call")
    assert rt.execute("return call(function() return 7 end)") == [7]
    with pytest.raises(LuaTimeoutError):
        rt.execute("call(function() while true do end end)")
    with pytest.raises(LuaTimeoutError):  # swallowing the inner error does not help
        rt.execute("pcall(call, function() while true do end end) while true do end")
    assert rt.execute("return 3") == [3]


def test_print_goes_to_output() -> None:
    seen: list[tuple[str, str]] = []
    rt = Runtime(output=lambda stream, text: seen.append((stream, text)))
    rt.execute("print('a', 1, nil, 2.5)")
    assert seen == [("stdout", "a\t1\tnil\t2.5")]


def test_globals_round_trip(rt: Runtime) -> None:
    rt.set_global("cfg", {"hosts": ["a", "b"], "n": 2})
    assert rt.execute("return cfg.hosts[2], cfg.n") == ["b", 2]
    rt.execute("result = {ok = true}")
    assert rt.get_global("result") == {"ok": True}


def test_call_with_arguments(rt: Runtime) -> None:
    fn = rt.load("local a, b = ... return a .. b")
    assert rt.call(fn, "x", "y") == ["xy"]


class _Probe(LuaModule):
    name: ClassVar[str] = "probe_rt_test"
    installs: ClassVar[int] = 0
    lua_source: ClassVar[str] = "local m = ... function m.twice(x) return m.double(x) end"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        type(self).installs += 1
        return {"double": lambda x: 2 * x}


class _Broken(LuaModule):
    name: ClassVar[str] = "broken_rt_test"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        raise ValueError("no database")


class _Needs(LuaModule):
    name: ClassVar[str] = "needs_exec_rt_test"
    capability: ClassVar[str | None] = "exec"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        return {"ping": lambda: "pong"}


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.names()  # load the registry first, so the probes are removed again afterwards
    for module in (_Probe(), _Broken(), _Needs()):
        monkeypatch.setitem(registry._modules, module.name, module)


@pytest.mark.usefixtures("probes")
def test_modules_install_lazily() -> None:
    before = _Probe.installs
    rt = Runtime(modules=["probe_rt_test"])
    assert _Probe.installs == before  # not used yet: not installed
    assert rt.execute("return probe_rt_test.twice(4), probe_rt_test.double(1)") == [8, 2]
    assert _Probe.installs == before + 1
    eager = Runtime(modules=["probe_rt_test"], lazy_modules=False)
    assert eager.execute("return probe_rt_test.twice(1)") == [2]


@pytest.mark.usefixtures("probes")
def test_module_install_error_is_a_lua_error() -> None:
    rt = Runtime(modules=["broken_rt_test"])
    with pytest.raises(LuaError, match=r"cell:2: broken_rt_test: no database"):
        rt.execute("local x = 1\nreturn broken_rt_test.f()")


@pytest.mark.usefixtures("probes")
def test_capabilities_are_per_runtime() -> None:
    off = Runtime(modules=["needs_exec_rt_test"])
    on = Runtime(modules=["needs_exec_rt_test"], capabilities=Capabilities(exec=True))
    assert off.execute("return needs_exec_rt_test") == [None]
    assert on.execute("return needs_exec_rt_test.ping()") == ["pong"]


def test_close_frees_the_lua_state_without_the_cycle_collector() -> None:
    import gc
    import weakref

    gc.collect()
    gc.disable()
    try:
        kept = Runtime()
        kept.execute("x = 1")
        kept_ref = weakref.ref(kept)
        del kept
        assert kept_ref() is not None  # the Lua state holds the runtime's callbacks: a cycle
        closed = Runtime()
        closed.execute("print('hi') return 1")
        closed.close()
        closed_ref = weakref.ref(closed)
        del closed
        assert closed_ref() is None  # freed at once, and its Lua state with it
    finally:
        gc.enable()
        gc.collect()


@pytest.mark.parametrize("then", ["same env", "fresh env"])
def test_a_budget_that_runs_out_as_a_call_returns_does_not_poison_later_calls(then: str) -> None:
    # With a budget of 1 instruction the first hook stops the call. For some chunk lengths that
    # hook fires after the chunk returned, in the sandbox's own epilogue, outside xpcall: the
    # runtime must still clear what that run left set (nesting count, budget message, hook).
    for k in range(900, 1100):  # the chunk lengths around the first hook (every 1,000)
        rt = Runtime(instruction_limit=1)
        with contextlib.suppress(LuaError):  # shorter chunks end before the first hook
            rt.execute("local a = 0 " + "a = a + 1 " * k)
        rt._budget.instruction_limit = 0
        if then == "fresh env":
            rt.fresh_env()
        assert rt.execute("local x = 0 for i = 1, 3000 do x = x + 1 end return x") == [3000], k
        rt.close()
