"""The ``sloth-runner`` alias: sloth-runner's words mapped onto slothlab's (and the real script)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import requests

from slothlab.cli import main
from slothlab.cli._sloth_runner import translate

SCRIPT = Path(sys.executable).with_name("sloth-runner")
WORKFLOW = """
workflow.define("hello"):tasks({
  task("one"):command(function() return true, "done", {n = 1} end):build(),
})
"""


# -- translation, on a group whose options are known ---------------------------------------------


def _group(*, values: bool = False, delegate: bool = False) -> click.Group:
    @click.group()
    def cli() -> None: ...

    params = [
        click.Argument(["file"]),
        click.Option(["-w", "--workflow"]),
        click.Option(["--json"], is_flag=True),
    ]
    if values:
        params.append(click.Option(["--values"]))
    if delegate:
        params.append(click.Option(["-d", "--delegate-to"]))
    cli.add_command(click.Command("run", params=params))
    agent = click.Group("agent")
    agent.add_command(
        click.Command(
            "start",
            params=[
                click.Option(["--host"]),
                click.Option(["--port"]),
                click.Option(["--master"]),
                click.Option(["--metrics-port"]),
                click.Option(["--health-checks"], is_flag=True),
            ],
        )
    )
    cli.add_command(agent)
    agents = click.Group("agents")
    agents.add_command(
        click.Command(
            "list", params=[click.Option(["--master"]), click.Option(["--json"], is_flag=True)]
        )
    )
    cli.add_command(agents)
    cli.add_command(
        click.Command(
            "exec",
            params=[
                click.Argument(["agent"]),
                click.Argument(["command"], nargs=-1),
                click.Option(["--master"]),
                click.Option(["--timeout"]),
            ],
        )
    )
    cli.add_command(
        click.Command("master", params=[click.Option(["--port"]), click.Option(["--host"])])
    )
    cli.add_command(click.Command("config"))
    return cli


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "-f", "ci.lua"], ["run", "ci.lua"]),
        (["run", "--file", "ci.lua", "--yes"], ["run", "ci.lua"]),
        (["run", "--file=ci.lua", "-g", "release"], ["run", "ci.lua", "--workflow", "release"]),
        (["run", "-f", "ci.lua", "--group=release"], ["run", "ci.lua", "--workflow", "release"]),
        (["run", "-f", "ci.lua", "-o", "json"], ["run", "ci.lua", "--json"]),
        (["run", "-f", "ci.lua", "-o", "modern", "--interactive"], ["run", "ci.lua"]),
        (["run", "-f", "ci.lua", "--return"], ["run", "ci.lua", "--json"]),
        (["run", "-f", "ci.lua", "-w", "build"], ["run", "ci.lua", "-w", "build"]),
        (["run", "ci.lua", "--workflow", "build"], ["run", "ci.lua", "--workflow", "build"]),
        (["run", "-f", "ci.lua", "--debug"], ["run", "ci.lua"]),
        (["version"], ["--version"]),
        (["--help"], ["--help"]),
        ([], []),
        (
            ["agent", "list", "--master", "m:50053"],
            ["agents", "list", "--master", "http://m:50053"],
        ),
        (["agent", "list", "--format", "json"], ["agents", "list", "--json"]),
        (["agent", "list", "--format", "table"], ["agents", "list"]),
        (["agent", "exec", "web-1", "df -h"], ["exec", "web-1", "--", "df -h"]),
        (["agent", "exec", "web-1", "docker", "ps"], ["exec", "web-1", "--", "docker", "ps"]),
        (
            ["agent", "exec", "web-1", "uptime", "--master", "https://m:8700"],
            ["exec", "web-1", "--master", "https://m:8700", "--", "uptime"],
        ),
        (
            ["agent", "start", "--metrics-port", "8080", "--health-checks"],
            ["agent", "start", "--metrics-port", "8080", "--health-checks"],
        ),
        (
            ["agent", "start", "--bind", "0.0.0.0", "--foreground", "--master", "m:50053"],
            ["agent", "start", "--host", "0.0.0.0", "--master", "http://m:50053"],
        ),
        (["master", "-p", "9000", "--debug"], ["master", "--port", "9000"]),
        (["server", "--port", "9000"], ["master", "--port", "9000"]),
        (["master", "--bind=0.0.0.0"], ["master", "--host", "0.0.0.0"]),
        # slothlab's own words pass unchanged
        (["config", "set", "features.x=true"], ["config", "set", "features.x=true"]),
        (["agents", "list", "--json"], ["agents", "list", "--json"]),
        (["exec", "a", "--", "ls", "-l"], ["exec", "a", "--", "ls", "-l"]),
        (["frobnicate"], ["frobnicate"]),  # click says it does not exist
    ],
)
def test_translation(argv: list[str], expected: list[str]) -> None:
    assert translate(argv, _group()) == expected


def test_options_slothlab_has_are_used_when_it_has_them() -> None:
    rich = _group(values=True, delegate=True)
    argv = ["run", "-f", "x.lua", "--values", "v.yaml", "--delegate-to", "a1"]
    assert translate(argv, rich) == ["run", "x.lua", "--values", "v.yaml", "--delegate-to", "a1"]
    assert translate(["run", "-f", "x.lua", "-v", "v.yaml"], rich)[-2:] == ["--values", "v.yaml"]


def test_a_stack_name_with_a_file_is_noted_and_dropped() -> None:
    notes: list[str] = []
    assert translate(["run", "prod", "-f", "x.lua", "--yes"], _group(), notes) == ["run", "x.lua"]
    assert notes == [
        "note: stack 'prod' ignored (slothlab has no stacks; state lives in one store)"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "prod-stack"], "slothlab has no stacks; give the file with -f FILE"),
        (["run", "-f", "x.lua", "--values", "v.yaml"], "takes no values file"),
        (["run", "-f", "x.lua", "--delegate-to", "a1"], "cannot delegate"),
        (["run", "-f", "x.lua", "-t", "a,b"], "runs whole workflows"),
        (["run", "-f", "x.lua", "-d"], "no dry run"),
        (["run", "-f", "x.lua", "-e", "Production"], "Go templates"),
        (["run", "-f", "x.lua", "--shards", "1,2"], "Go templates"),
        (["run", "-f"], "-f needs a value"),
        (["agent", "start", "--daemon"], "runs in the foreground"),
        (["master", "--daemon"], "systemd"),
        (["agent", "exec", "web-1"], "give the agent and the command"),
        (["agent", "install", "web-1"], "`agent install` has no slothlab counterpart"),
        (["stack", "list"], "`stack` has no slothlab counterpart: state lives in one store"),
        (["ui", "--port", "3000"], "master --dashboard-port"),
        (["repl"], "lua -e CODE"),
        (["scheduler", "list"], "not in slothlab yet"),
    ],
)
def test_what_slothlab_lacks_is_said_plainly(argv: list[str], message: str) -> None:
    with pytest.raises(click.UsageError) as info:
        translate(argv, _group())
    assert message in str(info.value)


def test_unknown_commands_name_what_slothlab_offers() -> None:
    with pytest.raises(click.UsageError) as info:
        translate(["stack", "list"], _group())
    assert "slothlab offers: agent, agents, config, exec, master, run" in str(info.value)


def test_a_missing_slothlab_command_is_named() -> None:
    bare = click.Group("cli", commands=[click.Command("config")])
    for argv, what in ((["agent", "start"], "agent start"), (["master"], "master")):
        with pytest.raises(click.UsageError, match=f"no `{what}` command"):
            translate(argv, bare)


def test_global_config_flag_points_slothlab_config_at_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SLOTHLAB_CONFIG", raising=False)
    target = str(tmp_path / "c.toml")
    assert translate(["--config", target, "config", "list"], _group()) == ["config", "list"]
    assert os.environ["SLOTHLAB_CONFIG"] == target
    assert translate([f"--config={target}x", "version"], _group()) == ["--version"]
    assert os.environ["SLOTHLAB_CONFIG"] == target + "x"


def test_the_real_group_has_what_the_product_brief_uses() -> None:
    assert translate(["agent", "start", "--metrics-port", "8080", "--health-checks"], main) == [
        "agent",
        "start",
        "--metrics-port",
        "8080",
        "--health-checks",
    ]
    assert translate(["master", "--dashboard-port", "3000"], main) == [
        "master",
        "--dashboard-port",
        "3000",
    ]
    assert translate(["agent", "list"], main) == ["agents", "list"]
    assert translate(["agent", "exec", "a", "uptime"], main) == ["exec", "a", "--", "uptime"]


# -- through the installed console script ---------------------------------------------------------


def _alias(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def test_script_help(slothlab_home: Path) -> None:
    result = _alias("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: sloth-runner")
    assert "sloth-runner words accepted here" in result.stdout
    for command in ("agent", "agents", "config", "exec", "master", "run", "up"):
        assert f"  {command} " in result.stdout


def test_script_config_set_and_get_feature(slothlab_home: Path) -> None:
    set_ = _alias("config", "set", "features.ai_optimization=true")
    assert set_.returncode == 0, set_.stderr
    got = _alias("config", "get", "features.ai_optimization")
    assert (got.returncode, got.stdout) == (0, "true\n")
    assert (slothlab_home / "config.toml").read_text() == "[features]\nai_optimization = true\n"
    states = json.loads(_alias("config", "features", "--json").stdout)
    assert states["ai_optimization"] == "enabled"


def test_script_run_with_file_flag(slothlab_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "hello.lua"
    script.write_text(WORKFLOW)
    result = _alias("run", "-f", str(script), "-o", "json", "--yes")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["success"] is True
    assert document["tasks"]["one"]["outputs"] == {"n": 1}


def test_script_run_stack_and_file(slothlab_home: Path, tmp_path: Path) -> None:
    (tmp_path / "deploy.sloth").write_text(WORKFLOW)
    result = _alias("run", "prod", "--file", "deploy.sloth", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stack 'prod' ignored" in result.stderr
    assert "workflow hello succeeded" in result.stdout


def test_script_refusals_are_one_line_without_traceback(slothlab_home: Path) -> None:
    result = _alias("stack", "list")
    assert result.returncode == 2
    assert result.stderr.startswith("sloth-runner: error: sloth-runner's `stack`")
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_script_version(slothlab_home: Path) -> None:
    result = _alias("version")
    assert result.returncode == 0 and "version" in result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[str]]]:
    """Started alias processes, killed (whole process group) at teardown even on failure."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _start(procs: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    procs.append(proc)
    return proc


