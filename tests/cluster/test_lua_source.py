"""Finding a task's Lua command in its script, for delegate_to (no agent needed)."""

from __future__ import annotations

import pytest

from slothlab.errors import WorkflowError
from slothlab.lua.runtime import Runtime
from slothlab.workflow._lua_source import command_source, tokenize

SCRIPT = """
local LIMIT = 3 -- a script local: does not travel
local function helper(this, params, inputs)
    local total = 0
    for i = 1, params.n do total = total + i end
    return true, "sum " .. total, { total = total }
end

local a = task("a"):description("x"):timeout("5s"):command(function(this, params)
    local s = [[ end ]] -- a long string holding "end"
    if params.n then
        while false do end
    end
    return true, "a done", { n = params.n, text = s }
end):build()

workflow.define("w", {
    tasks = {
        a,
        { name = "b", depends_on = "a", command = helper },
        { name = "c", command = function() return LIMIT > 2, "c" end },
        { name = "d", command = "echo shell" },
    },
})
"""


def test_builder_form_is_found_whole() -> None:
    source = command_source(SCRIPT, "a")
    assert source.line == 9
    assert source.text.startswith("function(this, params)")
    assert source.text.endswith("{ n = params.n, text = s }\nend")


def test_named_local_function_is_found_anonymous() -> None:
    source = command_source(SCRIPT, "b")
    assert source.text.startswith("function(this, params, inputs)") and source.line == 3


def test_found_text_runs_in_lua() -> None:
    chunk = f"local command = {command_source(SCRIPT, 'b').text}\nreturn command(...)"
    rt = Runtime()
    assert rt.call(rt.load(chunk), None, {"n": 4}) == [True, "sum 10", {"total": 10}]


def test_script_locals_are_refused_by_name() -> None:
    with pytest.raises(
        WorkflowError, match=r"task 'c': its command uses LIMIT, local to the script"
    ):
        command_source(SCRIPT, "c")


def test_shell_or_unknown_task_is_not_found() -> None:
    for name in ("d", "nope"):
        with pytest.raises(WorkflowError, match="cannot find its Lua command"):
            command_source(SCRIPT, name)


def test_tokenizer_skips_comments_and_strings() -> None:
    tokens = tokenize("--[==[ function end ]==] x = 'end' -- end\n y = [[function]]")
    assert [t.text for t in tokens if t.kind == "name"] == ["x", "y"]
    assert tokens[-1].line == 2
