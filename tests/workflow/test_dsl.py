"""The Lua DSL (task builder, workflow.define in both forms) read back as WorkflowSpec."""

from __future__ import annotations

import pytest

from slothlab.errors import LuaError, WorkflowError
from slothlab.workflow import parse_workflow

from .conftest import Harness


def test_builder_form_keeps_every_field(harness: Harness) -> None:
    (spec,) = harness.load(
        """
        local a = task("a"):description("first"):command("echo hi"):timeout("1m30s")
            :retries(2):workdir("/tmp"):delegate_to("web-1"):params({region = "eu"})
            :run_if("true"):abort_if(function() return false end)
            :pre_exec(function() end):post_exec(function() end)
            :on_success(function() end):on_failure(function() end):build()
        local b = task("b"):depends_on({"a"}):delegate_to({"web-1", "web-2"})
            :command(function() return true end):build()
        workflow.define("ci"):description("d"):version("2.0"):tasks({a, b})
            :config({timeout = "10m"}):on_complete(function() end)
        """
    )
    assert (spec.name, spec.description, spec.version) == ("ci", "d", "2.0")
    assert spec.config == {"timeout": "10m"} and callable(spec.on_complete)
    a, b = spec.tasks
    assert (a.name, a.description, a.command, a.timeout_s, a.retries) == (
        "a",
        "first",
        "echo hi",
        90.0,
        2,
    )
    assert (a.workdir, a.delegate_to, a.params, a.run_if) == (
        "/tmp",
        ("web-1",),
        {"region": "eu"},
        "true",
    )
    assert all(
        callable(f) for f in (a.abort_if, a.pre_exec, a.post_exec, a.on_success, a.on_failure)
    )
    assert b.depends_on == ("a",) and b.delegate_to == ("web-1", "web-2") and callable(b.command)


def test_on_complete_after_tasks_is_kept(harness: Harness) -> None:
    (spec,) = harness.load(
        'workflow.define("w"):tasks({task("a"):build()}):on_complete(function() end)'
    )
    assert callable(spec.on_complete)


def test_table_form_with_an_array_and_with_a_map(harness: Harness) -> None:
    first, second = harness.load(
        """
        workflow.define("arr", {description = "x", tasks = {
            {name = "one", command = "true"},
            {name = "two", command = "true", depends_on = "one", retries = 1, timeout = 5},
        }})
        workflow.define("map", {tasks = {
            zeta = {command = "true"},
            alpha = {command = "true", depends_on = {"zeta"}},
        }})
        """
    )
    assert [t.name for t in first.tasks] == ["one", "two"]
    assert first.tasks[1].depends_on == ("one",) and first.tasks[1].timeout_s == 5.0
    assert [t.name for t in second.tasks] == ["alpha", "zeta"]


def test_a_builder_without_build_is_accepted(harness: Harness) -> None:
    (spec,) = harness.load('workflow.define("w"):tasks({task("a"):command("true")})')
    assert spec.tasks[0].command == "true"


def test_redefining_a_workflow_replaces_it_in_place(harness: Harness) -> None:
    specs = harness.load(
        """
        workflow.define("w", {tasks = {{name = "old"}}})
        workflow.define("v", {tasks = {}})
        workflow.define("w", {tasks = {{name = "new"}}})
        """
    )
    assert [(s.name, [t.name for t in s.tasks]) for s in specs] == [("w", ["new"]), ("v", [])]


def test_an_unknown_builder_method_names_the_known_ones(harness: Harness) -> None:
    with pytest.raises(LuaError, match=r"test.lua:1: task builder has no method 'retry'.*retries"):
        harness.load('task("a"):retry(3)')


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("{name = 'a', retries = -1}", "retries must be a whole number"),
        ("{name = 'a', timeout = 'soon'}", "task 'a': timeout: 'soon' is not a duration"),
        ("{name = 'a', depends_on = {1}}", "depends_on must be a name or a list of names"),
        ("{name = 'a', command = 42}", "command must be a function or a shell command string"),
        ("{name = 'a', on_success = 'x'}", "on_success must be a function"),
        ("{name = 'a', comand = 'true'}", r"unknown field\(s\) comand"),
        ("{command = 'true'}", "every task needs a non-empty string name"),
    ],
)
def test_bad_fields_are_named(harness: Harness, task: str, message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        harness.load(f'workflow.define("w", {{tasks = {{ {task} }}}})')


def test_duplicate_task_names_are_refused() -> None:
    with pytest.raises(WorkflowError, match="two tasks are called 'a'"):
        parse_workflow({"name": "w", "tasks": [{"name": "a"}, {"name": "a"}]})


def test_workflow_duration_helper(harness: Harness) -> None:
    harness.load("")
    assert harness.runtime is not None
    assert harness.runtime.execute('return workflow.duration("1h30m")') == [5400.0]


def test_a_script_without_workflows_collects_none(harness: Harness) -> None:
    assert harness.load("local x = 1") == []
