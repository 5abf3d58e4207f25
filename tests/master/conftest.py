"""Fixtures of the master tests: in-process apps with a fake clock, live servers, real agents."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from slothlab.master import Master, MasterConfig, create_app

TOKEN = "master-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate: Callable[[], Any], timeout_s: float = 15.0, what: str = "it") -> Any:
    """Poll ``predicate`` until truthy; fail after ``timeout_s`` (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def agent_info(name: str, url: str = "http://127.0.0.1:1", **fields: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "version": "test", **fields}


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_master(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., Master]]:
    made: list[Master] = []

    def make(**fields: Any) -> Master:
        fields.setdefault("data_dir", tmp_path / "master")
        fields.setdefault("token", TOKEN)
        fields.setdefault("clock", clock)
        fields.setdefault("history", False)
        fields.setdefault("connect_timeout_s", 1.0)
        fields.setdefault("read_timeout_s", 2.0)
        master = Master(MasterConfig(**fields))
        made.append(master)
        return master

    yield make
    for master in made:
        master.close()


@pytest.fixture
def client(make_master: Callable[..., Master]) -> Iterator[TestClient]:
    with TestClient(create_app(make_master()), headers=AUTH) as test_client:
        yield test_client


class LiveServer:
    """An ASGI app on uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([self.sock],), daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, what="the live server")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def live_master(make_master: Callable[..., Master]) -> Iterator[tuple[LiveServer, Master]]:
    master = make_master(clock=time.time)
    with LiveServer(create_app(master)) as server:
        yield server, master


class Proc:
    """A child process in its own process group, killed (group) at teardown."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )

    def first_line(self, timeout_s: float = 30.0) -> str:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.popen.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout_s)
        if not result or not result[0]:
            self.kill()
            err = self.popen.stderr.read() if self.popen.stderr else ""  # type: ignore[union-attr]
            pytest.fail(f"{self.popen.args} printed nothing: {err[-2000:]}")
        return result[0].strip()

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()


def _spawner(home: Path) -> tuple[Callable[..., Proc], list[Proc]]:
    procs: list[Proc] = []

    def start(*args: str) -> Proc:
        env = dict(os.environ, SLOTHLAB_HOME=str(home), SLOTHLAB_TOKEN=TOKEN)
        env.pop("SLOTHLAB_CONFIG", None)
        proc = Proc([str(Path(sys.executable).with_name("slothlab")), *args], env)
        procs.append(proc)
        return proc

    return start, procs


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    start, procs = _spawner(tmp_path / "home")
    yield start
    for proc in procs:
        proc.kill()


def start_agent(spawn: Callable[..., Proc], name: str, *extra: str) -> str:
    """Start a real `slothlab agent start`; its URL once /health answers."""
    proc = spawn("agent", "start", "--name", name, "--port", "0", "--capacity", "2", *extra)
    url = proc.first_line().split(" listening on ")[1].split()[0]
    wait_until(lambda: _healthy(url), what=f"agent {name}")
    return url


@pytest.fixture(scope="module")
def real_agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real agent (no master) shared by a test module: tests tell their tasks by key."""
    start, procs = _spawner(tmp_path_factory.mktemp("agent-home"))
    yield start_agent(start, "real-1")
    for proc in procs:
        proc.kill()


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=1).status_code in (200, 503)
    except requests.RequestException:
        return False
