"""``slothlab lua``: JSON on success, one line and exit 1 on any error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slothlab.cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["lua", *args])
    return result.exit_code, result.stdout, result.stderr


def test_code_prints_json() -> None:
    assert run("-e", "return 1 + 1") == (0, "2\n", "")
    code, out, _ = run("-e", "return 1, 'é', {x = 0/0, y = {1, 2}, [true] = 1/0}")
    assert code == 0
    assert json.loads(out) == [1, "é", {"x": None, "y": [1, 2], "true": None}]
    assert run("-e", "return") == (0, "[]\n", "")


def test_file(tmp_path: Path) -> None:
    script = tmp_path / "job.lua"
    script.write_bytes(b"local t = {}\nfor i = 1, 3 do t[i] = i * i end\nreturn t, '\xff'\n")
    assert run(str(script)) == (0, '[[1, 4, 9], "\ufffd"]\n', "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "error('boom')"], "error: -e:1: boom\n"),
        (["-e", "error({code = 1})"], 'error: -e:1: error object is a table: {"code": 1}\n'),
        (["-e", "return +"], "error: -e:1: unexpected symbol near '+'\n"),
        (["--timeout", "0.2", "-e", "while true do end"], "error: -e:1: time limit exceeded\n"),
        (
            ["-e", "return string.rep('x', 1 << 30)"],
            "error: not enough memory: the Lua memory cap was reached\n",
        ),
        (
            ["-e", "return {f = print}"],
            "error: result.f is a function, which JSON cannot show; "
            "return data (numbers, strings, booleans, tables) instead\n",
        ),
        (
            ["/nonexistent/job.lua"],
            "error: cannot read /nonexistent/job.lua: No such file or directory\n",
        ),
    ],
)
def test_errors_are_one_line(args: list[str], message: str) -> None:
    assert run(*args) == (1, "", message)


def test_traceback_flag(tmp_path: Path) -> None:
    script = tmp_path / "t.lua"
    script.write_text("local function f()\n  error('deep')\nend\nf()\n")
    code, _, err = run("--traceback", str(script))
    assert code == 1
    assert err.splitlines()[:2] == ["error: t.lua:2: deep", "stack traceback:"]
    assert "t.lua:4: in main chunk" in err


def test_usage_errors() -> None:
    code, _, err = run()
    assert code == 2 and "give either a FILE or -e CODE" in err
    code, _, err = run("--timeout", "-1", "-e", "return 1")
    assert code == 2 and "--timeout" in err


def test_real_process_has_no_python_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "slothlab.cli", "lua", "-e", "local x = nil\nreturn x.y"],
        capture_output=True,
        text=True,
        check=False,
    )
    if "No module named slothlab.cli.__main__" in proc.stderr:
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "slothlab"),
                "lua",
                "-e",
                "local x = nil\nreturn x.y",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    assert proc.returncode == 1
    assert proc.stderr == "error: -e:2: attempt to index a nil value (local 'x')\n"


def test_dash_reads_standard_input() -> None:
    result = CliRunner().invoke(main, ["lua", "-"], input="return {answer = 6 * 7}\n")
    assert (result.exit_code, result.stdout) == (0, '{"answer": 42}\n')
    result = CliRunner().invoke(main, ["lua", "-"], input="error('boom')\n")
    assert (result.exit_code, result.stderr) == (1, "error: stdin:1: boom\n")


def test_lua_settings_apply(monkeypatch: pytest.MonkeyPatch, slothlab_home: Path) -> None:
    monkeypatch.setenv("SLOTHLAB_LUA_INSTRUCTION_LIMIT", "100000")
    code, _, err = run("--timeout", "60", "-e", "while true do end")  # 60: never hang
    assert code == 1 and err.count("\n") == 1 and "instruction" in err, err
    monkeypatch.delenv("SLOTHLAB_LUA_INSTRUCTION_LIMIT")
    monkeypatch.setenv("SLOTHLAB_LUA_MAX_MEMORY_MB", "16")
    code, _, err = run("-e", "return #string.rep('x', 64 * 1024 * 1024)")
    assert code == 1 and "memory" in err, err
    monkeypatch.setenv("SLOTHLAB_LUA_MAX_MEMORY_MB", "lots")
    code, _, err = run("-e", "return 1")
    assert code == 1 and err.startswith("error: SLOTHLAB_LUA_MAX_MEMORY_MB='lots'"), err


def test_a_shebang_line_or_bom_is_skipped_like_lua_does(tmp_path: Path) -> None:
    script = tmp_path / "tool.lua"
    script.write_bytes(b"#!/usr/bin/env -S slothlab lua\nreturn 7\n")
    assert run(str(script)) == (0, "7\n", "")
    script.write_bytes(b"#!/usr/bin/env -S slothlab lua\nerror('x')\n")
    assert run(str(script))[2] == "error: tool.lua:2: x\n"  # line numbers kept
    script.write_bytes(b"\xef\xbb\xbfreturn 8\n")
    assert run(str(script)) == (0, "8\n", "")
