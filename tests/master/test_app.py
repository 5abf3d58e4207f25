"""Every master route in-process: auth, bad input, agents, select, query, state, page."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from fastapi.testclient import TestClient

from slothlab.master import Master, create_app

from .conftest import AUTH, Clock, agent_info


def test_health_needs_no_token_and_everything_else_does(client: TestClient) -> None:
    bare = TestClient(client.app)
    assert bare.get("/health").status_code == 200
    for method, path in [
        ("GET", "/v1/agents"),
        ("GET", "/v1/info"),
        ("POST", "/v1/select"),
        ("POST", "/v1/tasks"),
        ("GET", "/v1/tasks"),
        ("POST", "/v1/query"),
        ("GET", "/v1/state/x"),
        ("POST", "/v1/state:op"),
        ("GET", "/"),
    ]:
        answer = bare.request(method, path, json={}, headers={"Authorization": "Bearer wrong"})
        assert answer.status_code == 401, (method, path)
        assert answer.json()["error"]["code"] == "unauthorized"


def test_bad_bodies_get_413_400_422(client: TestClient) -> None:
    big = client.post(
        "/v1/agents/register",
        content=b"x" * (3 << 20),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413
    broken = client.post(
        "/v1/agents/register", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "bad_json"
    deep = client.post(
        "/v1/select", content=b"[" * 100 + b"]" * 100, headers={"content-type": "application/json"}
    )
    assert deep.status_code == 400
    wrong = client.post(
        "/v1/agents/register", json={"name": "bad name!", "url": "u", "version": "1"}
    )
    assert wrong.status_code == 422 and "name" in wrong.json()["error"]["message"]
    extra = client.post("/v1/tasks", json={"kind": "shell", "source": "true", "nope": 1})
    assert extra.status_code == 422


def test_agent_lifecycle_through_routes(client: TestClient, clock: Clock) -> None:
    answer = client.post("/v1/agents/register", json=agent_info("web-1", tags=["web"]))
    assert answer.status_code == 201 and answer.json()["status"] == "active"
    beat = client.post("/v1/agents/web-1/heartbeat", json={"running": 1, "queued": 0})
    assert beat.status_code == 200
    assert (
        client.post("/v1/agents/ghost/heartbeat", json={"running": 0, "queued": 0}).status_code
        == 404
    )
    clock.advance(31)
    assert client.get("/v1/agents/web-1").json()["status"] == "unknown"
    clock.advance(30)
    assert client.get("/v1/agents").json()["agents"][0]["status"] == "dead"
    assert client.get("/v1/agents/ghost").status_code == 404
    assert client.delete("/v1/agents/web-1").json() == {"deleted": True}
    assert client.delete("/v1/agents/web-1").status_code == 404
    assert client.get("/v1/info").json()["role"] == "master"


def test_select_route(client: TestClient) -> None:
    client.post("/v1/agents/register", json=agent_info("a", region="eu"))
    client.post("/v1/agents/register", json=agent_info("b", region="us"))
    chosen = client.post("/v1/select", json={"strategy": "random", "region": "us"}).json()
    assert chosen["agent"]["name"] == "b"
    none = client.post("/v1/select", json={"region": "mars"}).json()
    assert none["agent"] is None and "mars" in none["reason"]
    bad = client.post("/v1/select", json={"strategy": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_strategy"


def test_unknown_task_is_404_and_no_agent_is_503(client: TestClient) -> None:
    assert client.get("/v1/tasks/nope").status_code == 404
    answer = client.post("/v1/tasks", json={"kind": "shell", "source": "true"})
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "no_agent"
    listed = client.get("/v1/tasks", params={"state": "rejected"}).json()["tasks"]
    assert len(listed) == 1 and "no agent is registered" in listed[0]["error"]


def test_registry_survives_an_app_restart(make_master: Callable[..., Master]) -> None:
    with TestClient(create_app(make_master()), headers=AUTH) as first:
        first.post("/v1/agents/register", json=agent_info("keep", tags=["x"]))
        first.post("/v1/agents/keep/heartbeat", json={"running": 2, "queued": 1})
    with TestClient(create_app(make_master()), headers=AUTH) as second:
        kept = second.get("/v1/agents/keep").json()
        assert (kept["tags"], kept["running"], kept["queued"]) == (["x"], 2, 1)


def test_heartbeat_metrics_reach_the_history_and_query(make_master: Callable[..., Master]) -> None:
    master = make_master(history=True)
    with TestClient(create_app(master), headers=AUTH) as client:
        client.post("/v1/agents/register", json=agent_info("h1"))
        metrics = {"cpu_percent": 12.5, "bad-name": 1.0}
        client.post("/v1/agents/h1/heartbeat", json={"running": 1, "queued": 0, "metrics": metrics})
        master.flush()
        sql = "SELECT DISTINCT host, metric, 0 AS value FROM samples ORDER BY metric"
        rows = client.post("/v1/query", json={"sql": sql}).json()
        assert rows["columns"] == ["host", "metric", "value"]
        assert [r["metric"] for r in rows["rows"]] == [
            "slothlab_agent_tasks_queued",
            "slothlab_agent_tasks_running",
            "slothlab_cpu_usage_ratio",
        ]
        arrow = client.post(
            "/v1/query",
            json={
                "sql": "SELECT value FROM samples WHERE metric = ?",
                "params": ["slothlab_cpu_usage_ratio"],
            },
            headers={"Accept": "application/vnd.apache.arrow.stream"},
        )
        table = pa.ipc.open_stream(arrow.content).read_all()
        assert table.column("value").to_pylist() == [0.125]
        refused = client.post("/v1/query", json={"sql": "DELETE FROM samples"})
        assert refused.status_code == 400
    assert master.intake.skipped == 1


def test_state_routes(client: TestClient) -> None:
    assert client.get("/v1/state/missing").status_code == 404
    assert client.put("/v1/state/cfg/replicas", json={"value": {"n": 3}}).json() == {"ok": True}
    assert client.get("/v1/state/cfg/replicas").json()["value"] == {"n": 3}
    op = client.post("/v1/state:op", json={"op": "increment", "key": "cfg/replicas"})
    assert op.status_code == 400 and op.json()["error"]["code"] == "state_type"
    assert client.post("/v1/state:op", json={"op": "try_lock", "name": "x"}).status_code == 400
    assert client.post("/v1/state:op", json={"op": "explode"}).status_code == 422
    assert client.delete("/v1/state/cfg/replicas").json() == {"deleted": True}


def test_minimal_page_lists_agents(make_master: Callable[..., Master], client: TestClient) -> None:
    client.post("/v1/agents/register", json=agent_info("<web>"[1:4]))
    page = client.get("/")
    assert page.status_code == 200 and "web" in page.text and "minimal" in page.text
