"""Custom metrics set by Lua tasks on a real ``slothlab agent start`` process reach its
``/metrics`` and its heartbeats, and from a heartbeat the master's history."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from slothlab.agent._metrics import custom_heartbeat_metrics, with_custom
from slothlab.master.scraper import MetricsIntake
from slothlab.metrics import CustomMetrics, MetricsHistory
from slothlab.protocol import Heartbeat

TOKEN = "metrics-test-token"
LAUNCH = "import sys; from slothlab.cli import main; sys.exit(main(prog_name='slothlab'))"
READY = re.compile(r"^agent \S+ listening on (\S+) \(metrics on (\S+)\)$")

LUA_TASK = """
metrics.counter("lua_jobs_total", 2, {kind = "a"})
metrics.gauge("lua_queue_depth", 7)
metrics.timer("lua_step", function() end)
return true
"""


def poll(predicate: Callable[[], Any], timeout_s: float = 20.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


class _FakeMaster(BaseHTTPRequestHandler):
    beats: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/heartbeat"):
            self.beats.append(body)
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def master() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    beats: list[dict[str, Any]] = []
    handler = type("Handler", (_FakeMaster,), {"beats": beats})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", beats
    server.shutdown()
    server.server_close()


@pytest.fixture
def agent(tmp_path: Path, master: tuple[str, list[Any]]) -> Iterator[tuple[str, str]]:
    env = {**os.environ, "SLOTHLAB_HOME": str(tmp_path / "home"), "SLOTHLAB_TOKEN": TOKEN}
    env.pop("SLOTHLAB_CONFIG", None)
    env["SLOTHLAB_AGENT_HEARTBEAT_INTERVAL_S"] = "0.2"
    args = ["--name", "m-1", "--port", "0", "--metrics-port", "0", "--master", master[0]]
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "agent", "start", *args, "--capacity", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        match = READY.match(proc.stdout.readline().strip()) if ready else None
        assert match, "the agent did not start"
        yield match.group(1), match.group(2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_lua_task_metrics_reach_metrics_heartbeats_and_history(
    agent: tuple[str, str], master: tuple[str, list[dict[str, Any]]]
) -> None:
    url, metrics_url = agent
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(2):
        task = requests.post(
            url + "/v1/tasks", json={"kind": "lua", "source": LUA_TASK}, headers=auth, timeout=5
        ).json()
        done = requests.get(
            f"{url}/v1/tasks/{task['id']}", params={"wait": 20}, headers=auth, timeout=30
        ).json()
        assert done["state"] == "succeeded", done
    scraped = requests.get(metrics_url, timeout=5).text
    assert 'lua_jobs_total{kind="a"} 4.0' in scraped
    assert "lua_queue_depth 7.0" in scraped
    assert "lua_step_seconds_count 2.0" in scraped

    beats = master[1]
    # A heartbeat sent between the two tasks carries 2.0; wait for one sent after both.
    beat = poll(
        lambda: next(
            (b for b in reversed(beats) if b["metrics"].get("lua_jobs_total") == 4.0), None
        ),
        what="a heartbeat with the custom metrics of both tasks",
    )
    assert beat["metrics"]["lua_jobs_total"] == 4.0
    assert beat["metrics"]["lua_queue_depth"] == 7.0
    assert beat["metrics"]["lua_step_seconds_count"] == 2.0
    assert "cpu_percent" in beat["metrics"]  # the host's numbers are still there

    history = MetricsHistory(":memory:", background=False)
    intake = MetricsIntake(history)  # what the master does with every heartbeat
    intake.receive("m-1", Heartbeat(**beat), 1_714_521_600.0)
    intake.flush()
    assert history.latest("lua_jobs_total")[["host", "value"]].values.tolist() == [["m-1", 4.0]]
    history.close()


def test_heartbeat_custom_metrics_are_bounded_and_never_replace_host_numbers() -> None:
    custom = CustomMetrics()
    for i in range(300):
        custom.gauge(f"g_{i:03d}", i)
    custom.gauge("cpu_percent", 99.0)
    flat = custom_heartbeat_metrics(custom, limit=5)
    assert list(flat) == ["cpu_percent", "g_000", "g_001", "g_002", "g_003"]
    host = {f"host_{i}": 1.0 for i in range(10)} | {"cpu_percent": 12.5}
    beat = with_custom(lambda: Heartbeat(running=1, queued=0, metrics=host), custom)()
    assert len(beat.metrics) == 11 + 150 and beat.metrics["cpu_percent"] == 12.5
    full = {f"host_{i}": 1.0 for i in range(200)}
    beat = with_custom(lambda: Heartbeat(running=0, queued=0, metrics=full), custom)()
    assert beat.metrics == full  # no room: the heartbeat stays valid (at most 200 numbers)
    Heartbeat.model_validate(beat.model_dump())
