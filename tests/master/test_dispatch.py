"""Dispatch through the master to real agents, failover, and tasks that may have started."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import requests
from fastapi.testclient import TestClient

from slothlab.master import Master, create_app

from .conftest import AUTH, Clock, agent_info, closed_port, wait_until


class StallServer:
    """Accepts HTTP requests, records their bodies, and never answers (or hangs up)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.bodies: list[dict[str, object]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )  # fmt: skip
        while len(body) < length:
            body += conn.recv(65536)
        self.bodies.append(json.loads(body))
        if self.mode == "drop":
            conn.close()
        else:
            self._held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def stall(request: pytest.FixtureRequest) -> Iterator[StallServer]:
    server = StallServer(getattr(request, "param", "stall"))
    yield server
    server.close()


@pytest.fixture
def agent_url(real_agent_url: str) -> str:
    return real_agent_url


@pytest.fixture
def mclient(make_master: Callable[..., Master]) -> Iterator[TestClient]:
    master = make_master(read_timeout_s=1.0)
    master.dispatcher.sleep = lambda s: None
    with TestClient(create_app(master), headers=AUTH) as client:
        client.master = master  # type: ignore[attr-defined]
        yield client


def register(client: TestClient, name: str, url: str, cpu: float, **fields: object) -> None:
    assert (
        client.post("/v1/agents/register", json=agent_info(name, url, **fields)).status_code == 201
    )
    metrics = {"cpu_percent": cpu, "memory_percent": cpu}
    client.post(
        f"/v1/agents/{name}/heartbeat", json={"running": 0, "queued": 0, "metrics": metrics}
    )


def agent_tasks(url: str) -> list[dict[str, object]]:
    return requests.get(url + "/v1/tasks", headers=AUTH, timeout=5).json()["tasks"]  # type: ignore[no-any-return]


def test_tasks_through_the_master_on_a_real_agent(mclient: TestClient, agent_url: str) -> None:
    register(mclient, "real-1", agent_url, cpu=10)
    sent = mclient.post("/v1/tasks", json={"kind": "shell", "source": "echo hello"})
    assert sent.status_code == 202
    task = sent.json()
    assert (
        task["agent"] == "real-1"
        and task["agent_task_id"]
        and task["idempotency_key"] == task["id"]
    )
    done = mclient.get(f"/v1/tasks/{task['id']}", params={"wait": 20}).json()
    assert (done["state"], done["stdout"], done["id"]) == ("succeeded", "hello\n", task["id"])
    logs = mclient.get(f"/v1/tasks/{task['id']}/logs")
    assert "hello" in logs.text and logs.headers["content-type"].startswith("text/event-stream")
    direct = requests.get(f"{agent_url}/v1/tasks/{task['agent_task_id']}", headers=AUTH, timeout=5)
    assert direct.json()["stdout"] == "hello\n"

    lua = mclient.post("/v1/tasks", json={"kind": "lua", "source": "return 6 * 7"}).json()
    assert mclient.get(f"/v1/tasks/{lua['id']}", params={"wait": 20}).json()["result"] == [42]

    slow = mclient.post("/v1/tasks", json={"kind": "shell", "source": "sleep 30"}).json()
    cancelled = mclient.delete(f"/v1/tasks/{slow['id']}").json()
    final = wait_until(
        lambda: (s := mclient.get(f"/v1/tasks/{slow['id']}").json())["state"] == "cancelled" and s,
        what="the cancel",
    )
    assert cancelled["id"] == slow["id"] and final["state"] == "cancelled"


def test_batch_and_master_idempotency(mclient: TestClient, agent_url: str) -> None:
    register(mclient, "real-1", agent_url, cpu=10)
    batch = [{"kind": "shell", "source": f"echo {i}"} for i in range(4)]
    infos = mclient.post("/v1/tasks:batch", json={"tasks": batch}).json()["tasks"]
    assert [i["agent"] for i in infos] == ["real-1"] * 4
    assert len({i["agent_task_id"] for i in infos}) == 4
    keyed = {"kind": "shell", "source": "echo once", "idempotency_key": "deploy-42"}
    first = mclient.post("/v1/tasks", json=keyed).json()
    again = mclient.post("/v1/tasks", json=keyed).json()
    assert first["id"] == again["id"]
    assert sum(1 for t in agent_tasks(agent_url) if t["idempotency_key"] == "deploy-42") == 1


