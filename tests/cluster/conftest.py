"""Real agent and master processes on loopback ports, killed by process group at teardown."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from slothlab.security import generate_token, load_or_create_token

LAUNCH = "import sys; from slothlab.cli import main; sys.exit(main(prog_name='slothlab'))"
_LISTENING = re.compile(r"listening on (http://[0-9.]+:\d+)")


@dataclass
class Proc:
    """A slothlab server started by a test."""

    popen: subprocess.Popen[bytes]
    url: str
    log: Path
    home: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: signal.Signals) -> None:
        os.killpg(self.popen.pid, sig)


def spawn(args: list[str], home: Path, token: str, log: Path, timeout_s: float = 30.0) -> Proc:
    """Start ``slothlab ARGS`` in its own process group; wait for its "listening on URL" line."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SLOTHLAB_HOME": str(home), "SLOTHLAB_TOKEN": token}
    env["PYTHONUNBUFFERED"] = "1"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(home),
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while True:
        text = log.read_text("utf-8", "replace")
        found = _LISTENING.search(text)
        if found:
            return Proc(popen, found.group(1), log, home)
        if popen.poll() is not None or time.monotonic() > deadline:
            kill_tree(popen.pid)
            popen.wait()
            pytest.fail(f"slothlab {' '.join(args)} did not start:\n{text[-2000:]}")
        time.sleep(0.05)  # polling the child's log with a deadline


def kill_tree(pid: int) -> None:
    """SIGKILL a process group and every descendant (shell tasks run in groups of their own)."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        procs = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGCONT)  # a stopped group must run to die
        os.killpg(pid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


@pytest.fixture
def token(slothlab_home: Path) -> str:
    return load_or_create_token()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Started servers are appended here and killed at teardown, even when the test failed."""
    started: list[Proc] = []
    yield started
    for proc in started:
        kill_tree(proc.pid)
        proc.popen.wait(timeout=10)


@pytest.fixture
def start_agent(procs: list[Proc], slothlab_home: Path, token: str):  # type: ignore[no-untyped-def]
    def start(name: str, *extra: str, master: str | None = None) -> Proc:
        args = ["agent", "start", "--name", name, "--port", "0", *extra]
        if master:
            args += ["--master", master]
        proc = spawn(args, slothlab_home / name, token, slothlab_home / f"{name}.log")
        procs.append(proc)
        return proc

    return start


@pytest.fixture(scope="module")
def shared_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str]]:
    """One agent (tags web,eu; region eu) shared by a module's tests, and its token."""
    home = tmp_path_factory.mktemp("agent-home")
    token = generate_token()
    args = ["agent", "start", "--name", "a1", "--port", "0", "--tags", "web,eu", "--region", "eu"]
    proc = spawn(args, home / "a1", token, home / "a1.log")
    yield proc, token
    kill_tree(proc.pid)
    proc.popen.wait(timeout=10)
