"""``slothlab run``: exit codes, JSON on stdout only, workflow choice, readable errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slothlab.cli import main

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
print("hello from print")
workflow.define("good", {tasks = {
    {name = "a", command = function() log.info("in a"); return true, "done", {n = 1} end},
    {name = "b", depends_on = "a", command = "echo shell-ok"},
}})
"""
BAD = """
workflow.define("bad", {tasks = {
    {name = "a", command = "exit 2"},
    {name = "b", depends_on = "a", command = "true"},
}})
"""
TWO = """
workflow.define("one", {tasks = {{name = "x", command = function() return true, "one" end}}})
workflow.define("two", {tasks = {{name = "y", command = function() return true, "two" end}}})
"""


def _script(tmp_path: Path, code: str, name: str = "flow.lua") -> Path:
    path = tmp_path / name
    path.write_text(code)
    return path


def _slothlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("slothlab")
    cmd = (
        [str(tool)]
        if tool.exists()
        else [sys.executable, "-c", "from slothlab.cli import main; main()"]
    )
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=120, env={**os.environ}
    )


def test_json_success_is_the_only_thing_on_stdout(tmp_path: Path, slothlab_home: Path) -> None:
    proc = _slothlab("run", str(_script(tmp_path, GOOD)), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["workflow"] == "good" and doc["success"] is True
    assert doc["tasks"]["a"] == {
        "status": "success",
        "message": "done",
        "outputs": {"n": 1},
        "attempts": 1,
        "duration_s": doc["tasks"]["a"]["duration_s"],
    }
    assert doc["tasks"]["b"]["message"] == "shell-ok"
    assert "hello from print" in proc.stderr and "[info] in a" in proc.stderr


def test_json_has_no_nan_or_infinity(tmp_path: Path, slothlab_home: Path) -> None:
    code = """workflow.define("w", {tasks = {{name = "a", command = function()
        return true, "m", {n = 0/0, big = math.huge, list = {1, -math.huge}} end}}})"""
    result = CliRunner().invoke(main, ["run", str(_script(tmp_path, code)), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert doc["tasks"]["a"]["outputs"] == {"n": None, "big": None, "list": [1, None]}


def test_a_shebang_line_is_skipped(tmp_path: Path, slothlab_home: Path) -> None:
    script = _script(tmp_path, "#!/usr/bin/env -S slothlab run\n" + TWO)
    result = CliRunner().invoke(main, ["run", str(script), "-w", "one", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tasks"]["x"]["message"] == "one"


def test_a_failed_workflow_exits_1(tmp_path: Path, slothlab_home: Path) -> None:
    proc = _slothlab("run", str(_script(tmp_path, BAD)), "--json", cwd=tmp_path)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["success"] is False
    assert [doc["tasks"][n]["status"] for n in ("a", "b")] == ["failed", "skipped"]


def test_readable_output_has_progress_and_a_summary(tmp_path: Path, slothlab_home: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(_script(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "workflow good" in result.output and "▶ a" in result.output
    assert "succeeded" in result.output and "2 success" in result.output


@pytest.mark.parametrize(
    ("code", "args", "message"),
    [
        (TWO, [], "defines several workflows (one, two); choose one with --workflow NAME"),
        (TWO, ["--workflow", "three"], "has no workflow 'three'; it defines: one, two"),
        ("local x = 1", [], "defines no workflow"),
        ("workflow.define('w', {tasks = {{name = 'a', depends_on = 'a'}}})", [], "cycle a -> a"),
        ("this is not lua", [], "flow.lua:1:"),
        ("error('boom')", [], "flow.lua:1: boom"),
        ("error('[/] and [red]x')", [], "flow.lua:1: [/] and [red]x"),  # not rich markup
    ],
)
def test_bad_scripts_exit_2_with_a_message(
    tmp_path: Path, slothlab_home: Path, code: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["run", str(_script(tmp_path, code)), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.lua")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_workflow_option_picks_one(tmp_path: Path, slothlab_home: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(_script(tmp_path, TWO)), "-w", "two", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["tasks"]["y"]["message"] == "two"


@pytest.mark.slow
def test_the_demo_workflow_succeeds(tmp_path: Path, slothlab_home: Path) -> None:
    proc = _slothlab("run", str(ROOT / "examples" / "release.lua"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["success"] and doc["tasks"]["smoke"]["attempts"] == 2
    assert doc["tasks"]["package"]["message"] == "packaged app-1.4.1.tar.gz"
    assert "artifact ready" in proc.stderr
