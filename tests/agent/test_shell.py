"""The streaming shell runner: environment, working directory, timeout, cancel, rlimits."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import psutil
import pytest

from slothlab.agent.shell import ShellLimits, ShellRun, command_line

from .conftest import wait_until


class Sink:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, stream: str, chunk: bytes) -> None:
        with self.lock:
            self.chunks.append((stream, chunk))

    def text(self, stream: str = "stdout") -> str:
        with self.lock:
            return b"".join(c for s, c in self.chunks if s == stream).decode()


def test_minimal_environment_and_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SECRET", "do-not-leak")
    sink = Sink()
    run = ShellRun("env; pwd", sink, workdir=str(tmp_path), env={"STAGE": "ci"})
    assert run.wait().exit_code == 0
    out = sink.text()
    assert "STAGE=ci" in out and "AGENT_SECRET" not in out
    assert out.strip().splitlines()[-1] == str(tmp_path)


def test_args_are_appended_quoted() -> None:
    sink = Sink()
    run = ShellRun(command_line("printf '%s|'", ["a b", "$HOME", 3, [1, 2]]), sink)
    run.wait()
    assert sink.text() == "a b|$HOME|3|[1, 2]|"


def test_missing_workdir_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        ShellRun("true", Sink(), workdir=str(tmp_path / "missing"))


def test_nul_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        ShellRun("echo \0", Sink())


def test_output_arrives_while_the_command_runs(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    sink = Sink()
    run = ShellRun(f"echo first; while [ ! -e {gate} ]; do sleep 0.01; done; echo second", sink)
    waiter = threading.Thread(target=run.wait)
    waiter.start()
    wait_until(lambda: sink.text() == "first\n", what="the first line")
    gate.touch()
    waiter.join(10)
    assert sink.text() == "first\nsecond\n"


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    sink = Sink()
    run = ShellRun(f"sleep 30 & echo $! > {pidfile}; wait", sink, timeout_s=0.5)
    outcome = run.wait()
    assert outcome.timed_out and outcome.exit_code == -signal.SIGKILL
    child = int(pidfile.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_leftover_background_processes_end_with_the_task(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    run = ShellRun(f"sleep 30 > /dev/null 2>&1 & echo $! > {pidfile}", Sink())
    assert run.wait().exit_code == 0
    child = int(pidfile.read_text())
    wait_until(
        lambda: (
            not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        ),
        what="the background child to die",
    )


def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    sink = Sink()
    run = ShellRun(
        f"trap '' TERM; touch {ready}; while true; do sleep 0.05; done", sink, kill_grace_s=0.3
    )
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(run.wait()))
    waiter.start()
    wait_until(ready.exists, what="the trap to be set")
    run.terminate()
    waiter.join(10)
    outcome = result[0]
    assert outcome.cancelled and outcome.exit_code == -signal.SIGKILL  # type: ignore[attr-defined]


def test_terminate_ends_a_polite_command_with_sigterm(tmp_path: Path) -> None:
    sink = Sink()
    run = ShellRun("echo up; exec sleep 30", sink)
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(run.wait()))
    waiter.start()
    wait_until(lambda: sink.text() == "up\n", what="the command to start")
    run.terminate()
    waiter.join(10)
    assert result[0].exit_code == -signal.SIGTERM  # type: ignore[attr-defined]


def test_rlimits_apply_to_the_command() -> None:
    sink = Sink()
    run = ShellRun("ulimit -v; ulimit -t", sink, limits=ShellLimits(max_memory_mb=512, max_cpu_s=7))
    assert run.wait().exit_code == 0
    assert sink.text().split() == [str(512 * 1024), "7"]


def test_memory_limit_stops_a_hungry_command() -> None:
    sink = Sink()
    hungry = "python3 -c 'x = bytearray(400 * 1024 * 1024)'"
    run = ShellRun(hungry, sink, limits=ShellLimits(max_memory_mb=200))
    assert run.wait().exit_code != 0
    assert "MemoryError" in sink.text("stderr")


def test_no_process_is_left_behind() -> None:
    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    ShellRun("true", Sink()).wait()
    after = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    assert after <= before
