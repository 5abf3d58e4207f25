"""%%sloth and %sloth on a bare IPython shell: arguments, values both ways, errors, settings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from slothlab.jupyter.magics import SlothMagics, load_ipython_extension, unload_ipython_extension


def sloth(shell: InteractiveShell, line: str, cell: str) -> object:
    return shell.run_cell_magic("sloth", line, cell)


def usage_error(shell: InteractiveShell, line: str, cell: str) -> str:
    with pytest.raises(UsageError) as info:
        sloth(shell, line, cell)
    return str(info.value)


def test_load_ext_registers_and_unload_removes(bare_shell: InteractiveShell, slothlab_home: Path):
    bare_shell.run_line_magic("load_ext", "slothlab")
    try:
        assert "sloth" in bare_shell.magics_manager.magics["cell"]
        assert "sloth" in bare_shell.magics_manager.magics["line"]
        assert any(isinstance(c, SlothMagics) for c in bare_shell.configurables)
    finally:
        bare_shell.run_line_magic("unload_ext", "slothlab")
    assert "sloth" not in bare_shell.magics_manager.magics["cell"]
    assert not any(isinstance(c, SlothMagics) for c in bare_shell.configurables)


def test_config_lists_and_sets_the_traits(shell: InteractiveShell, magics: SlothMagics) -> None:
    with capture_output() as cap:
        shell.run_line_magic("config", "SlothMagics")
    for trait in ("timeout", "max_memory_mb", "show_traceback", "interactive"):
        assert f"SlothMagics.{trait}=" in cap.stdout
    shell.run_line_magic("config", "SlothMagics.timeout = 12.5")
    assert magics.timeout == 12.5


def test_max_memory_default_comes_from_the_settings(
    bare_shell: InteractiveShell, slothlab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTHLAB_LUA_MAX_MEMORY_MB", "64")
    load_ipython_extension(bare_shell)
    try:
        assert bare_shell.magics_manager.registry["SlothMagics"].max_memory_mb == 64
    finally:
        unload_ipython_extension(bare_shell)


@pytest.mark.parametrize(
    "value",
    [
        0,
        2**53 + 1,
        3.25,
        "ünïcode",
        False,
        {"hosts": [{"name": "a", "tags": ["web", "eu"]}], "n": 2},
        [1, None, None, 4],
        b"\x00\xfe\xff",
    ],
)
def test_values_round_trip_through_lua(shell: InteractiveShell, value: object) -> None:
    shell.user_ns["v"] = value
    assert sloth(shell, "-i v -o back", "return v") is None
    assert shell.user_ns["back"] == value
    assert type(shell.user_ns["back"]) is type(value)


def test_utf8_bytes_come_back_as_text(shell: InteractiveShell) -> None:
    shell.user_ns["raw"] = b"plain"
    assert sloth(shell, "-i raw", "return raw") == "plain"


def test_none_values_in_a_dict_are_dropped(shell: InteractiveShell) -> None:
    shell.user_ns["d"] = {"a": 1, "gone": None}
    assert sloth(shell, "-i d", "return d") == {"a": 1}


def test_inputs_repeat_or_comma_separate(shell: InteractiveShell) -> None:
    shell.user_ns.update(a=1, b=2, c=3)
    assert sloth(shell, "-i a,b -i c", "return a + b + c") == 6
    assert sloth(shell, "--in a, -i b", "return a + b") == 3


def test_several_returns_are_a_list(shell: InteractiveShell) -> None:
    assert sloth(shell, "-o out", "return true, 'done', {n = 1}") is None
    assert shell.user_ns["out"] == [True, "done", {"n": 1}]


def test_nothing_returned_shows_nothing(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        shell.run_cell("%%sloth\nlocal x = 1 + 1\n")
    assert cap.stdout == ""
    with capture_output() as cap:
        result = shell.run_cell("%%sloth\nreturn 6 * 7\n")
    assert result.result == 42
    assert "42" in cap.stdout  # shown as Out[n]


def test_rows_stay_a_list_with_o_and_become_a_frame_with_df(shell: InteractiveShell) -> None:
    code = "return {{host = 'a', cpu = 0.5}, {host = 'b', cpu = 0.25}}"
    sloth(shell, "-o rows", code)
    assert type(shell.user_ns["rows"]) is list
    assert shell.user_ns["rows"] == [{"host": "a", "cpu": 0.5}, {"host": "b", "cpu": 0.25}]
    sloth(shell, "--df -o frame", code)
    frame = shell.user_ns["frame"]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["cpu", "host"]
    assert frame["cpu"].tolist() == [0.5, 0.25]


def test_df_on_a_non_table_is_a_usage_error(shell: InteractiveShell) -> None:
    assert usage_error(shell, "--df", "return 42").startswith("--df needs rows")


def test_rows_show_as_html_when_interactive(shell: InteractiveShell, magics: SlothMagics) -> None:
    code = "return {{host = 'a'}, {host = 'b'}}"
    shown = sloth(shell, "", code)
    data, _ = shell.display_formatter.format(shown)
    assert "<td>a</td>" in data["text/html"]
    assert shown == [{"host": "a"}, {"host": "b"}]
    magics.interactive = False
    plain = sloth(shell, "", code)
    assert type(plain) is list
    assert "text/html" not in shell.display_formatter.format(plain)[0]


def test_noninteractive_switch(
    bare_shell: InteractiveShell, slothlab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTHLAB_NONINTERACTIVE", "1")
    load_ipython_extension(bare_shell)
    try:
        assert bare_shell.magics_manager.registry["SlothMagics"].interactive is False
    finally:
        unload_ipython_extension(bare_shell)


def test_lua_error_is_one_usage_line(shell: InteractiveShell) -> None:
    text = usage_error(shell, "", "local x = 1\nerror('disk full')")
    assert text == "Lua error: cell:2: disk full"
    with capture_output() as cap:
        result = shell.run_cell("%%sloth\nlocal t = nil\nreturn t.x\n")
    assert not result.success
    assert cap.stderr.startswith("UsageError: Lua error: cell:2: attempt to index a nil value")
    assert cap.stderr.count("\n") == 1
    assert "Traceback" not in cap.stdout + cap.stderr


def test_syntax_error(shell: InteractiveShell) -> None:
    assert usage_error(shell, "", "return {1, 2").startswith("Lua syntax error: cell:1:")


def test_show_traceback_adds_the_lua_traceback(
    shell: InteractiveShell, magics: SlothMagics
) -> None:
    code = "local function inner() error('deep') end\ninner()"
    shell.run_line_magic("config", "SlothMagics.show_traceback = True")
    lines = usage_error(shell, "", code).splitlines()
    assert lines[0] == "Lua error: cell:1: deep"
    assert lines[1] == "stack traceback:"
    assert any("inner" in line for line in lines[2:])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-i missing", "-i missing: there is no Python variable 'missing'"),
        ("-i print", "'print' is a Lua keyword or standard global"),
        ("-o 1bad", "-o 1bad: not a valid Python variable name"),
        ("-o class", "-o class: not a valid Python variable name"),
        ("--timeout -1", "--timeout -1: give a number of seconds >= 0"),
        ("--bogus", "unrecognized arguments: --bogus"),
        ("--timeout soon", "argument --timeout: invalid float value: 'soon'"),
    ],
)
def test_bad_arguments_are_one_line(shell: InteractiveShell, line: str, message: str) -> None:
    shell.user_ns["print"] = 1
    text = usage_error(shell, line, "return 1")
    assert message in text
    assert "\n" not in text


def test_unconvertible_input(shell: InteractiveShell) -> None:
    shell.user_ns["handle"] = open  # a function cannot go to Lua
    text = usage_error(shell, "-i handle", "return handle")
    assert text.startswith("-i handle: cannot pass a builtin_function_or_method to Lua")


def test_globals_persist_across_cells_until_reset(shell: InteractiveShell) -> None:
    sloth(shell, "", "greeting = 'hi'\nlocal hidden = 1")
    assert sloth(shell, "", "return greeting, hidden") == ["hi", None]
    assert sloth(shell, "--fresh", "greeting = 'other' return greeting") == "other"
    assert sloth(shell, "", "return greeting") == "hi"
    with capture_output() as cap:
        shell.run_line_magic("sloth", "reset")
    assert "new Lua runtime" in cap.stdout
    assert sloth(shell, "", "return greeting") is None


def test_unknown_line_command(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="invalid choice: 'start'"):
        shell.run_line_magic("sloth", "start")


def test_timeout_flag_and_setting(shell: InteractiveShell) -> None:
    sloth(shell, "", "kept = 1")
    text = usage_error(shell, "--timeout 0.1", "while true do end")
    assert text.startswith("Lua stopped: cell:1: time limit exceeded")
    shell.run_line_magic("config", "SlothMagics.timeout = 0.1")
    assert usage_error(shell, "", "while true do end").startswith("Lua stopped")
    assert sloth(shell, "", "return kept") == 1  # the runtime survived both


def test_memory_cap_applies_after_reset(shell: InteractiveShell) -> None:
    shell.run_line_magic("config", "SlothMagics.max_memory_mb = 32")
    shell.run_line_magic("sloth", "reset")
    text = usage_error(shell, "", "return #string.rep('x', 64 * 1024 * 1024)")
    assert "not enough memory" in text and "max_memory_mb" in text
    assert sloth(shell, "", "return 'usable'") == "usable"


def test_print_and_log_land_in_the_cell_output(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        shell.run_cell("%%sloth\nprint('hello', 42)\n")
    assert cap.stdout == "hello\t42\n"


def test_installed_modules_are_globals(shell: InteractiveShell, magics: SlothMagics) -> None:
    sloth(shell, "", "return 1")
    runtime = magics.executor.runtime  # type: ignore[attr-defined]
    for name in runtime.installed:
        assert sloth(shell, "", f"return {name} ~= nil") is True, name
    if "log" in runtime.installed:
        with capture_output() as cap:
            sloth(shell, "", "log.warn('careful')")
        assert "careful" in cap.stderr


def test_run_a_workflow_defined_in_a_cell(shell: InteractiveShell) -> None:
    sloth(
        shell,
        "",
        """
        workflow.define("deploy", {tasks = {
            {name = "fetch", command = function() return true, "fetched" end},
            {name = "switch", depends_on = "fetch", command = function() return true, "live" end},
        }})
        """,
    )
    with capture_output() as cap:
        assert shell.run_line_magic("sloth", "run deploy -o run") is None
    lines = cap.stdout.splitlines()
    assert lines[0].startswith("✓ fetch (") and lines[0].endswith(") fetched")
    assert lines[1].startswith("✓ switch (")
    assert lines[2].startswith("workflow deploy succeeded in ")
    assert lines[2].endswith(": 2 success")
    assert shell.user_ns["run"].tasks["switch"].message == "live"


def test_a_failed_workflow_is_a_usage_error(shell: InteractiveShell) -> None:
    sloth(
        shell,
        "",
        """workflow.define("broken", {tasks = {
            {name = "check", command = function() return false, "disk full" end},
            {name = "after", depends_on = "check", command = function() return true end},
        }})""",
    )
    with capture_output() as cap, pytest.raises(UsageError) as info:
        shell.run_line_magic("sloth", "run -o res")
    assert str(info.value) == "workflow broken failed: check: disk full"
    assert "workflow broken failed in" in cap.stdout
    assert shell.user_ns["res"].tasks["after"].status == "skipped"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("run", "no workflow is defined"),
        ("run ghost", "no workflow is defined"),
        ("reset extra", "%sloth reset takes no arguments"),
        ("run x -o 2x", "-o 2x: not a valid Python variable name"),
    ],
)
def test_bad_line_commands(shell: InteractiveShell, line: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("sloth", line)
    assert message in str(info.value)


def test_settings_refuse_out_of_range_values(shell: InteractiveShell, magics: SlothMagics) -> None:
    with capture_output():
        shell.run_cell("%config SlothMagics.max_memory_mb = 0")
        shell.run_cell("%config SlothMagics.timeout = -5")
    assert magics.max_memory_mb >= 1
    assert magics.timeout == 0.0