def test_submit_with_wait_is_one_request_through_the_master(
    mclient: TestClient, agent_url: str
) -> None:
    register(mclient, "real-1", agent_url, cpu=10)
    key = "master-wait-1"
    body = {"kind": "shell", "source": "echo waited", "idempotency_key": key}
    sent = mclient.post("/v1/tasks", params={"wait": 20}, json=body)
    assert sent.status_code == 200, sent.text
    task = sent.json()
    assert (task["state"], task["stdout"], task["agent"]) == ("succeeded", "waited\n", "real-1")
    stored = mclient.get(f"/v1/tasks/{task['id']}").json()  # the master kept the final state
    assert stored["state"] == "succeeded" and stored["agent_task_id"] == task["agent_task_id"]
    on_agent = [t for t in agent_tasks(agent_url) if t["idempotency_key"] == key]
    assert len(on_agent) == 1 and on_agent[0]["state"] == "succeeded"
    lua = mclient.post("/v1/tasks", params={"wait": 20}, json={"kind": "lua", "source": "return 7"})
    assert lua.status_code == 200 and lua.json()["result"] == [7]
    quick = mclient.post(
        "/v1/tasks", params={"wait": 0.1}, json={"kind": "shell", "source": "sleep 30"}
    )
    assert quick.status_code == 202 and quick.json()["state"] in ("queued", "running")
    assert mclient.delete(f"/v1/tasks/{quick.json()['id']}").status_code == 200
    assert mclient.post("/v1/tasks", params={"wait": 61}, json=body).status_code == 422


def test_batch_with_wait_goes_to_every_agent_at_once(mclient: TestClient, agent_url: str) -> None:
    register(mclient, "real-1", agent_url, cpu=10)
    register(mclient, "real-2", agent_url, cpu=10)  # the same process under a second name
    batch = [
        {"kind": "shell", "source": f"echo {i}", "agent": f"real-{1 + i % 2}"} for i in range(6)
    ]
    response = mclient.post("/v1/tasks:batch", params={"wait": 20}, json={"tasks": batch})
    assert response.status_code == 200, response.text
    infos = response.json()["tasks"]
    assert mclient.master.dispatcher._fan_out is not None  # type: ignore[attr-defined]  # 2 groups
    assert [(i["state"], i["stdout"]) for i in infos] == [("succeeded", f"{n}\n") for n in range(6)]
    assert all(mclient.get(f"/v1/tasks/{i['id']}").json()["state"] == "succeeded" for i in infos)


def test_connect_refused_fails_over_to_the_next_agent(mclient: TestClient, agent_url: str) -> None:
    register(mclient, "gone", f"http://127.0.0.1:{closed_port()}", cpu=0)  # the emptiest
    register(mclient, "real-1", agent_url, cpu=60)
    task = mclient.post(
        "/v1/tasks", json={"kind": "shell", "source": "echo moved", "strategy": "resource_aware"}
    ).json()
    assert task["agent"] == "real-1" and task["attempts"] == 2
    assert mclient.get("/v1/agents/gone").json()["status"] == "unknown"
    second = mclient.post(
        "/v1/tasks", json={"kind": "shell", "source": "true", "strategy": "resource_aware"}
    ).json()
    assert second["attempts"] == 1  # the unknown agent is skipped until it heartbeats


def test_a_named_agent_that_refuses_is_not_replaced(mclient: TestClient, agent_url: str) -> None:
    register(mclient, "gone", f"http://127.0.0.1:{closed_port()}", cpu=0)
    register(mclient, "real-1", agent_url, cpu=60)
    answer = mclient.post("/v1/tasks", json={"kind": "shell", "source": "true", "agent": "gone"})
    assert answer.status_code == 202 and answer.json()["state"] == "rejected"
    key = answer.json()["idempotency_key"]
    assert "connection refused" in answer.json()["error"]
    assert not [t for t in agent_tasks(agent_url) if t["idempotency_key"] == key]


@pytest.mark.parametrize("stall", ["stall", "drop"], indirect=True)
def test_a_task_that_may_have_started_is_never_sent_elsewhere(
    mclient: TestClient, agent_url: str, stall: StallServer, clock: Clock
) -> None:
    register(mclient, "stuck", stall.url, cpu=0)
    register(mclient, "real-1", agent_url, cpu=60)
    task = mclient.post(
        "/v1/tasks", json={"kind": "shell", "source": "echo x", "strategy": "resource_aware"}
    ).json()
    assert task["agent"] == "stuck" and task["state"] == "queued" and "in doubt" in task["error"]
    keys = {b["idempotency_key"] for b in stall.bodies}
    assert keys == {task["id"]} and len(stall.bodies) == 4  # the first try and 3 re-queries
    on_other = [t for t in agent_tasks(agent_url) if t["idempotency_key"] == task["id"]]
    assert on_other == []  # no second agent got it
    again = mclient.get(f"/v1/tasks/{task['id']}").json()  # a status request asks again
    assert again["state"] == "queued" and len(stall.bodies) == 5
    assert {b["idempotency_key"] for b in stall.bodies} == {task["id"]}
    clock.advance(61)  # the agent is now dead: the task is lost, not re-run
    lost = mclient.get(f"/v1/tasks/{task['id']}").json()
    assert lost["state"] == "lost" and "dead" in lost["error"] and len(stall.bodies) == 5


def test_a_task_whose_agent_died_is_lost(mclient: TestClient, agent_url: str, clock: Clock) -> None:
    register(mclient, "real-1", agent_url, cpu=10)
    task = mclient.post("/v1/tasks", json={"kind": "shell", "source": "sleep 5"}).json()
    clock.advance(61)
    lost = mclient.get(f"/v1/tasks/{task['id']}").json()
    assert lost["state"] == "lost" and lost["agent"] == "real-1"
