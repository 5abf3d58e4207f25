"""The engine through real Lua: order, parallelism, retries, timeouts, conditions and hooks."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from slothlab.errors import WorkflowError
from slothlab.lua import Capabilities

from .conftest import Harness


def test_tasks_run_after_their_dependencies_and_get_their_outputs(harness: Harness) -> None:
    result = harness.run(
        """
        workflow.define("w", {tasks = {
            {name = "report", depends_on = {"build", "test"},
             command = function(this, params, inputs)
                 return true, "v" .. inputs.build.version .. " " .. inputs.test.passed,
                     {deps = inputs}
             end},
            {name = "test", depends_on = "build", command = function(this, params, inputs)
                return true, "tested", {passed = 3, saw = inputs.build.version}
            end},
            {name = "build", command = function(this, params)
                return true, "built", {version = "1.2", task = params.task_name,
                                       region = params.region, dir = params.workdir}
            end, params = {region = "eu"}},
        }})
        """
    )
    assert result.success and result.order() == ["build", "test", "report"]
    build = result.tasks["build"].outputs
    assert build == {"version": "1.2", "task": "build", "region": "eu", "dir": str(harness.workdir)}
    assert result.tasks["test"].outputs == {"passed": 3, "saw": "1.2"}
    assert result.tasks["report"].message == "v1.2 3"
    assert list(result.tasks) == ["report", "test", "build"]  # the script's order


def _stamp(name: str) -> str:
    return f"date +%s%N > {name}.start && sleep 0.3 && date +%s%N > {name}.end"


def test_independent_shell_tasks_overlap(harness: Harness) -> None:
    result = harness.run(
        f"""
        workflow.define("w", {{tasks = {{
            {{name = "a", command = "{_stamp("a")}"}},
            {{name = "b", command = "{_stamp("b")}"}},
            {{name = "c", command = "{_stamp("c")}"}},
            {{name = "after", depends_on = {{"a", "b", "c"}},
              command = "date +%s%N > after.start"}},
        }}}})
        """
    )
    assert result.success, result.to_json()
    stamp = {
        p.name: int(p.read_text())
        for p in harness.workdir.iterdir()
        if p.suffix in (".start", ".end")
    }
    starts = [stamp[f"{n}.start"] for n in "abc"]
    ends = [stamp[f"{n}.end"] for n in "abc"]
    assert max(starts) < min(ends), "the three shell tasks did not run at the same time"
    assert stamp["after.start"] > max(ends)


def test_max_parallel_one_runs_shell_tasks_one_after_the_other(harness: Harness) -> None:
    result = harness.run(
        f"""
        workflow.define("w", {{config = {{max_parallel = 1}}, tasks = {{
            {{name = "a", command = "{_stamp("a")}"}},
            {{name = "b", command = "{_stamp("b")}"}},
        }}}})
        """
    )
    assert result.success
    read = lambda n: int((harness.workdir / n).read_text())  # noqa: E731
    assert read("a.end") < read("b.start") or read("b.end") < read("a.start")


def test_retries_back_off_1_2_4_and_count_attempts(harness: Harness) -> None:
    result = harness.run(
        """
        local n = 0
        workflow.define("w", {tasks = {
            {name = "flaky", retries = 5, command = function()
                n = n + 1
                if n < 4 then return false, "not yet " .. n end
                return true, "worked on attempt " .. n
            end},
            {name = "broken", retries = 2, command = function() return false, "always" end},
        }})
        """
    )
    assert result.tasks["flaky"].status == "success"
    assert result.tasks["flaky"].attempts == 4
    assert result.tasks["flaky"].message == "worked on attempt 4"
    assert result.tasks["broken"].status == "failed" and result.tasks["broken"].attempts == 3
    assert sorted(harness.sleeps) == [1.0, 1.0, 2.0, 2.0, 4.0]
    assert not result.success


def test_a_lua_task_past_its_timeout_fails(harness: Harness) -> None:
    result = harness.run(
        """
        workflow.define("w", {tasks = {
            {name = "spin", timeout = "200ms", command = function() while true do end end},
        }})
        """
    )
    spin = result.tasks["spin"]
    assert spin.status == "failed" and spin.message == "timed out after 0.2 s"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_shell_timeout_kills_the_whole_process_group(harness: Harness) -> None:
    result = harness.run(
        """
        workflow.define("w", {tasks = {
            {name = "slow", timeout = "1s", command = "sleep 30 & echo $! > child.pid; wait"},
        }})
        """
    )
    slow = result.tasks["slow"]
    assert slow.status == "failed" and slow.message == "timed out after 1 s"
    child = int((harness.workdir / "child.pid").read_text())
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the shell's child survived the timeout"


def test_a_failed_dependency_skips_its_dependents_but_not_others(harness: Harness) -> None:
    result = harness.run(
        """
        workflow.define("w", {tasks = {
            {name = "bad", command = "echo boom >&2; exit 3"},
            {name = "child", depends_on = "bad", command = "true"},
            {name = "grandchild", depends_on = "child", command = "true"},
            {name = "other", command = "true"},
        }})
        """
    )
    statuses = {n: r.status for n, r in result.tasks.items()}
    assert statuses == {
        "bad": "failed",
        "child": "skipped",
        "grandchild": "skipped",
        "other": "success",
    }
    assert result.tasks["bad"].message == "exit 3: boom"
    assert result.tasks["bad"].outputs["exit_code"] == 3
    assert result.tasks["child"].message == "skipped: dependency 'bad' did not succeed"
    assert result.tasks["child"].attempts == 0 and not result.success


def test_run_if_false_skips_and_counts_as_success(harness: Harness) -> None:
    result = harness.run(
        """
        workflow.define("w", {tasks = {
            {name = "never", run_if = function() return false end, command = "exit 1"},
            {name = "shell_no", run_if = "test -e missing-file", command = "exit 1"},
            {name = "shell_yes", run_if = "true", command = "echo ran"},
            {name = "after", depends_on = {"never", "shell_no"}, command = function(t, p, inputs)
                return true, "inputs " .. tostring(next(inputs.never) == nil)
            end},
        }})
        """
    )
    assert result.success
    assert result.tasks["never"].status == "skipped"
    assert result.tasks["never"].message == "skipped: run_if is false"
    assert result.tasks["shell_no"].status == "skipped"
    assert result.tasks["shell_yes"].outputs["stdout"] == "ran\n"
    assert result.tasks["after"].message == "inputs true"


def test_abort_if_true_stops_the_workflow(harness: Harness) -> None:
    result = harness.run(
        """
        workflow.define("w", {config = {max_parallel = 1}, tasks = {
            {name = "first", command = "true"},
            {name = "gate", depends_on = "first", abort_if = "true", command = "true"},
            {name = "later", depends_on = "gate", command = "true"},
            {name = "unrelated", depends_on = "first", abort_if = function() return false end,
             command = "true"},
        }})
        """
    )
    assert not result.success and result.aborted_by == "gate"
    assert result.tasks["gate"].status == "failed"
    assert result.tasks["later"].status == "skipped"
    assert "aborted by task 'gate'" in result.tasks["later"].message


def test_hooks_run_in_order_with_their_arguments(harness: Harness) -> None:
    result = harness.run(
        """
        calls = {}
        local function rec(s) calls[#calls + 1] = s end
        workflow.define("w", {tasks = {
            {name = "ok", params = {k = "v"},
             pre_exec = function(this, params) rec("pre " .. this.name .. " " .. params.k) end,
             command = function() rec("cmd"); return true, "fine", {n = 7} end,
             post_exec = function(this, params, out) rec("post " .. out.n) end,
             on_success = function(this, params, out) rec("success " .. out.n) end,
             on_failure = function() rec("never") end},
            {name = "ko", depends_on = "ok", retries = 1,
             command = function() return false, "nope" end,
             on_failure = function(this, params, err)
                 rec("failure " .. err.error .. " after " .. err.attempts)
             end},
        }, on_complete = function(success, results)
            rec("complete " .. tostring(success) .. " " .. results.ok.status .. " "
                .. results.ko.status .. " " .. results.ok.outputs.n)
        end})
        """
    )
    assert not result.success
    assert harness.lua_global("calls") == [
        "pre ok v",
        "cmd",
        "post 7",
        "success 7",
        "failure nope after 2",
        "complete false success failed 7",
    ]


def test_a_failing_hook_fails_the_task(harness: Harness) -> None:
    result = harness.run(
        """
        workflow.define("w", {tasks = {
            {name = "a", command = "true", pre_exec = function() error("not ready") end},
        }})
        """
    )
    assert result.tasks["a"].status == "failed"
    assert result.tasks["a"].message.startswith("pre_exec failed: test.lua:3: not ready")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return 'yes'", "must return true or false first (it returned a string)"),
        ("return nil", "must return true or false first (it returned a nil)"),
        ("", "must return true or false first (it returned nothing)"),
        ("return true, 'x', 5", "outputs (third value) must be a table"),
        ("error('kaput')", "test.lua:2: kaput"),
    ],
)
def test_bad_returns_and_errors_fail_the_task(harness: Harness, body: str, message: str) -> None:
    result = harness.run(
        f"""workflow.define("w", {{tasks = {{{{name = "a", command = function()
            {body}
        end}}}}}})"""
    )
    assert result.tasks["a"].status == "failed"
    assert message in result.tasks["a"].message


def test_a_cycle_is_an_error_that_names_it(harness: Harness) -> None:
    with pytest.raises(WorkflowError, match=r"dependency cycle a -> c -> b -> a"):
        harness.run(
            """
            workflow.define("w", {tasks = {
                {name = "a", depends_on = "c"}, {name = "b", depends_on = "a"},
                {name = "c", depends_on = "b"}, {name = "d"},
            }})
            """
        )


def test_an_unknown_dependency_is_an_error(harness: Harness) -> None:
    with pytest.raises(WorkflowError, match=r"task 'a' depends on 'ghost', which is not a task"):
        harness.run('workflow.define("w", {tasks = {{name = "a", depends_on = "ghost"}}})')


def test_shell_commands_need_the_exec_capability(tmp_path: Path) -> None:
    harness = Harness(workdir=tmp_path, capabilities=Capabilities())
    result = harness.run('workflow.define("w", {tasks = {{name = "a", command = "true"}}})')
    assert result.tasks["a"].status == "failed"
    assert "need the exec capability" in result.tasks["a"].message


def test_events_report_progress(harness: Harness) -> None:
    harness.run(
        """
        local n = 0
        workflow.define("w", {tasks = {{name = "a", retries = 1, command = function()
            n = n + 1
            return n > 1, "attempt " .. n
        end}}})
        """
    )
    kinds = [(e.kind, e.task, e.attempt) for e in harness.events]
    assert kinds == [
        ("begin", "w", 0),
        ("start", "a", 1),
        ("retry", "a", 1),
        ("start", "a", 2),
        ("finish", "a", 2),
    ]
    assert harness.events[2].delay_s == 1.0 and harness.events[2].message == "attempt 1"


def test_on_complete_errors_are_reported_not_raised(harness: Harness) -> None:
    result = harness.run(
        'workflow.define("w", {tasks = {{name = "a"}}, on_complete = function() error("x") end})'
    )
    assert result.success
    assert [e.kind for e in harness.events][-1] == "complete_error"


def test_the_workflow_timeout_cuts_attempts_and_starts_nothing_after_it(harness: Harness) -> None:
    result = harness.run(
        """
        workflow.define("w", {config = {timeout = "1s"}, tasks = {
            {name = "slow", command = "sleep 20", timeout = "1m"},
            {name = "next", depends_on = "slow", command = "true"},
            {name = "late", run_if = "sleep 1.5", command = "true"},
        }})
        """
    )
    assert result.tasks["slow"].message == "timed out after 1 s"
    assert result.tasks["next"].status == "skipped"
    assert result.tasks["late"].status == "failed"
    assert "timeout" in result.tasks["late"].message and not result.success