def _wait_for_line(proc: subprocess.Popen[str], needle: str, deadline_s: float = 45.0) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stream = proc.stdout

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            assert proc.poll() is None, f"exited {proc.returncode}: {''.join(seen)}"
            continue
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no {needle!r} within {deadline_s} s: {''.join(seen)}")


def _get_until(
    url: str, deadline_s: float = 30.0, headers: dict[str, str] | None = None
) -> requests.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return requests.get(url, timeout=5, headers=headers)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # a poll interval, not a wait for state


def test_script_agent_start_with_metrics_port_and_health_checks(
    slothlab_home: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    metrics_port = _free_port()
    proc = _start(
        spawn,
        "agent",
        "start",
        "--name",
        "alias-agent",
        "--port",
        "0",
        "--metrics-port",
        str(metrics_port),
        "--health-checks",
    )
    _wait_for_line(proc, "listening on http://")
    health = _get_until(f"http://127.0.0.1:{metrics_port}/health")
    assert health.status_code in (200, 503)
    assert "checks" in health.text or "status" in health.text
    metrics = _get_until(f"http://127.0.0.1:{metrics_port}/metrics")
    assert metrics.status_code == 200 and "# TYPE" in metrics.text


def test_script_master_with_dashboard_port(
    slothlab_home: Path, tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    dashboard = _free_port()
    proc = _start(
        spawn,
        "master",
        "-p",
        "0",
        "--dashboard-port",
        str(dashboard),
        "--data-dir",
        str(tmp_path),
        "--debug",
    )
    _wait_for_line(proc, "master listening on http://")
    from slothlab.security import read_token

    assert _get_until(f"http://127.0.0.1:{dashboard}/").status_code == 401  # token needed
    auth = {"Authorization": f"Bearer {read_token()}"}
    page = _get_until(f"http://127.0.0.1:{dashboard}/", headers=auth)
    assert page.status_code == 200
