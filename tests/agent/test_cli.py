"""``slothlab agent start`` as a real process: the ready line, the API, registration, SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import AUTH, TOKEN, LiveServer, wait_until
from .test_registration import FakeMaster

LAUNCH = "import sys; from slothlab.cli import main; sys.exit(main(prog_name='slothlab'))"
READY = re.compile(
    r"^agent (\S+) listening on (http://127\.0\.0\.1:\d+)(?: \(metrics on (\S+)\))?$"
)


class Agent:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.url = ""
        self.metrics_url = ""

    def ready(self, timeout_s: float = 30.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        assert ready and time.monotonic() < deadline, "the agent printed nothing in time"
        line = self.proc.stdout.readline().strip()
        match = READY.match(line)
        assert match, f"unexpected first line: {line!r}"
        self.url, self.metrics_url = match.group(2), match.group(3) or ""


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Agent:
        env = {**os.environ, "SLOTHLAB_HOME": str(tmp_path / "home"), "SLOTHLAB_TOKEN": TOKEN}
        env.pop("SLOTHLAB_CONFIG", None)
        env["SLOTHLAB_AGENT_SHUTDOWN_GRACE_S"] = "20"
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "agent", "start", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        procs.append(proc)
        return Agent(proc)

    yield start
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_agent_process_serves_registers_and_stops_gracefully(
    start_agent: Callable[..., Agent], live: Callable[[Any], LiveServer], tmp_path: Path
) -> None:
    master = FakeMaster()
    master_url = live(master.app).url
    agent = start_agent(
        "--name",
        "cli-1",
        "--port",
        "0",
        "--master",
        master_url,
        "--tags",
        "web, eu",
        "--region",
        "eu-west",
        "--capacity",
        "2",
        "--metrics-port",
        "0",
        "--health-checks",
    )
    agent.ready()
    session = requests.Session()
    session.headers.update(AUTH)
    health = requests.get(agent.url + "/health", timeout=5).json()
    assert set(health["checks"]) == {"cpu", "memory", "disk"}
    info = session.get(agent.url + "/v1/info", timeout=5).json()
    assert (info["name"], info["url"], info["tags"], info["region"]) == (
        "cli-1",
        agent.url,
        ["web", "eu"],
        "eu-west",
    )
    wait_until(lambda: master.registrations, what="the registration")
    assert master.registrations[0]["url"] == agent.url

    task = session.post(
        agent.url + "/v1/tasks", json={"kind": "shell", "source": "echo hi"}, timeout=5
    ).json()
    final = session.get(
        f"{agent.url}/v1/tasks/{task['id']}", params={"wait": 20}, timeout=30
    ).json()
    assert final["stdout"] == "hi\n"
    scraped = requests.get(agent.metrics_url, timeout=5)  # no token on the metrics port
    assert (
        scraped.status_code == 200
        and 'slothlab_tasks_total{status="succeeded"} 1.0' in scraped.text
    )

    gate, out = tmp_path / "gate", tmp_path / "out"
    source = f"while [ ! -e {gate} ]; do sleep 0.01; done; echo finished > {out}"
    session.post(agent.url + "/v1/tasks", json={"kind": "shell", "source": source}, timeout=5)
    agent.proc.send_signal(signal.SIGTERM)
    wait_until(
        lambda: requests.get(agent.url + "/health", timeout=5).status_code == 503,
        what="503 while draining",
    )
    refused = session.post(
        agent.url + "/v1/tasks", json={"kind": "shell", "source": "true"}, timeout=5
    )
    assert refused.status_code == 503 and "shutting down" in refused.json()["error"]["message"]
    gate.touch()
    assert agent.proc.wait(20) == 0
    assert out.read_text() == "finished\n"  # the running task was allowed to finish
    assert "agent cli-1 stopped" in agent.proc.stderr.read()  # type: ignore[union-attr]


def test_bad_health_checks_file_is_a_one_line_error(
    start_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    bad = tmp_path / "checks.toml"
    bad.write_text("[[checks]]\nname = 'x'\n")
    agent = start_agent("--port", "0", "--health-checks", str(bad))
    assert agent.proc.wait(30) == 1
    err = agent.proc.stderr.read()  # type: ignore[union-attr]
    assert err.startswith("Error: ") and "Traceback" not in err


def test_bad_name_is_refused(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent("--port", "0", "--name", "no spaces please")
    assert agent.proc.wait(30) == 2
    assert "--name" in agent.proc.stderr.read()  # type: ignore[union-attr]


@pytest.mark.parametrize(("key", "value"), [("PORT", "-5"), ("CAPACITY", "-1")])
def test_bad_port_or_capacity_setting_is_a_one_line_error(
    start_agent: Callable[..., Agent], monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(f"SLOTHLAB_AGENT_{key}", value)
    agent = start_agent("--name", "bad-settings")
    assert agent.proc.wait(30) == 1
    err = agent.proc.stderr.read()  # type: ignore[union-attr]
    assert err.startswith("Error: agent.port=") and "Traceback" not in err
    assert err.count("\n") == 1


def test_tags_come_from_the_agent_tags_setting(
    start_agent: Callable[..., Agent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTHLAB_AGENT_TAGS", '["web", "eu"]')  # as `config set agent.tags`
    agent = start_agent("--name", "tagged", "--port", "0")
    agent.ready()
    info = requests.get(agent.url + "/v1/info", headers=AUTH, timeout=5).json()
    assert info["tags"] == ["web", "eu"]
