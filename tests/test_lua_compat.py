"""Every script in ``$SLOTHLAB_SHARED_DIR/lua-compat`` runs and gives the result its header states.

Each script runs twice, through ``slothlab run FILE --json`` in a real subprocess and through
:func:`slothlab.workflow.run_file`, each with a private ``SLOTHLAB_HOME``. The expected results
live in ``tests/lua_compat/<script>.json`` (written by reading each script's header); a script
without one fails, so a newly added script is noticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slothlab.config import shared_dir as _configured_shared_dir

EXPECTED = Path(__file__).parent / "lua_compat"
_FOLDER = _configured_shared_dir()
SCRIPTS = sorted(p.name for p in (_FOLDER / "lua-compat").glob("*.lua")) if _FOLDER else []
MISSING_UPSTREAM: dict[str, str] = {}  # script -> reason, for a module that has not landed yet


def _cases() -> list[Any]:
    if not SCRIPTS:
        return [pytest.param("<no scripts>", "library", id="no-shared-dir")]
    cases = []
    for script in SCRIPTS:
        for way in ("cli", "library"):
            reason = MISSING_UPSTREAM.get(script)
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            cases.append(pytest.param(script, way, id=f"{script}-{way}", marks=marks))
    return cases


def _cli(script: Path, cwd: Path) -> tuple[dict[str, Any], str, int]:
    tool = Path(sys.executable).with_name("slothlab")
    command = (
        [str(tool)]
        if tool.exists()
        else [sys.executable, "-c", "from slothlab.cli import main; main()"]
    )
    proc = subprocess.run(
        [*command, "run", str(script), "--json"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ},
    )
    try:
        document = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return document, proc.stderr, proc.returncode


def _library(script: Path, cwd: Path) -> tuple[dict[str, Any], str, list[str]]:
    from slothlab.workflow import run_file

    logs: list[str] = []
    result = run_file(script, workdir=cwd, output=lambda stream, text: logs.append(text))
    return json.loads(json.dumps(result.to_json())), "\n".join(logs), result.order()


@pytest.mark.parametrize(("script", "way"), _cases())
def test_script_gives_its_stated_result(
    script: str, way: str, shared_dir: Path, slothlab_home: Path, tmp_path: Path
) -> None:
    expected_file = EXPECTED / script.replace(".lua", ".json")
    if not expected_file.exists():
        pytest.fail(
            f"no expectations for {script}: read its header and write {expected_file.name} "
            "in tests/lua_compat/"
        )
    expected = json.loads(expected_file.read_text())
    path = shared_dir / "lua-compat" / script
    if way == "cli":
        got, logs, code = _cli(path, tmp_path)
        assert code == (0 if expected["success"] else 1), logs
    else:
        got, logs, order = _library(path, tmp_path)
        if "order" in expected:
            assert order == expected["order"]
    _check(got, expected, logs)
    _check_state(expected.get("state", {}), slothlab_home)


def _check(got: dict[str, Any], expected: dict[str, Any], logs: str) -> None:
    assert set(got) == {"workflow", "success", "tasks"}
    assert got["workflow"] == expected["workflow"]
    assert set(got["tasks"]) == set(expected["tasks"])
    for name, want in expected["tasks"].items():
        task = got["tasks"][name]
        assert set(task) == {"status", "message", "outputs", "attempts", "duration_s"}
        assert (name, task["status"], task["message"]) == (name, want["status"], want["message"])
        assert task["outputs"] == want["outputs"], name
    assert got["success"] is expected["success"], got
    for line in expected.get("logs", []):
        assert line in logs


def _check_state(expected: dict[str, Any], home: Path) -> None:
    if not expected:
        return
    from slothlab.state import Store

    store = Store(home / "state.db")
    try:
        for key, value in expected.items():
            assert store.get(key) == value, key
    finally:
        store.close()


def test_every_expectation_file_has_its_script(shared_dir: Path) -> None:
    scripts = {p.stem for p in (shared_dir / "lua-compat").glob("*.lua")}
    stale = sorted(p.name for p in EXPECTED.glob("*.json") if p.stem not in scripts)
    assert not stale, f"expectations without a script: {stale}"
