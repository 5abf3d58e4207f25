"""Fixtures of the agent tests: executors torn down after each test, apps, live servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from slothlab.agent import Executor, create_app
from slothlab.agent.server import bind
from slothlab.protocol import TaskRequest

TOKEN = "agent-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "it") -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)  # polling with a deadline, not waiting for a state


def gone(pid: int) -> bool:
    """True when the process ended (a zombie counts: it ended, it is only not reaped yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def shell(source: str, **fields: Any) -> TaskRequest:
    return TaskRequest(kind="shell", source=source, **fields)


def lua(source: str, **fields: Any) -> TaskRequest:
    return TaskRequest(kind="lua", source=source, **fields)


class FakeSource:
    """A snapshot source whose CPU and memory readings the test sets."""

    def __init__(self, cpu: float = 10.0, memory: float = 10.0) -> None:
        self.cpu, self.memory = cpu, memory

    def snapshot(self) -> Mapping[str, Any]:
        return {"cpu": {"percent": self.cpu}, "memory": {"percent": self.memory}}


@pytest.fixture
def make_executor() -> Iterator[Callable[..., Executor]]:
    made: list[Executor] = []

    def make(**kwargs: Any) -> Executor:
        kwargs.setdefault("kill_grace_s", 0.5)
        executor = Executor("test-agent", **kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown(grace_s=0.0)


@pytest.fixture
def executor(make_executor: Callable[..., Executor]) -> Executor:
    return make_executor(capacity=2)


@pytest.fixture
def client(executor: Executor) -> Iterator[TestClient]:
    app = create_app(executor, token=TOKEN)
    with TestClient(app, headers=AUTH) as test_client:
        yield test_client


class LiveServer:
    """An ASGI app served by uvicorn in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, lifespan="off", log_level="warning", http="httptools")
        config.timeout_graceful_shutdown = 1
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([self.sock],), daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, what="the server to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def live() -> Iterator[Callable[[Any], LiveServer]]:
    servers: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
