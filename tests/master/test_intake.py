"""The heartbeat fast path answers exactly as the FastAPI route does, and takes only plain cases."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
from fastapi.testclient import TestClient

from slothlab.master import Master, create_app
from slothlab.master.intake import MasterAPI

from .conftest import AUTH, LiveServer, agent_info

JSON = {"Content-Type": "application/json"}
BEAT = {"running": 2, "queued": 1, "metrics": {"cpu_percent": 30.0, "memory_percent": 50.0}}

# (name, path, headers, body): each is sent with the fast path on and off
CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("plain", "/v1/agents/a/heartbeat", {**AUTH, **JSON}, json.dumps(BEAT).encode()),
    ("no metrics", "/v1/agents/a/heartbeat", {**AUTH, **JSON}, b'{"running":0,"queued":0}'),
    ("charset", "/v1/agents/a/heartbeat",
     {**AUTH, "Content-Type": "application/json; charset=utf-8"}, b'{"running":1,"queued":0}'),
    ("no token", "/v1/agents/a/heartbeat", JSON, b'{"running":1,"queued":0}'),
    ("wrong token", "/v1/agents/a/heartbeat", {"Authorization": "Bearer nope", **JSON},
     b'{"running":1,"queued":0}'),
    ("basic scheme", "/v1/agents/a/heartbeat", {"Authorization": "Basic eDp5", **JSON},
     b'{"running":1,"queued":0}'),
    ("unknown agent", "/v1/agents/ghost/heartbeat", {**AUTH, **JSON}, b'{"running":1,"queued":0}'),
    ("malformed", "/v1/agents/a/heartbeat", {**AUTH, **JSON}, b'{"running":1,'),
    ("nan", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":1,"queued":0,"metrics":{"cpu_percent":NaN}}'),
    ("infinity", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":1,"queued":0,"metrics":{"cpu_percent":-Infinity}}'),
    ("deep", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":1,"queued":0,"x":' + b"[" * 100 + b"]" * 100 + b"}"),
    ("negative", "/v1/agents/a/heartbeat", {**AUTH, **JSON}, b'{"running":-1,"queued":0}'),
    ("extra field", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":1,"queued":0,"nope":1}'),
    ("string metric", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":1,"queued":0,"metrics":{"cpu_percent":"high"}}'),
    ("too large", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":1,"queued":0,"metrics":{"pad":' + b"1" * 5000 + b"}}"),
    ("text body", "/v1/agents/a/heartbeat", {**AUTH, "Content-Type": "text/plain"},
     b'{"running":1,"queued":0}'),
    ("empty body", "/v1/agents/a/heartbeat", {**AUTH, **JSON}, b""),
    ("nested path", "/v1/agents/a/b/heartbeat", {**AUTH, **JSON}, b'{"running":1,"queued":0}'),
    # bodies where pydantic's JSON parser and json.loads + the route could disagree
    ("nan as text", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":4,"queued":0,"metrics":{"cpu_percent":"NaN"}}'),
    ("overflow", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":5,"queued":0,"metrics":{"cpu_percent":1e400}}'),
    ("bom", "/v1/agents/a/heartbeat", {**AUTH, **JSON}, b'\xef\xbb\xbf{"running":6,"queued":0}'),
    ("surrogate", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":7,"queued":0,"metrics":{"\\ud800":1}}'),
    ("not utf-8", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":8,"queued":0,"metrics":{"\xff":1}}'),
    ("lax numbers", "/v1/agents/a/heartbeat", {**AUTH, **JSON},
     b'{"running":"9","queued":true,"running":1e1}'),
]  # fmt: skip


def _answers(make_master: Callable[..., Master], fast: bool, tmp: str) -> list[tuple[Any, ...]]:
    master = make_master(data_dir=tmp)
    app = create_app(master, max_body_bytes=4096)
    if not fast:
        app.heartbeats = None
    out = []
    with TestClient(app) as client:
        assert client.post("/v1/agents/register", json=agent_info("a"), headers=AUTH).is_success
        for name, path, headers, body in CASES:
            answer = client.post(path, content=body, headers=headers)
            state = master.registry.get("a")
            out.append((name, answer.status_code, answer.json(), state.running, state.queued))
        out.append(("pending samples", master.intake.pending))
    if fast:  # the plain cases were taken before the framework, the rest replayed
        assert app.heartbeats is not None and app.heartbeats.taken == 4
    return out


def test_the_fast_path_answers_every_case_as_the_route_does(
    make_master: Callable[..., Master], tmp_path: Any
) -> None:
    fast = _answers(make_master, True, str(tmp_path / "fast"))
    slow = _answers(make_master, False, str(tmp_path / "slow"))
    assert fast == slow
    statuses = {case[0]: case[1] for case in fast if len(case) == 5}
    assert statuses == {
        "plain": 200, "no metrics": 200, "charset": 200, "no token": 401, "wrong token": 401,
        "basic scheme": 401, "unknown agent": 404, "malformed": 400, "nan": 400, "infinity": 400,
        "deep": 400, "negative": 422, "extra field": 422, "string metric": 422, "too large": 413,
        "text body": 422, "empty body": 422, "nested path": 404, "nan as text": 200,
        "overflow": 200, "bom": 200, "surrogate": 200, "not utf-8": 400, "lax numbers": 200,
    }  # fmt: skip


def test_plain_heartbeats_take_the_fast_path_and_others_do_not(
    make_master: Callable[..., Master],
) -> None:
    master = make_master()
    app = create_app(master)
    assert isinstance(app, MasterAPI) and app.heartbeats is not None
    with TestClient(app, headers=AUTH) as client:
        client.post("/v1/agents/register", json=agent_info("a"))
        before = master.intake.pending
        assert client.post("/v1/agents/a/heartbeat", json=BEAT).json()["ok"] is True
        assert app.heartbeats.taken == 1
        assert master.registry.get("a").metrics == BEAT["metrics"]
        assert master.intake.pending - before == 4  # running, queued and the two metrics
        client.post("/v1/agents/a/heartbeat", json={"running": -1, "queued": 0})
        client.post("/v1/agents/ghost/heartbeat", json=BEAT)
        client.post("/v1/agents/a/heartbeat", json=BEAT, headers={"Authorization": "Bearer x"})
        assert app.heartbeats.taken == 1


def _chunks() -> Iterator[bytes]:
    yield b'{"running":3,'
    yield b'"queued":0}'


def test_a_chunked_heartbeat_goes_through_the_route(make_master: Callable[..., Master]) -> None:
    master = make_master()
    app = create_app(master)
    with TestClient(app, headers=AUTH) as client:
        client.post("/v1/agents/register", json=agent_info("a"))
        answer = client.post("/v1/agents/a/heartbeat", content=_chunks(), headers=JSON)
    assert answer.status_code == 200 and answer.json() == {"ok": True, "interval_s": 10.0}
    assert master.registry.get("a").running == 3
    assert app.heartbeats is not None and app.heartbeats.taken == 0


def test_heartbeats_over_a_real_socket_reach_sqlite_and_the_history(
    make_master: Callable[..., Master],
) -> None:
    master = make_master(history=True, clock=time.time)
    app = create_app(master)
    with LiveServer(app) as server, requests.Session() as session:
        session.headers.update(AUTH)
        assert session.post(f"{server.url}/v1/agents/register", json=agent_info("a")).ok
        for running in range(5):
            beat = {**BEAT, "running": running}
            answer = session.post(f"{server.url}/v1/agents/a/heartbeat", json=beat)
            assert answer.status_code == 200, answer.text
        assert app.heartbeats is not None and app.heartbeats.taken == 5
        master.flush()
        rows = master.history.sql(
            "SELECT count(*) FROM samples WHERE host = 'a' AND metric = 'slothlab_cpu_usage_ratio'"
        ).values.tolist()
        assert rows == [[5]]
    master.close()
    again = make_master(clock=time.time)  # the same data directory: the registry file
    assert again.registry.get("a").running == 4


def test_metrics_intake_skips_bad_names_and_non_finite_values_and_counts_them() -> None:
    from slothlab.master.scraper import MetricsIntake
    from slothlab.metrics import MetricsHistory
    from slothlab.protocol import Heartbeat

    history = MetricsHistory(":memory:", background=False)
    intake = MetricsIntake(history)
    odd = {"cpu_percent": 1.0, "bad-name": 2.0, "load1": float("inf")}
    for ts in (1.0, 2.0):  # the second time the key set comes from the cache
        intake.receive("h", Heartbeat(running=1, queued=0, metrics=odd), ts)
    intake.receive("g", Heartbeat(running=0, queued=2, metrics={"cpu_percent": 3.0}), 3.0)
    assert intake.skipped == 2 and intake.pending == 11
    assert intake.flush() == 9 and intake.skipped == 4 and intake.pending == 0
    sql = "SELECT epoch(ts), host, metric, value FROM samples ORDER BY ts, metric"
    assert [tuple(r) for r in history.sql(sql).values.tolist()] == [
        (1.0, "h", "slothlab_agent_tasks_queued", 0.0),
        (1.0, "h", "slothlab_agent_tasks_running", 1.0),
        (1.0, "h", "slothlab_cpu_usage_ratio", 0.01),
        (2.0, "h", "slothlab_agent_tasks_queued", 0.0),
        (2.0, "h", "slothlab_agent_tasks_running", 1.0),
        (2.0, "h", "slothlab_cpu_usage_ratio", 0.01),
        (3.0, "g", "slothlab_agent_tasks_queued", 2.0),
        (3.0, "g", "slothlab_agent_tasks_running", 0.0),
        (3.0, "g", "slothlab_cpu_usage_ratio", 0.03),
    ]  # fmt: skip
    history.close()


def test_a_new_verifier_drops_the_remembered_token(make_master: Callable[..., Master]) -> None:
    from slothlab.security import TokenVerifier

    app = create_app(make_master())
    with TestClient(app, headers=AUTH) as client:
        client.post("/v1/agents/register", json=agent_info("a"))
        assert client.post("/v1/agents/a/heartbeat", json=BEAT).status_code == 200
        app.state.verifier = TokenVerifier.for_token("rotated")
        assert client.post("/v1/agents/a/heartbeat", json=BEAT).status_code == 401
        rotated = {"Authorization": "Bearer rotated"}
        assert client.post("/v1/agents/a/heartbeat", json=BEAT, headers=rotated).is_success
    assert app.heartbeats is not None and app.heartbeats.taken == 2


def test_heartbeat_host_metrics_go_to_the_history_under_the_collectors_names() -> None:
    from slothlab.agent.app import host_metrics
    from slothlab.master.scraper import CAPACITY, HEARTBEAT_METRICS, MetricsIntake
    from slothlab.metrics import MetricsHistory
    from slothlab.metrics.collector import readings
    from slothlab.metrics.names import HOST_METRICS
    from slothlab.protocol import Heartbeat

    assert {h.metric for h in HEARTBEAT_METRICS.values()} - set(HOST_METRICS) == {CAPACITY}
    snap = {
        "cpu": {"percent": 12.5, "ratio": 0.125},
        "memory": {"percent": 40.0, "ratio": 0.4, "available_bytes": 3 * 2**30 + 5 * 2**20},
        "disk": {"/": {"percent": 70.0, "ratio": 0.7, "free_bytes": 17 * 2**30 + 2**20}},
        "load": {"load1": 0.5, "load5": 0.25, "load15": 1.5},
    }
    sent = {**host_metrics(snap), "effective_capacity": 3.0, "jobs_done_total": 4.0}
    assert set(sent) == {*HEARTBEAT_METRICS, "jobs_done_total"}  # the test covers every name
    history = MetricsHistory(":memory:", background=False)
    intake = MetricsIntake(history)
    intake.receive("h", Heartbeat(running=1, queued=0, metrics=sent), 1.0)
    assert intake.flush() == 12
    frame = history.sql("SELECT metric, labels, value FROM samples ORDER BY metric")
    got = {(m, tuple(sorted(lb.items())), v) for m, lb, v in frame.values.tolist()}
    from_collector = {(r.name, tuple(sorted(r.labels.items())), r.value) for r in readings(snap)}
    assert from_collector <= got  # same names, labels and values (bytes exact) as the collector
    assert got - from_collector == {
        (CAPACITY, (), 3.0),
        ("jobs_done_total", (), 4.0),  # custom metrics keep their names
        ("slothlab_agent_tasks_queued", (), 0.0),
        ("slothlab_agent_tasks_running", (), 1.0),
    }
    history.close()
