"""The agent's HTTP API in-process: every route, auth, bad input, limits, metrics, health."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from slothlab.agent import AgentIdentity, Executor, ResourceLimits, create_app, metrics_app
from slothlab.metrics import Collector, CustomMetrics, HealthMonitor
from slothlab.metrics.health import StaticSource, ThresholdCheck
from slothlab.protocol import AgentInfo, TaskInfo

from .conftest import AUTH, TOKEN, FakeSource

Make = Callable[..., Executor]

ROUTES = [
    ("POST", "/v1/tasks"),
    ("POST", "/v1/tasks:batch"),
    ("GET", "/v1/tasks"),
    ("GET", "/v1/tasks/x"),
    ("GET", "/v1/tasks/x/logs"),
    ("DELETE", "/v1/tasks/x"),
    ("GET", "/v1/info"),
    ("GET", "/v1/metrics"),
    ("GET", "/metrics"),
]


def submit(client: TestClient, **body: object) -> TaskInfo:
    response = client.post("/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    return TaskInfo.model_validate(response.json())


def done(client: TestClient, task_id: str) -> TaskInfo:
    response = client.get(f"/v1/tasks/{task_id}", params={"wait": 20})
    assert response.status_code == 200
    return TaskInfo.model_validate(response.json())


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + TOKEN, TOKEN])
def test_every_route_needs_the_token(
    executor: Executor, method: str, path: str, header: str | None
) -> None:
    app = create_app(executor, token=TOKEN)
    headers = {"Authorization": header} if header else {}
    with TestClient(app) as anonymous:
        body = {"kind": "shell", "source": "true"} if path == "/v1/tasks" else None
        response = anonymous.request(method, path, headers=headers, json=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing or wrong token" in response.json()["error"]["message"]


def test_health_needs_no_token(executor: Executor) -> None:
    with TestClient(create_app(executor, token=TOKEN)) as anonymous:
        response = anonymous.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["agent"] == "test-agent"


def test_routes_declare_capabilities(executor: Executor) -> None:
    app = create_app(executor, token=TOKEN)
    needs = {}
    for route in app.routes:
        deps = getattr(route, "dependant", None)
        if deps is None:
            continue
        caps = [d.call.capability for d in deps.dependencies if hasattr(d.call, "capability")]
        for method in getattr(route, "methods", ()):
            needs[(method, route.path)] = caps  # type: ignore[attr-defined]
    assert needs[("GET", "/health")] == []
    for method, path in ROUTES:
        template = path.replace("/x", "/{task_id}")
        assert needs[(method, template)], f"{method} {template} declares no capability"


def test_submit_and_wait_for_a_shell_task(client: TestClient) -> None:
    info = submit(
        client, kind="shell", source="echo $GREETING", env={"GREETING": "hi"}, name="greet"
    )
    assert info.agent == "test-agent" and info.name == "greet"
    final = done(client, info.id)
    assert (final.state, final.stdout, final.exit_code) == ("succeeded", "hi\n", 0)


def test_submit_and_wait_for_a_lua_task(client: TestClient) -> None:
    info = submit(client, kind="lua", source="local n = ... return n * 2", args=[21])
    final = done(client, info.id)
    assert final.state == "succeeded", final.error
    assert final.result == [42]


def test_batch_keeps_order_and_ignores_agent_choice(client: TestClient) -> None:
    body = {
        "tasks": [
            {"kind": "shell", "source": "echo one", "tags": ["web"], "strategy": "random"},
            {"kind": "shell", "source": "echo two", "agent": "elsewhere"},
        ]
    }
    response = client.post("/v1/tasks:batch", json=body)
    assert response.status_code == 202, response.text
    ids = [t["id"] for t in response.json()["tasks"]]
    assert [done(client, i).stdout for i in ids] == ["one\n", "two\n"]


def test_submit_with_wait_answers_200_with_the_finished_task(client: TestClient) -> None:
    shell = client.post(
        "/v1/tasks", params={"wait": 20}, json={"kind": "shell", "source": "echo hi"}
    )
    assert shell.status_code == 200, shell.text
    assert (shell.json()["state"], shell.json()["stdout"]) == ("succeeded", "hi\n")
    lua = client.post(
        "/v1/tasks", params={"wait": 20}, json={"kind": "lua", "source": "return 6 * 7"}
    )
    assert lua.status_code == 200 and lua.json()["result"] == [42]
    failed = client.post(
        "/v1/tasks", params={"wait": 20}, json={"kind": "shell", "source": "exit 4"}
    )
    assert failed.status_code == 200 and failed.json()["exit_code"] == 4


def test_a_nan_result_is_still_valid_json(client: TestClient) -> None:
    body = {"kind": "lua", "source": "return 0/0, 1/0, 2"}
    response = client.post("/v1/tasks", params={"wait": 20}, json=body)
    assert response.status_code == 200, response.text
    assert "NaN" not in response.text and "Infinity" not in response.text
    assert response.json()["result"][2] == 2
    batch = client.post("/v1/tasks:batch", params={"wait": 20}, json={"tasks": [body]})
    assert batch.status_code == 200 and "NaN" not in batch.text


def test_answers_that_pydantic_cannot_encode_are_escaped() -> None:
    import json

    from slothlab.agent._answers import json_response

    response = json_response({"text": "\ud800", "nan": float("nan")}, 200)
    assert json.loads(bytes(response.body)) == {"text": "\ud800", "nan": None}


def test_submit_with_wait_answers_202_while_it_runs(client: TestClient, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    body = {"kind": "shell", "source": f"while [ ! -e {gate} ]; do sleep 0.01; done"}
    response = client.post("/v1/tasks", params={"wait": 0.2}, json=body)
    assert response.status_code == 202
    assert response.json()["state"] in ("queued", "running")
    gate.touch()
    assert done(client, response.json()["id"]).state == "succeeded"


def test_resubmitting_a_key_with_wait_returns_the_first_task(client: TestClient) -> None:
    body = {"kind": "shell", "source": "echo once", "idempotency_key": "wait-key"}
    first = client.post("/v1/tasks", params={"wait": 20}, json=body)
    again = client.post("/v1/tasks", params={"wait": 20}, json=body)
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["stdout"] == "once\n"
    assert len([t for t in client.get("/v1/tasks").json()["tasks"] if t["idempotency_key"]]) == 1


def test_batch_with_wait_answers_once_all_finished(client: TestClient, tmp_path: Path) -> None:
    tasks = [{"kind": "shell", "source": f"echo {i}"} for i in range(3)]
    tasks.append({"kind": "lua", "source": "return 1", "agent": "ignored"})
    response = client.post("/v1/tasks:batch", params={"wait": 20}, json={"tasks": tasks})
    assert response.status_code == 200, response.text
    infos = response.json()["tasks"]
    assert [t["state"] for t in infos] == ["succeeded"] * 4
    assert [t["stdout"] for t in infos[:3]] == ["0\n", "1\n", "2\n"] and infos[3]["result"] == [1]
    gate = tmp_path / "gate"
    slow = {"kind": "shell", "source": f"while [ ! -e {gate} ]; do sleep 0.01; done"}
    partial = client.post("/v1/tasks:batch", params={"wait": 0.2}, json={"tasks": [slow]})
    assert partial.status_code == 202 and partial.json()["tasks"][0]["state"] != "succeeded"
    gate.touch()
    assert done(client, partial.json()["tasks"][0]["id"]).state == "succeeded"


def test_submit_wait_is_bounded(client: TestClient) -> None:
    body = {"kind": "shell", "source": "true"}
    for path in ("/v1/tasks", "/v1/tasks:batch"):
        payload = body if path == "/v1/tasks" else {"tasks": [body]}
        response = client.post(path, params={"wait": 61}, json=payload)
        assert response.status_code == 422 and "wait" in response.json()["error"]["message"]


def test_list_filters_by_state(client: TestClient) -> None:
    first = submit(client, kind="shell", source="true")
    second = submit(client, kind="shell", source="exit 1")
    done(client, first.id), done(client, second.id)
    listed = client.get("/v1/tasks").json()["tasks"]
    assert [t["id"] for t in listed[:2]] == [second.id, first.id]
    failed = client.get("/v1/tasks", params={"state": "failed"}).json()["tasks"]
    assert [t["id"] for t in failed] == [second.id]
    assert client.get("/v1/tasks", params={"state": "bogus"}).status_code == 422
    assert client.get("/v1/tasks", params={"limit": 0}).status_code == 422


def test_wait_is_bounded(client: TestClient) -> None:
    response = client.get("/v1/tasks/x", params={"wait": 3600})
    assert response.status_code == 422
    assert "wait" in response.json()["error"]["message"]


def test_wait_returns_early_while_running(client: TestClient, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    info = submit(client, kind="shell", source=f"while [ ! -e {gate} ]; do sleep 0.01; done")
    response = client.get(f"/v1/tasks/{info.id}", params={"wait": 0.2})
    assert response.json()["state"] == "running"
    gate.touch()
    assert done(client, info.id).state == "succeeded"


def test_cancel_running_task_over_http(client: TestClient) -> None:
    info = submit(client, kind="shell", source="exec sleep 30")
    response = client.delete(f"/v1/tasks/{info.id}")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"


def test_unknown_task_is_404(client: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/tasks/nope"),
        ("DELETE", "/v1/tasks/nope"),
        ("GET", "/v1/tasks/nope/logs"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, path
        body = response.json()["error"]
        assert body["code"] == "not_found" and "no task 'nope'" in body["message"]


def test_idempotent_resubmit_returns_the_first_task(client: TestClient) -> None:
    first = submit(client, kind="shell", source="echo once", idempotency_key="abc")
    second = submit(client, kind="shell", source="echo twice", idempotency_key="abc")
    assert second.id == first.id
    assert done(client, first.id).stdout == "once\n"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "python", "source": "x"}, "kind"),
        ({"kind": "shell", "source": ""}, "source"),
        ({"kind": "shell", "source": "true", "timeout_s": -1}, "timeout_s"),
        ({"kind": "shell", "source": "true", "priority": 1000}, "priority"),
        ({"kind": "shell", "source": "true", "surprise": 1}, "surprise"),
        ({"kind": "shell", "source": "true", "env": {"A": 1}}, "env"),
        ({"source": "true"}, "kind"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/v1/tasks", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[" * 200 + b"]" * 200,
        b'{"kind": "shell", "source": "x", "timeout_s": NaN}',
        b"\xff\xfe",
    ],
)
def test_malformed_or_deep_json_is_400(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/tasks", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"bad_json", "bad_request"}


def test_oversized_body_is_413(executor: Executor) -> None:
    app = create_app(executor, token=TOKEN, max_body_bytes=10_000)
    with TestClient(app, headers=AUTH) as small:
        body = {"kind": "shell", "source": "echo " + "x" * 20_000}
        response = small.post("/v1/tasks", json=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_reject_limit_is_503_with_retry_after(make_executor: Make) -> None:
    limits = ResourceLimits(max_cpu_percent=50, action="reject")
    executor = make_executor(capacity=1, limits=limits, snapshot=FakeSource(cpu=80))
    with TestClient(create_app(executor, token=TOKEN), headers=AUTH) as client:
        response = client.post("/v1/tasks", json={"kind": "shell", "source": "true"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "CPU at 80% (limit 50%)" in response.json()["error"]["message"]
        assert client.get("/v1/metrics").json()["limits"]["over"] is True


def test_full_queue_is_429(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor(capacity=1, max_queue=0)
    with TestClient(create_app(executor, token=TOKEN), headers=AUTH) as client:
        response = client.post("/v1/tasks", json={"kind": "shell", "source": "true"})
    assert response.status_code == 429 and response.json()["error"]["code"] == "queue_full"


def test_info_reports_identity_and_load(executor: Executor) -> None:
    identity = AgentIdentity("web-1", "http://10.0.0.5:8701", ["web", "eu"], "eu-west")
    app = create_app(executor, token=TOKEN, identity=identity, collector=Collector())
    with TestClient(app, headers=AUTH) as client:
        info = AgentInfo.model_validate(client.get("/v1/info").json())
    assert (info.name, info.url, info.tags, info.region) == (
        "web-1",
        "http://10.0.0.5:8701",
        ["web", "eu"],
        "eu-west",
    )
    assert info.capacity == 2 and info.running == 0
    assert {"cpu_percent", "memory_percent"} <= set(info.metrics)


def test_metrics_json_and_prometheus_text(executor: Executor) -> None:
    custom = CustomMetrics()
    custom.counter("deploys_total", 3, {"env": "prod"})
    app = create_app(executor, token=TOKEN, collector=Collector(), custom=custom)
    with TestClient(app, headers=AUTH) as client:
        ok = submit(client, kind="shell", source="true")
        bad = submit(client, kind="shell", source="false")
        done(client, ok.id), done(client, bad.id)
        snapshot = client.get("/v1/metrics").json()
        response = client.get("/metrics")
    assert snapshot["tasks"]["tasks_total"] == {"succeeded": 1, "failed": 1}
    assert "cpu" in snapshot["host"] and snapshot["custom"]
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    statuses = {
        s.labels["status"]: s.value
        for s in families["slothlab_tasks"].samples
        if s.name.endswith("_total")
    }
    assert statuses == {"succeeded": 1.0, "failed": 1.0}
    assert families["slothlab_tasks_running"].samples[0].value == 0
    counts = [
        s for s in families["slothlab_task_duration_seconds"].samples if s.name.endswith("_count")
    ]
    assert counts[0].value == 2
    assert "deploys" in families
    assert response.text.endswith("\n")


def test_health_follows_the_checks(executor: Executor) -> None:
    source = StaticSource({"disk": 99})
    monitor = HealthMonitor(
        [ThresholdCheck("disk", "disk", critical=95, source=source, failure_threshold=1)]
    )
    monitor.tick()
    app = create_app(executor, token=TOKEN, health=monitor)
    with TestClient(app) as anonymous:
        response = anonymous.get("/health")
        assert response.status_code == 503
        assert response.json()["checks"]["disk"]["status"] == "critical"
        plain = TestClient(metrics_app(app))
        assert plain.get("/health").status_code == 503
        assert plain.get("/metrics").status_code == 200  # no token on the metrics port


def test_openapi_document_lists_the_routes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = set(document["paths"])
    assert {
        "/v1/tasks",
        "/v1/tasks:batch",
        "/v1/tasks/{task_id}",
        "/v1/tasks/{task_id}/logs",
    } <= paths
    assert {"/v1/info", "/v1/metrics", "/metrics", "/health"} <= paths
