"""run_cell and LocalExecutor: the library under the magic, on a real Lua runtime."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from slothlab.errors import (
    LuaError,
    LuaSyntaxError,
    LuaTimeoutError,
    NotebookError,
    WorkflowError,
)
from slothlab.jupyter import (
    CellRequest,
    CellResult,
    LocalExecutor,
    check_lua_name,
    notebook_output,
    run_cell,
    run_workflow,
)
from slothlab.jupyter.local import LUA_RESERVED
from slothlab.lua import Runtime


@pytest.fixture
def runtime(slothlab_home: Path) -> Runtime:
    return Runtime(output=notebook_output)


@pytest.mark.parametrize(
    "value",
    [
        7,
        -2.5,
        "héllo",
        True,
        {"a": {"b": [1, 2, {"c": "d"}]}},
        [1, None, 3],
        b"\xff\x00raw",
        [],
    ],
)
def test_inputs_come_back_unchanged(runtime: Runtime, value: object) -> None:
    expected = {} if value == [] else value  # an empty Lua table is {}
    assert run_cell(runtime, "return v", {"v": value}).value == expected


def test_several_values_and_none(runtime: Runtime) -> None:
    assert run_cell(runtime, "return 1, nil, 'x'").values == [1, None, "x"]
    assert run_cell(runtime, "local x = 1").value is None


def test_elapsed_comes_from_the_clock(runtime: Runtime) -> None:
    ticks = iter([10.0, 12.5])
    result = run_cell(runtime, "return 1", clock=lambda: next(ticks))
    assert result == CellResult(values=[1], elapsed_s=2.5)


def test_globals_persist_and_locals_do_not(runtime: Runtime) -> None:
    run_cell(runtime, "g = 1 local l = 2")
    assert run_cell(runtime, "return g, l").values == [1, None]


@pytest.mark.parametrize("name", ["print", "end", "string", "_G", "1x", "a-b", "naïve"])
def test_unusable_input_names_are_refused(runtime: Runtime, name: str) -> None:
    with pytest.raises(NotebookError, match=repr(name)):
        run_cell(runtime, "return 1", {name: 1})


def test_module_names_are_protected() -> None:
    with pytest.raises(NotebookError, match="slothlab Lua module"):
        check_lua_name("state", frozenset({"state"}))
    assert "while" in LUA_RESERVED


def test_unconvertible_input_names_the_variable(runtime: Runtime) -> None:
    with pytest.raises(NotebookError, match=r"^-i thing: cannot pass a object to Lua"):
        run_cell(runtime, "return 1", {"thing": object()})


def test_lua_errors_pass_through(runtime: Runtime) -> None:
    with pytest.raises(LuaSyntaxError, match=r"^cell:1:"):
        run_cell(runtime, "return +")
    with pytest.raises(LuaError, match=r"^cell:2: boom$"):
        run_cell(runtime, "local x = 1\nerror('boom')")
    with pytest.raises(LuaTimeoutError, match="time limit"):
        run_cell(runtime, "while true do end", timeout_s=0.05)
    assert run_cell(runtime, "return 'still usable'").value == "still usable"


def test_notebook_output_streams(capsys: pytest.CaptureFixture[str]) -> None:
    for stream, text in [("stdout", "a"), ("info", "b"), ("warn", "c"), ("error", "d")]:
        notebook_output(stream, text)
    out, err = capsys.readouterr()
    assert out == "a\n[info] b\n"
    assert err == "[warn] c\n[error] d\n"


def test_print_goes_to_the_current_stdout(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cell(runtime, "print('x', 1, nil)")
    assert capsys.readouterr().out == "x\t1\tnil\n"


def test_executor_shares_one_runtime(slothlab_home: Path) -> None:
    made: list[Runtime] = []

    def factory() -> Runtime:
        made.append(Runtime())
        return made[-1]

    ex = LocalExecutor(factory)
    ex.run(CellRequest("n = 1"))
    ex.run(CellRequest("n = n + 1"))
    assert ex.run(CellRequest("return n")).value == 2
    assert len(made) == 1
    assert ex.run(CellRequest("n = 100 return n", fresh=True)).value == 100
    assert ex.run(CellRequest("return n")).value == 2  # the fresh cell left it alone
    ex.reset()
    assert ex.run(CellRequest("return n")).value is None
    assert len(made) == 3


def test_ctrl_c_interrupts_the_cell_and_keeps_the_runtime(slothlab_home: Path) -> None:
    started = threading.Event()
    rt = Runtime(output=lambda stream, text: started.set())
    ex = LocalExecutor(lambda: rt)
    ex.run(CellRequest("kept = 'yes'"))

    def press_ctrl_c() -> None:
        if started.wait(30):
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=press_ctrl_c)
    thread.start()
    with pytest.raises(LuaTimeoutError, match=r"^cell:1: interrupted$"):
        ex.run(CellRequest("print('looping') while true do end", timeout_s=30))
    thread.join()
    assert signal.getsignal(signal.SIGINT) is before
    assert ex.run(CellRequest("return kept")).value == "yes"


WORKFLOWS = """
workflow.define("build", {tasks = {
    {name = "compile", command = function() return true, "compiled", {artifact = "app.bin"} end},
    {name = "test", depends_on = "compile",
     command = function(this, params, inputs)
        return true, "tested " .. inputs.compile.artifact
     end},
}})
"""


def test_run_workflow_uses_the_engine(runtime: Runtime) -> None:
    run_cell(runtime, WORKFLOWS)
    events: list[str] = []
    result = run_workflow(runtime, listener=lambda ev: events.append(f"{ev.kind}:{ev.task}"))
    assert result.success
    assert result.order() == ["compile", "test"]
    assert result.tasks["test"].message == "tested app.bin"
    assert events.count("finish:compile") == events.count("finish:test") == 1


def test_run_workflow_needs_one_to_choose(runtime: Runtime) -> None:
    with pytest.raises(NotebookError, match="no workflow is defined"):
        run_workflow(runtime)
    run_cell(runtime, WORKFLOWS + 'workflow.define("other", {tasks = {}})')
    with pytest.raises(NotebookError, match=r"several workflows are defined \(build, other\)"):
        run_workflow(runtime)
    with pytest.raises(WorkflowError, match="no workflow 'nope'; it defines: build, other"):
        run_workflow(runtime, "nope")
    assert run_workflow(runtime, "build").success
