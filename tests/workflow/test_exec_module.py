"""The exec module: output, exit codes, workdir, minimal environment, timeouts, caps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from slothlab.lua import Capabilities, Runtime
from slothlab.lua.modules.exec import run_shell


def _rt(tmp_path: Path, caps: Capabilities | None = None) -> Runtime:
    return Runtime(capabilities=caps or Capabilities.local(), context={"workdir": str(tmp_path)})


def _run(tmp_path: Path, code: str) -> list[Any]:
    return _rt(tmp_path).execute(code)


def test_run_returns_output_and_exit_code(tmp_path: Path) -> None:
    (r,) = _run(tmp_path, "return exec.run('echo out; echo err >&2; exit 4')")
    assert r == {
        "stdout": "out\n",
        "stderr": "err\n",
        "exit_code": 4,
        "success": False,
        "timed_out": False,
    }


def test_run_uses_the_workdir_option_and_the_runtime_workdir(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    out = _run(
        tmp_path, f"return exec.run('pwd').stdout, exec.run('pwd', {{workdir = '{sub}'}}).stdout"
    )
    assert out == [f"{tmp_path}\n", f"{sub}\n"]


def test_the_environment_is_minimal_plus_what_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTHLAB_TEST_SECRET", "hunter2")
    (env,) = _run(tmp_path, "return exec.run('env', {env = {STAGE = 'ci', N = 3}}).stdout")
    names = {line.split("=", 1)[0] for line in env.splitlines()}
    assert "SLOTHLAB_TEST_SECRET" not in names and "hunter2" not in env
    assert {"PATH", "HOME", "STAGE", "N"} <= names
    assert "STAGE=ci" in env.splitlines() and "N=3" in env.splitlines()
    assert names <= {"PATH", "HOME", "STAGE", "N", "PWD", "SHLVL", "_", "OLDPWD"}


def test_a_timeout_kills_the_group_and_says_so(tmp_path: Path) -> None:
    (r,) = _run(tmp_path, "return exec.run('sleep 30; echo late', {timeout = '300ms'})")
    assert (
        r["timed_out"] and not r["success"] and r["exit_code"] == 124 and "late" not in r["stdout"]
    )


def test_output_is_capped(tmp_path: Path) -> None:
    r = run_shell("head -c 5000 /dev/zero | tr '\\0' x", max_output=1000)
    assert r.stdout.startswith("x" * 1000) and r.stdout.endswith(
        "[output truncated: 4000 more bytes]"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("exec.run('')", "the command must be a non-empty string"),
        ("exec.run('true', 5)", "options must be a table"),
        ("exec.run('true', {timeout = 'soon'})", "is not a duration"),
        ("exec.run('true', {workdir = '/no/such/dir'})", "cannot start the command"),
        ("exec.run('true', {env = {['A=B'] = 1}})", "bad environment variable name"),
    ],
)
def test_bad_calls_return_nil_and_a_message(tmp_path: Path, call: str, message: str) -> None:
    value, text = _run(tmp_path, f"return {call}")
    assert value is None and message in text


def test_exec_is_absent_without_the_capability(tmp_path: Path) -> None:
    assert _rt(tmp_path, Capabilities()).execute("return exec == nil") == [True]


def test_nul_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        run_shell("echo a\0b")


def test_stdin_is_empty(tmp_path: Path) -> None:
    assert run_shell("cat", timeout_s=5).stdout == ""
    assert os.environ.get("SLOTHLAB_TEST_SECRET") is None
