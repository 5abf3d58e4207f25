"""Log streaming over a real socket: live lines, the end event, replay, resume."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from slothlab.agent import Executor, create_app

from .conftest import AUTH, TOKEN, LiveServer, wait_until


def events(response: requests.Response) -> Iterator[tuple[str | None, str, str]]:
    """``(id, event, data)`` of each SSE event (data lines joined with newlines)."""
    ident, kind, data = None, "message", []
    for raw in response.iter_lines(decode_unicode=True):
        if raw == "":
            if data:
                yield ident, kind, "\n".join(data)
            ident, kind, data = None, "message", []
        elif raw.startswith(":"):
            continue
        else:
            field, _, value = raw.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                ident = value
            elif field == "event":
                kind = value
            elif field == "data":
                data.append(value)


def start(live: Callable[[Any], LiveServer], executor: Executor) -> tuple[requests.Session, str]:
    server = live(create_app(executor, token=TOKEN, keepalive_s=0.2))
    session = requests.Session()
    session.headers.update(AUTH)
    return session, server.url


def submit(session: requests.Session, url: str, source: str) -> str:
    response = session.post(f"{url}/v1/tasks", json={"kind": "shell", "source": source}, timeout=5)
    assert response.status_code == 202
    return str(response.json()["id"])


def test_lines_stream_live_then_end(
    live: Callable[[Any], LiveServer], executor: Executor, tmp_path: Path
) -> None:
    session, url = start(live, executor)
    gate = tmp_path / "gate"
    task = submit(
        session,
        url,
        f"echo one; echo two >&2; while [ ! -e {gate} ]; do sleep 0.01; done; echo three",
    )
    with session.get(f"{url}/v1/tasks/{task}/logs", stream=True, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        first = [next(stream), next(stream)]
        # both lines arrived while the task still waits for the gate
        assert executor.get(task).info().state == "running"
        assert sorted((kind, data) for _, kind, data in first) == [
            ("stderr", "two"),
            ("stdout", "one"),
        ]
        gate.touch()
        rest = list(stream)
    assert [(kind, data) for _, kind, data in rest[:-1]] == [("stdout", "three")]
    last_id, kind, data = rest[-1]
    assert kind == "end" and last_id is None
    final = json.loads(data)
    assert final["state"] == "succeeded" and final["stdout"] == "one\nthree\n"


def test_finished_task_replays_and_ends(
    live: Callable[[Any], LiveServer], executor: Executor
) -> None:
    session, url = start(live, executor)
    task = submit(session, url, "printf 'a\\nb\\rc\\n'; exit 2")
    assert executor.get(task).wait(10)
    with session.get(f"{url}/v1/tasks/{task}/logs", stream=True, timeout=10) as response:
        got = list(events(response))
    assert [(i, k, d) for i, k, d in got[:-1]] == [("0", "stdout", "a"), ("1", "stdout", "b\nc")]
    assert got[-1][1] == "end" and json.loads(got[-1][2])["exit_code"] == 2


def test_resume_after_last_event_id(live: Callable[[Any], LiveServer], executor: Executor) -> None:
    session, url = start(live, executor)
    task = submit(session, url, "echo 1; echo 2; echo 3")
    assert executor.get(task).wait(10)
    headers = {"Last-Event-ID": "0"}
    with session.get(
        f"{url}/v1/tasks/{task}/logs", headers=headers, stream=True, timeout=10
    ) as response:
        got = [d for _, k, d in events(response) if k == "stdout"]
    assert got == ["2", "3"]
    with session.get(
        f"{url}/v1/tasks/{task}/logs", params={"since": 2}, stream=True, timeout=10
    ) as response:
        assert [d for _, k, d in events(response) if k == "stdout"] == ["3"]


def test_idle_stream_sends_keepalives(
    live: Callable[[Any], LiveServer], executor: Executor, tmp_path: Path
) -> None:
    session, url = start(live, executor)
    gate = tmp_path / "gate"
    task = submit(session, url, f"while [ ! -e {gate} ]; do sleep 0.01; done")
    with session.get(f"{url}/v1/tasks/{task}/logs", stream=True, timeout=10) as response:
        lines = response.iter_lines(decode_unicode=True)
        assert wait_until(lambda: next(lines) == ": keep-alive", what="a keep-alive comment")
        gate.touch()
        assert any(line == "event: end" for line in lines)


def test_logs_need_the_token(live: Callable[[Any], LiveServer], executor: Executor) -> None:
    _, url = start(live, executor)
    response = requests.get(f"{url}/v1/tasks/x/logs", timeout=5)
    assert response.status_code == 401
